"""One Settings object, read from CONVSCOPE_* environment variables."""

import os
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "CONVSCOPE_"
ROOT = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    return int(os.environ.get(PREFIX + name, default))


@dataclass(frozen=True)
class Settings:
    """Limits and locations; every field can be set with CONVSCOPE_<FIELD NAME IN CAPITALS>."""

    max_upload_bytes: int = field(default_factory=lambda: _int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024))
    max_image_pixels: int = field(default_factory=lambda: _int("MAX_IMAGE_PIXELS", 40_000_000))
    models_dir: Path = field(
        default_factory=lambda: Path(os.environ.get(PREFIX + "MODELS_DIR", ROOT / "models"))
    )
    # Small models are dominated by thread wake-up (DESIGN.md): one intra-op thread is faster.
    torch_threads: int = field(default_factory=lambda: _int("TORCH_THREADS", 1))
    # Requests computing at once; with one thread each, one per core keeps the CPU busy, not thrashing.
    compute_slots: int = field(default_factory=lambda: _int("COMPUTE_SLOTS", os.cpu_count() or 1))
    # Requests waiting for a slot before new ones get 429 instead of an ever-longer wait.
    max_queued: int = field(default_factory=lambda: _int("MAX_QUEUED", 64))
    # Origins allowed to call the API from other sites' pages, comma-separated; none by default.
    cors_origins: tuple[str, ...] = field(default_factory=lambda: tuple(
        o.strip() for o in os.environ.get(PREFIX + "CORS_ORIGINS", "").split(",") if o.strip()))


def get_settings() -> Settings:
    return Settings()
