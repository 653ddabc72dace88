"""Open the run database and bring it to the current schema (Alembic's `upgrade head`).

Every server and worker process upgrades at start; Alembic records the schema's version in the
database, so the first process migrates and the others find nothing to do. SQLite gets what
several processes need to share one file: write-ahead logging (readers never wait for the
writer), a busy timeout instead of "database is locked", and foreign keys switched on.
"""

from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_MS = 30_000  # a writer waits this long for another process's write to finish


def sqlite_url(folder: Path) -> str:
    """The default database: a SQLite file in the data folder."""
    return f"sqlite:///{folder / 'convscope.db'}"


def open_database(url: str) -> Engine:
    """An engine on `url`, its schema upgraded to the current version (the folder of a SQLite file is made)."""
    parsed = make_url(url)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False}
    else:
        options["pool_pre_ping"] = True  # a PostgreSQL restart leaves dead connections in the pool
    engine = create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, no fsync per event
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config() -> Config:
    """Alembic's configuration for the migrations shipped in the package (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(files("convscope.database") / "migrations"))
    return config


def upgrade(engine: Engine) -> None:
    """Run every migration the database has not had yet, on one of the engine's connections."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
