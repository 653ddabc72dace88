"""The training lab's records in the database (convscope.database): each run as it goes, its events,
and the model a finished run became, so that a restarted server (or another one on the same
database) lists every run, replays its curves and serves its model.

The run manager writes here from the training thread at each event; writes are small (a row and
an event, at most about a thousand per run) and each is its own short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from torch import Tensor

from convscope.database.tables import EventRecord, ModelRecord, RunRecord, SampleRecord


def tensor_bytes(t: Tensor) -> bytes:
    return save_tensors({"t": t.detach().contiguous()})


def bytes_tensor(data: bytes) -> Tensor:
    return load_tensors(data)["t"]


@dataclass(frozen=True)
class StoredModel:
    """A finished run's model as stored: its card, its state dict, and its sample PNGs by file name."""

    card: dict[str, Any]
    state: dict[str, Tensor]
    samples: dict[str, bytes]


class RunRecords:
    """Reads and writes of run records; safe to use from many threads (a session per call)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self._sessions()

    def add_run(self, run_id: str, plan: dict[str, Any], dataset: dict[str, Any], created: float,
                status: str = "queued") -> None:
        with self._session() as s, s.begin():
            s.add(RunRecord(id=run_id, plan=plan, dataset=dataset, status=status, created=created, step=0, epoch=0,
                            metrics={}, cancel_requested=False))

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self._session() as s, s.begin():
            s.execute(update(RunRecord).where(RunRecord.id == run_id).values(**fields))

    def add_event(self, run_id: str, seq: int, kind: str, fields: dict[str, Any], kernels: Tensor | None,
                  **run_fields: Any) -> None:
        """One event, and the run's row changed with it in the same transaction (a reader never sees
        a step count ahead of its event)."""
        with self._session() as s, s.begin():
            s.add(EventRecord(run_id=run_id, seq=seq, type=kind, fields=fields,
                              kernels=None if kernels is None else tensor_bytes(kernels)))
            if run_fields:
                s.execute(update(RunRecord).where(RunRecord.id == run_id).values(**run_fields))

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        with self._session() as s:
            return list(s.scalars(select(RunRecord).order_by(RunRecord.created, RunRecord.id)))

    def run(self, run_id: str) -> RunRecord | None:
        with self._session() as s:
            return s.get(RunRecord, run_id)

    def count(self, *statuses: str) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(RunRecord).where(RunRecord.status.in_(statuses))) or 0)

    def queue_position(self, run_id: str) -> int | None:
        """1 for the queued run that started waiting first, ...; None if this run is not queued."""
        with self._session() as s:
            queued = list(s.scalars(select(RunRecord.id).where(RunRecord.status == "queued")
                                    .order_by(RunRecord.created, RunRecord.id)))
        return queued.index(run_id) + 1 if run_id in queued else None

    def claim(self, run_id: str, worker: str, now: float) -> bool:
        """Take a queued run for training (queued -> running); False if it is not queued any more
        (cancelled, deleted, or claimed by another consumer first). Atomic: one UPDATE."""
        with self._session() as s, s.begin():
            done = s.execute(update(RunRecord).where(RunRecord.id == run_id, RunRecord.status == "queued")
                             .values(status="running", started=now, worker=worker, heartbeat=now))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def end(self, run_id: str, from_statuses: tuple[str, ...], seq: int | None, fields: dict[str, Any],
            **run_fields: Any) -> int | None:
        """End a run that is in one of `from_statuses`: its row changed and its end event added (at
        `seq`, or after its last event when None), in one transaction. The end event's seq, or None
        (and nothing written) if the run was not in those statuses: another process ended it first."""
        with self._session() as s, s.begin():
            done = s.execute(update(RunRecord).where(RunRecord.id == run_id, RunRecord.status.in_(from_statuses))
                             .values(**run_fields))
            if not done.rowcount:  # type: ignore[attr-defined]
                return None
            if seq is None:
                last = s.scalar(select(func.max(EventRecord.seq)).where(EventRecord.run_id == run_id))
                seq = -1 if last is None else int(last)
                seq += 1
            s.add(EventRecord(run_id=run_id, seq=seq, type="end", fields=fields, kernels=None))
            return seq

    def ask_to_cancel(self, run_id: str, reason: str) -> bool:
        """Tell whichever process trains this run to stop at its next step; False if it is not running."""
        with self._session() as s, s.begin():
            done = s.execute(update(RunRecord).where(RunRecord.id == run_id, RunRecord.status == "running")
                             .values(cancel_requested=True, cancel_reason=reason))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def cancel_asked(self, run_id: str) -> str | None:
        """The reason, if someone asked for this run to stop."""
        with self._session() as s:
            row = s.execute(select(RunRecord.cancel_requested, RunRecord.cancel_reason)
                            .where(RunRecord.id == run_id)).first()
        return (row[1] or "Cancelled.") if row is not None and row[0] else None

    def beat(self, run_ids: list[str], now: float) -> None:
        """The process training these runs is alive."""
        if run_ids:
            with self._session() as s, s.begin():
                s.execute(update(RunRecord).where(RunRecord.id.in_(run_ids), RunRecord.status == "running")
                          .values(heartbeat=now))

    def stale(self, before: float) -> list[RunRecord]:
        """Running runs whose process has not said it is alive since `before`."""
        with self._session() as s:
            return list(s.scalars(select(RunRecord).where(
                RunRecord.status == "running", or_(RunRecord.heartbeat < before, RunRecord.heartbeat.is_(None)))))

    def queued(self) -> list[str]:
        with self._session() as s:
            return list(s.scalars(select(RunRecord.id).where(RunRecord.status == "queued")
                                  .order_by(RunRecord.created, RunRecord.id)))

    def last_seq(self, run_id: str) -> int:
        with self._session() as s:
            last = s.scalar(select(func.max(EventRecord.seq)).where(EventRecord.run_id == run_id))
        return -1 if last is None else int(last)

    def model_ids(self) -> list[str]:
        """The models of the runs that are done, oldest first (a model stored just before its run
        was cancelled or taken for dead is not one)."""
        with self._session() as s:
            return list(s.scalars(select(ModelRecord.id).join(RunRecord, RunRecord.id == ModelRecord.run_id)
                                  .where(RunRecord.status == "done").order_by(RunRecord.created, RunRecord.id)))

    def beyond(self, keep: int, final: tuple[str, ...]) -> list[str]:
        """The ended runs to forget so that at most `keep` runs remain, oldest first."""
        with self._session() as s:
            total = int(s.scalar(select(func.count()).select_from(RunRecord)) or 0)
            if total <= keep:
                return []
            return list(s.scalars(select(RunRecord.id).where(RunRecord.status.in_(final))
                                  .order_by(RunRecord.created, RunRecord.id).limit(total - keep)))

    def events(self, run_id: str, after: int = -1) -> list[tuple[int, str, dict[str, Any], Tensor | None]]:
        """The run's events after seq `after`, in order: (seq, type, fields, kernels)."""
        with self._session() as s:
            rows = s.execute(select(EventRecord.seq, EventRecord.type, EventRecord.fields, EventRecord.kernels)
                             .where(EventRecord.run_id == run_id, EventRecord.seq > after).order_by(EventRecord.seq))
            return [(seq, kind, fields, None if k is None else bytes_tensor(k)) for seq, kind, fields, k in rows]

    def add_model(self, run_id: str, card: dict[str, Any], state: dict[str, Tensor], samples: dict[str, bytes]) -> None:
        with self._session() as s, s.begin():
            s.add(ModelRecord(id=card["id"], run_id=run_id, card=card,
                              weights=save_tensors({k: v.detach().contiguous() for k, v in state.items()})))
            s.add_all(SampleRecord(model_id=card["id"], file=file, png=png) for file, png in samples.items())

    def model(self, model_id: str) -> StoredModel | None:
        with self._session() as s:
            found = s.get(ModelRecord, model_id)
            if found is None:
                return None
            rows = s.execute(select(SampleRecord.file, SampleRecord.png).where(SampleRecord.model_id == model_id))
            samples = {file: png for file, png in rows}
            return StoredModel(found.card, load_tensors(found.weights), samples)

    def delete_run(self, run_id: str) -> None:
        """The run, its events, its model and the model's samples (foreign keys cascade, but SQLite
        only cascades with its pragma on; deleting child rows first works everywhere)."""
        with self._session() as s, s.begin():
            models = list(s.scalars(select(ModelRecord.id).where(ModelRecord.run_id == run_id)))
            s.execute(delete(SampleRecord).where(SampleRecord.model_id.in_(models)))
            s.execute(delete(ModelRecord).where(ModelRecord.run_id == run_id))
            s.execute(delete(EventRecord).where(EventRecord.run_id == run_id))
            s.execute(delete(RunRecord).where(RunRecord.id == run_id))
