"""The job queue that hands training runs to whichever process trains them: Huey.

A run's record is in the database (records.py); the queue carries only its id. By default the
queue is Huey's SQLite storage in the data folder, so every process of one machine shares it and a
queued run survives a restart; with CONVSCOPE_REDIS_URL, Redis, which any machine can reach. A
consumer takes ids off the queue in its own threads: the server runs one in its own process unless
CONVSCOPE_TRAINING_IN_SERVER is off, and `convscope worker` runs one on its own. Claiming a run is
an atomic update of its record, so a run is trained once however many consumers see its id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from convscope.config import Settings

log = logging.getLogger("convscope")
TASK = "convscope.train"  # the task's name: the same in every process that enqueues or consumes
POLL_SECONDS = (0.05, 0.5)  # a consumer with nothing to do polls SQLite this often, backing off to the second


def queue_for(settings: Settings) -> Huey:
    """The queue the settings name: Redis if CONVSCOPE_REDIS_URL is set, else SQLite in the data folder."""
    if settings.redis_url:
        return RedisHuey("convscope", url=settings.redis_url, results=False)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return SqliteHuey("convscope", filename=str(Path(settings.data_dir) / "jobs.db"), results=False)


def private_queue() -> Huey:
    """A queue of this process alone (tests, benchmarks, a RunManager made by hand)."""
    return MemoryHuey("convscope", results=False)


class EmbeddedConsumer(Consumer):
    """A consumer inside the server process: its threads only; the server's own signal handlers stay."""

    def _set_signal_handlers(self) -> None:
        pass


class Jobs:
    """Enqueue run ids; consume them with `train(run_id)` in a number of threads."""

    def __init__(self, queue: Huey, train: Callable[[str], None]) -> None:
        self.queue = queue
        self.shared = not isinstance(queue, MemoryHuey)  # other processes consume it (and it outlives us)
        self._task = queue.task(name=TASK)(train)
        self._consumer: Consumer | None = None

    def enqueue(self, run_id: str) -> None:
        self._task(run_id)

    def consumer(self, workers: int, embedded: bool = True) -> Consumer:
        kind = EmbeddedConsumer if embedded else Consumer
        return kind(self.queue, workers=workers, worker_type="thread", periodic=False,
                    initial_delay=POLL_SECONDS[0], max_delay=POLL_SECONDS[1], backoff=1.5, check_worker_health=False)

    def start(self, workers: int) -> None:
        """Train queued runs in `workers` threads of this process, until stop()."""
        self._consumer = self.consumer(workers)
        self._consumer.start()

    def stop(self, timeout: float) -> None:
        """Stop taking runs, and wait up to `timeout` s for the runs in hand (they have been told to stop)."""
        if self._consumer is not None:
            self._consumer.shutdown_timeout = timeout
            self._consumer.stop(graceful=True)
            self._consumer = None
