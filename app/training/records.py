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
from sqlalchemy import Engine, delete, select, update
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
