"""One Settings object, read from CONVSCOPE_* environment variables and a `.env` file (pydantic-settings)."""

import os
from pathlib import Path
from typing import Annotated, Any

from platformdirs import user_data_dir
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from convscope.database.connect import sqlite_url
from convscope.resources import folder

PREFIX = "CONVSCOPE_"
ENV_FILE = ".env"  # read from the folder the server starts in; the environment wins over it


class Settings(BaseSettings):
    """Limits and locations; every field can be set with CONVSCOPE_<FIELD NAME IN CAPITALS>.

    An empty value means the default, except for fashion_mnist_dir (empty: always the subset). The
    README's settings table lists every field with its default (tests/test_settings.py checks it)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=ENV_FILE, env_file_encoding="utf-8",
                                      extra="ignore", frozen=True)

    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1, description=(
        "Uploads larger than this many bytes get a 413."))
    max_image_pixels: int = Field(default=40_000_000, ge=1, description=(
        "Images with more pixels than this (decompression bombs included) get a 413 before decoding."))
    models_dir: Path = Field(default_factory=lambda: folder("models"), description=(
        "The folder the built-in models' cards and weights are read from."))
    # app/models_file.py reads it; served after the built-ins.
    models_file: Path | None = Field(default=None, description=(
        "A TOML file of your own models to serve too; none by default."))
    builtins: bool = Field(default=True, description=(
        "Serve the built-in models of models_dir too; false (or 0, no, off) serves only the models file's."))
    # Small models are dominated by thread wake-up (DESIGN.md): one intra-op thread is faster.
    torch_threads: int = Field(default=1, ge=1, description="PyTorch intra-op threads per request.")
    # With one thread each, one slot per core keeps the CPU busy without thrashing it.
    compute_slots: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description=(
        "Requests computing at once; by default the number of cores."))
    # A bound, so that an overloaded server answers 429 at once instead of an ever-longer wait.
    max_queued: int = Field(default=64, ge=0, description=(
        "Requests waiting for a compute slot; past that the API answers 429."))
    # The training lab (app/training).
    training_slots: int = Field(default=1, ge=1, description=(
        "Training runs that train at once; each takes a core."))
    training_max_queued: int = Field(default=4, ge=0, description=(
        "Training runs waiting for a slot; past that, starting a run answers 429."))
    training_max_steps: int = Field(default=20_000, ge=1, description="Optimizer steps a training run may take.")
    training_max_seconds: int = Field(default=600, ge=1, description=(
        "Seconds a training run may train; it stops there and keeps its model."))
    # So that request threads win a contended core. Linux caps a nice value at 19.
    training_nice: int = Field(default=10, ge=0, le=19, description=(
        "Added to a training thread's nice value (Linux), so requests win a busy core; 0: none."))
    training_max_runs: int = Field(default=50, ge=1, description=(
        "Training runs remembered with their models; past that the oldest finished one is forgotten."))
    subsets_dir: Path = Field(default_factory=lambda: folder("data"), description=(
        "The folder the shipped dataset subsets are read from (data/README.md)."))
    # Per user, as the platform keeps application data (platformdirs): ~/.local/share/convscope on Linux.
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("convscope", appauthor=False)), description=(
        "The folder ConvScope keeps its own data in: the run database (convscope.db), unless database_url "
        "names another."))
    # SQLAlchemy's URL form: postgresql+psycopg://user:password@host/database, sqlite:////path/file.db.
    database_url: str | None = Field(default=None, description=(
        "The database of training runs and their models; default: a SQLite file in data_dir. Give a "
        "PostgreSQL URL to share the runs between servers on several machines."))
    # The Debian package dataset-fashion-mnist puts the IDX files in the default folder.
    fashion_mnist_dir: Path | None = Field(default=Path("/usr/share/datasets/fashion-mnist"), description=(
        "The full Fashion-MNIST's IDX files, used instead of the subset when all four are there; "
        "empty: always the subset."))
    # Layer outputs of summary forwards (summary=true), most recent first (app/engine/cache.py).
    run_cache_bytes: int = Field(default=256 * 1024 * 1024, ge=0, description=(
        "Memory for the layer outputs of recent summary forwards, fetched by run id; 0 keeps none."))
    # So that an idle Redis does not hold a class's forward runs forever.
    run_cache_seconds: int = Field(default=3600, ge=1, description=(
        "Seconds a kept forward run lives at most (it goes sooner when the budget is full)."))
    # redis://host:6379/0; the job queue, the live events and the kept forward runs then go through it.
    redis_url: str | None = Field(default=None, description=(
        "A Redis server shared by every server and worker process; none: they share this machine's data "
        "folder instead."))
    # False on web servers when `convscope worker` processes do the training.
    training_in_server: bool = Field(default=True, description=(
        "Train the lab's runs in the server process itself; false (or 0, no, off): only `convscope worker` "
        "processes train."))
    # NoDecode: a comma-separated list, not the JSON that pydantic-settings expects of a tuple.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(default=(), description=(
        "Comma-separated origins allowed to call the API from other sites' pages; none by default."))

    @field_validator("*", mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if value:
            return value
        if info.field_name == "fashion_mnist_dir":
            return None
        raise PydanticUseDefault()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value


def database_url(settings: Settings) -> str:
    """The run database's URL: the one given, or the SQLite file in the data folder."""
    return settings.database_url or sqlite_url(settings.data_dir)


def get_settings() -> Settings:
    """The settings as the environment and `.env` give them now (a new object on every call)."""
    return Settings()


def settings_problem(error: ValidationError) -> str:
    """The sentences for settings that cannot work, one line per variable, naming it."""
    lines = [f"Cannot start ConvScope with these settings (from the environment or {ENV_FILE}):"]
    for problem in error.errors():
        name = PREFIX + str(problem["loc"][0]).upper() if problem["loc"] else "a setting"
        message = problem["msg"][:1].lower() + problem["msg"][1:]
        lines.append(f"- {name}={problem['input']!r}: {message}.")
    lines.append("Correct them, or unset them for the defaults (the README's Settings section lists them all).")
    return "\n".join(lines)
