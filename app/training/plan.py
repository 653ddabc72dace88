"""A run's settings checked against its dataset and the server's limits: what the run will do."""

import math
from dataclasses import dataclass

from convscope.config import Settings
from convscope.errors import InvalidRequest
from convscope.optimizers import OPTIMIZERS
from convscope.training.datasets import DatasetInfo
from convscope.training.schemas import (
    DEFAULT_STEP_EVENTS,
    MAX_EPOCHS,
    MAX_KERNEL_SNAPSHOTS,
    MAX_STEP_EVENTS,
    RunSettings,
)


@dataclass(frozen=True)
class Plan:
    """Resolved settings (no defaults left open) and the step arithmetic that follows from them."""

    settings: RunSettings
    train_size: int
    test_size: int
    steps_per_epoch: int  # the last batch of an epoch may be smaller
    total_steps: int
    epochs: int  # epochs touched; the last is partial when `steps` is not a multiple of an epoch
    log_every: int
    kernel_every: int  # every this many step events carries the kernels

    @property
    def step_events(self) -> int:
        return math.ceil(self.total_steps / self.log_every)


def invalid(field: str, sentence: str) -> InvalidRequest:
    """A 422 naming the field, with the same `errors` entry pydantic would give a program."""
    return InvalidRequest(f"'{field}': {sentence}", [{"loc": ["body", field], "msg": sentence, "type": "value_error"}])


def make_plan(body: RunSettings, data: DatasetInfo, limits: Settings) -> Plan:
    """The plan for `body` on `data`, or InvalidRequest (422) with a sentence naming the field."""
    if body.epochs is not None and body.steps is not None:
        raise invalid("steps", "give either 'epochs' or 'steps', not both.")
    if body.train_size is not None and body.train_size > data.train_size:
        raise invalid("train_size", f"{body.train_size:,} is more than the {data.train_size:,} training images "
                      f"of {data.name} here.")
    train_size = body.train_size or data.train_size
    if body.batch_size > train_size:
        raise invalid("batch_size", f"{body.batch_size:,} is more than the {train_size:,} images to train on.")
    per_epoch = math.ceil(train_size / body.batch_size)
    total = body.steps if body.steps is not None else (body.epochs or 1) * per_epoch
    field = "steps" if body.steps is not None else "epochs"
    if total > limits.training_max_steps:
        how = f"{total:,} steps" if body.steps is not None else \
            f"{body.epochs or 1} epochs of {per_epoch:,} steps are {total:,} steps"
        raise invalid(field, f"{how}; a run may take at most {limits.training_max_steps:,} "
                      f"(the server's CONVSCOPE_TRAINING_MAX_STEPS). Train fewer steps, or use a larger batch.")
    epochs = math.ceil(total / per_epoch)
    if epochs > MAX_EPOCHS:
        raise invalid(field, f"{total:,} steps of {per_epoch:,} per epoch make {epochs:,} epochs, and a run may "
                      f"have at most {MAX_EPOCHS} (each ends with a test pass). Train on more images.")
    wanted = body.log_every or math.ceil(total / DEFAULT_STEP_EVENTS)
    log_every = max(wanted, math.ceil(total / MAX_STEP_EVENTS))
    step_events = math.ceil(total / log_every)
    resolved = body.model_copy(update={
        "learning_rate": body.learning_rate or OPTIMIZERS[body.optimizer].training_lr,
        "epochs": None if body.steps is not None else (body.epochs or 1),
        "log_every": log_every,
    })
    return Plan(resolved, train_size, data.test_size, per_epoch, total, epochs, log_every,
                kernel_every=math.ceil(step_events / MAX_KERNEL_SNAPSHOTS))
