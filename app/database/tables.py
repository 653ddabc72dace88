"""The schema: training runs, their events, and the models finished runs became.

Everything a server process needs to show or serve a run lives here, weights and sample images
included, so that processes on other machines, with no folder in common, see the same runs.
Times are Unix seconds (floats), JSON columns hold what the API reports, tensors are safetensors bytes.
"""

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, bytes: LargeBinary}


class RunRecord(Base):
    """One training run: its plan, where it is, and how it ended."""

    __tablename__ = "training_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    plan: Mapped[dict[str, Any]]  # the resolved settings and the step arithmetic (training.plan.Plan)
    dataset: Mapped[dict[str, Any]]  # the dataset's id, name and kind, as the run's summary shows them
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | running | done | cancelled | failed
    created: Mapped[float] = mapped_column(Float, index=True)
    started: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)
    steps_began: Mapped[float | None] = mapped_column(Float)  # when the first step began (for the ETA)
    elapsed: Mapped[float | None] = mapped_column(Float)  # seconds from start to end, once ended
    step: Mapped[int] = mapped_column(Integer, default=0)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]]  # loss, accuracy, test_loss, test_accuracy (None until measured)
    model: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(80))  # host:pid of the process training it
    heartbeat: Mapped[float | None] = mapped_column(Float)  # when that process last said it is alive


class EventRecord(Base):
    """One event of a run's log (start, step, epoch, end), numbered from 0 within the run."""

    __tablename__ = "training_events"

    run_id: Mapped[str] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    fields: Mapped[dict[str, Any]]
    kernels: Mapped[bytes | None]  # the first conv layer's weight as safetensors, on some events


class ModelRecord(Base):
    """The model a finished run became: its card and weights."""

    __tablename__ = "trained_models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    card: Mapped[dict[str, Any]]
    weights: Mapped[bytes]  # the state dict as safetensors


class SampleRecord(Base):
    """One of a trained model's sample images (PNG), by the file name its card gives."""

    __tablename__ = "model_samples"

    model_id: Mapped[str] = mapped_column(ForeignKey("trained_models.id", ondelete="CASCADE"), primary_key=True)
    file: Mapped[str] = mapped_column(String(200), primary_key=True)
    png: Mapped[bytes]
