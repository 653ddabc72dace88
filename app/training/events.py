"""A run's event log: appended to by its training thread, replayed and followed live by streams.

Events are numbered from 0 (`seq`, also the server-sent event `id`), so a stream that reconnects
with `Last-Event-ID` resumes where it stopped. The log is bounded by the run's plan (at most
MAX_STEP_EVENTS step events, one per epoch, a start and an end), so it is simply kept whole.
Followers are woken with `loop.call_soon_threadsafe`, from whichever thread appends: no polling,
and a follower that goes away (a client disconnect cancels its task) leaves nothing behind.
"""

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

from convscope.codec import Encoding, encode

if TYPE_CHECKING:
    from convscope.training.records import RunRecords as RunRecordsLike

KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies from closing a quiet stream


@dataclass
class Event:
    """One event: its JSON-ready fields, and the first conv layer's kernels [out, in, kh, kw] if taken."""

    seq: int
    type: str  # start | step | epoch | end
    fields: dict[str, Any]
    kernels: Tensor | None = None
    _bodies: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def body(self, encoding: Encoding = "json") -> dict[str, Any]:
        """The event as the API sends it; encoded once per encoding (many streams may send it)."""
        cached = self._bodies.get(encoding)
        if cached is None:
            cached = {"type": self.type, "seq": self.seq, **self.fields}
            if self.type in ("step", "epoch"):
                cached["kernels"] = None if self.kernels is None else encode(self.kernels, encoding)
            self._bodies[encoding] = cached
        return cached


class EventLog:
    """Events in order; `closed` once the end event is in. Thread-safe."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._closed = False
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @classmethod
    def restored(cls, events: list[Event], closed: bool) -> "EventLog":
        """A log holding `events` (numbered 0, 1, ... in order), closed if the run has ended."""
        log = cls()
        log._events, log._closed = list(events), closed
        return log

    def append(self, kind: str, fields: dict[str, Any], kernels: Tensor | None = None, *, last: bool = False) -> Event:
        """Add an event (the final one if `last`) and wake every follower."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the event log is closed")
            event = Event(len(self._events), kind, fields, kernels)
            self._events.append(event)
            self._closed = last
            waiters = list(self._waiters)
        for loop, wake in waiters:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # that loop has closed: its follower is gone
                pass
        return event

    def since(self, seq: int) -> tuple[list[Event], bool]:
        """The events after `seq` (-1: all), and whether the log is closed."""
        with self._lock:
            return self._events[max(seq + 1, 0):], self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def followers(self) -> int:
        """Streams following right now (for tests and diagnostics)."""
        return len(self._waiters)

    def last_seq(self) -> int:
        with self._lock:
            return len(self._events) - 1

    async def follow(self, after: int = -1, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[Event | None]:
        """Each event after `after`, then each new one as it comes, until the end event; None when
        `keepalive` seconds pass without one."""
        wake = asyncio.Event()
        entry = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._waiters.add(entry)
        try:
            while True:
                wake.clear()  # before reading: an append after the read sets it again
                events, closed = self.since(after)
                for event in events:
                    yield event
                    after = event.seq
                if closed and not events:
                    return
                if not events:
                    try:
                        await asyncio.wait_for(wake.wait(), keepalive)
                    except TimeoutError:
                        yield None
        finally:
            with self._lock:
                self._waiters.discard(entry)

    async def wait_closed(self) -> None:
        """Return once the end event is in."""
        async for _ in self.follow(self.last_seq(), keepalive=3600):
            pass


POLL_SECONDS = 0.2  # how often a stream of a run trained by another process looks for new events


class StoredEventLog:
    """The event log of a run that another process trains (or trained), read from its record: the
    same interface as EventLog, followed by polling the database (the other process cannot wake us)."""

    def __init__(self, records: "RunRecordsLike", run_id: str) -> None:
        self._records, self._run_id = records, run_id

    def since(self, seq: int) -> tuple[list[Event], bool]:
        # Ended first, events second: a run's end event is written with its final status, so once
        # it reads as ended, the events read after it include the end.
        closed = self.closed
        events = [Event(s, kind, fields, kernels) for s, kind, fields, kernels in self._records.events(self._run_id, seq)]
        return events, closed

    @property
    def closed(self) -> bool:
        record = self._records.run(self._run_id)
        return record is None or record.status in ("done", "cancelled", "failed")

    @property
    def followers(self) -> int:
        return 0

    def last_seq(self) -> int:
        return self._records.last_seq(self._run_id)

    async def follow(self, after: int = -1, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[Event | None]:
        """As EventLog.follow: each event after `after`, then each new one, until the end event."""
        quiet = 0.0
        while True:
            events, closed = await asyncio.to_thread(self.since, after)
            for event in events:
                yield event
                after = event.seq
            if closed and not events:
                return
            if events:
                quiet = 0.0
                continue
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if quiet >= keepalive:
                quiet = 0.0
                yield None

    async def wait_closed(self) -> None:
        while not await asyncio.to_thread(lambda: self.closed):
            await asyncio.sleep(POLL_SECONDS)
