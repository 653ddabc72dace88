"""The event log: replay then live, across threads; followers leave nothing behind."""

import asyncio
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import torch

from convscope.training.events import EventLog

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: in a full test session, Playwright's sync API keeps an
    event loop running in the main thread, where asyncio.run refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def collect(log: EventLog, after: int = -1, keepalive: float = 15.0) -> list[int | None]:
    return [None if e is None else e.seq async for e in log.follow(after, keepalive)]


def test_a_follower_gets_the_history_then_live_events_from_another_thread_then_stops_at_the_end() -> None:
    log = EventLog()
    log.append("start", {"run": "x"})

    def produce() -> None:
        for step in range(1, 4):
            time.sleep(0.02)
            log.append("step", {"step": step}, torch.zeros(2))
        log.append("end", {"status": "done"}, last=True)

    async def main() -> list[int | None]:
        threading.Thread(target=produce).start()
        return await collect(log)

    assert run(main()) == [0, 1, 2, 3, 4]
    assert run(collect(log, after=2)) == [3, 4]  # resuming (Last-Event-ID)
    assert run(collect(log, after=4)) == []
    assert log.followers == 0
    with pytest.raises(RuntimeError):
        log.append("step", {})


def test_a_quiet_log_yields_keepalives_and_a_cancelled_follower_is_removed() -> None:
    log = EventLog()

    async def main() -> list[int | None]:
        seen: list[int | None] = []

        async def follow() -> None:
            async for event in log.follow(keepalive=0.05):
                seen.append(None if event is None else event.seq)

        task = asyncio.create_task(follow())
        while not seen:  # however slow the machine: wait for the first keepalive, not for a set time
            await asyncio.sleep(0.01)
        assert log.followers == 1
        task.cancel()  # what a client disconnect does to the streaming task
        await asyncio.gather(task, return_exceptions=True)
        return seen

    seen = run(main())
    assert seen and all(s is None for s in seen)
    assert log.followers == 0


def test_event_bodies_encode_kernels_once_per_encoding() -> None:
    log = EventLog()
    event = log.append("step", {"step": 1}, torch.ones(1, 1, 2, 2))
    body = event.body("json")
    assert body["kernels"] == {"shape": [1, 1, 2, 2], "dtype": "float32", "data": [1.0] * 4}
    assert event.body("json") is body and event.body("base64")["kernels"]["encoding"] == "base64"
    assert "kernels" not in log.append("start", {}).body()
