"""One Settings object, read from CONVSCOPE_* environment variables."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from convscope.resources import folder

PREFIX = "CONVSCOPE_"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(PREFIX + name, default))


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(PREFIX + name, "").strip().lower()
    return default if not value else value not in ("0", "false", "no", "off")


def _optional_path(name: str, default: str) -> Path | None:
    value = os.environ.get(PREFIX + name, default)
    return Path(value) if value else None


@dataclass(frozen=True)
class Settings:
    """Limits and locations; every field can be set with CONVSCOPE_<FIELD NAME IN CAPITALS>."""

    max_upload_bytes: int = field(default_factory=lambda: _int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024))
    max_image_pixels: int = field(default_factory=lambda: _int("MAX_IMAGE_PIXELS", 40_000_000))
    models_dir: Path = field(
        default_factory=lambda: Path(os.environ.get(PREFIX + "MODELS_DIR", folder("models")))
    )
    # A TOML file of the user's own models, served after the built-ins (app/models_file.py); none if empty.
    models_file: Path | None = field(default_factory=lambda: _optional_path("MODELS_FILE", ""))
    # Serve the built-in models of models_dir too; false serves only the models file's.
    builtins: bool = field(default_factory=lambda: _bool("BUILTINS", True))
    # Small models are dominated by thread wake-up (DESIGN.md): one intra-op thread is faster.
    torch_threads: int = field(default_factory=lambda: _int("TORCH_THREADS", 1))
    # Requests computing at once; with one thread each, one per core keeps the CPU busy, not thrashing.
    compute_slots: int = field(default_factory=lambda: _int("COMPUTE_SLOTS", os.cpu_count() or 1))
    # Requests waiting for a slot before new ones get 429 instead of an ever-longer wait.
    max_queued: int = field(default_factory=lambda: _int("MAX_QUEUED", 64))
    # The training lab (app/training). Runs training at once: each takes a core (default 1 of 2).
    training_slots: int = field(default_factory=lambda: _int("TRAINING_SLOTS", 1))
    # Runs waiting for a training slot before new ones get 429.
    training_max_queued: int = field(default_factory=lambda: _int("TRAINING_MAX_QUEUED", 4))
    # Ceilings per run: optimizer steps, and seconds of training (a run stops there, keeping its model).
    training_max_steps: int = field(default_factory=lambda: _int("TRAINING_MAX_STEPS", 20_000))
    training_max_seconds: int = field(default_factory=lambda: _int("TRAINING_MAX_SECONDS", 600))
    # Added to a training thread's nice value (Linux), so request threads win a contended core; 0: none.
    training_nice: int = field(default_factory=lambda: _int("TRAINING_NICE", 10))
    # Runs remembered (with their trained models); past that the oldest finished run is forgotten.
    training_max_runs: int = field(default_factory=lambda: _int("TRAINING_MAX_RUNS", 50))
    # The dataset subsets shipped with the project (data/README.md).
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get(PREFIX + "DATA_DIR", folder("data"))))
    # The full Fashion-MNIST, used instead of the subset when its IDX files are here (the Debian
    # package dataset-fashion-mnist puts them there); an empty value means: always the subset.
    fashion_mnist_dir: Path | None = field(default_factory=lambda: _optional_path(
        "FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    # Forward runs kept for fetching their layers one by one (summary=true), most recent first, up to
    # this many bytes of layer outputs in all (app/engine/cache.py); 0 keeps none.
    run_cache_bytes: int = field(default_factory=lambda: _int("RUN_CACHE_BYTES", 256 * 1024 * 1024))
    # Origins allowed to call the API from other sites' pages, comma-separated; none by default.
    cors_origins: tuple[str, ...] = field(default_factory=lambda: tuple(
        o.strip() for o in os.environ.get(PREFIX + "CORS_ORIGINS", "").split(",") if o.strip()))


def get_settings() -> Settings:
    return Settings()
