"""The training lab's request and response bodies (pydantic), which are also its OpenAPI documentation."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from convscope.optimizers import MAX_LR, OptimizerName
from convscope.schemas import Tensor
from convscope.training.datasets import DatasetId, Kind
from convscope.training.nets import Activation, Architecture, LossName, Pooling

Status = Literal["queued", "running", "done", "cancelled", "failed"]
MAX_EPOCHS = 100  # each ends with a pass over the test set
MAX_BATCH_SIZE = 1024
MAX_STEP_EVENTS = 1000  # per run; log_every is raised to stay within it
DEFAULT_STEP_EVENTS = 200  # what the default log_every aims at
MAX_KERNEL_SNAPSHOTS = 100  # step events that carry the first layer's kernels, per run


class RunSettings(BaseModel):
    """A training run's settings. Every field has a default: `{}` trains LeNet-style on MNIST digits
    with ReLU, max pooling, cross-entropy and Adam for one epoch. Whole numbers must be JSON integers."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"dataset": "mnist", "architecture": "lenet", "activation": "sigmoid", "pooling": "avg",
         "loss": "cross_entropy", "optimizer": "sgd", "learning_rate": 0.1, "batch_size": 32, "epochs": 1, "seed": 0},
        {"dataset": "fashion-mnist", "architecture": "tinyvgg", "optimizer": "adam", "steps": 300,
         "train_size": 2000}]})

    dataset: DatasetId = "mnist"
    architecture: Architecture = "lenet"
    activation: Activation = "relu"
    pooling: Pooling = "max"
    loss: LossName = Field(default="cross_entropy", description="`mse` is the mean of (softmax(logits) − one-hot)²")
    optimizer: OptimizerName = "adam"
    learning_rate: float | None = Field(default=None, gt=0, le=MAX_LR, strict=True, allow_inf_nan=False,
                                        description="default: the optimizer's own (GET /api/training/options)")
    batch_size: int = Field(default=32, ge=1, le=MAX_BATCH_SIZE, strict=True)
    epochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS, strict=True,
                               description="passes over the training set; default 1, unless `steps` is given")
    steps: int | None = Field(default=None, ge=1, strict=True,
                              description="optimizer steps to train for, instead of `epochs` (not both)")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, strict=True,
                      description="draws the initial weights, the training subset and the batch order: "
                      "the same settings and seed give the same curve")
    train_size: int | None = Field(default=None, ge=1, strict=True,
                                   description="train on this many images, drawn by the seed (default: all)")
    log_every: int | None = Field(default=None, ge=1, strict=True,
                                  description=f"a step event every this many steps (default: about "
                                  f"{DEFAULT_STEP_EVENTS} per run; raised so a run has at most {MAX_STEP_EVENTS})")


class RunUrls(BaseModel):
    run: str = Field(examples=["/api/training/runs/3f9a0c12"])
    events: str = Field(examples=["/api/training/runs/3f9a0c12/events"])
    model: str | None = Field(examples=["/api/models/run-3f9a0c12"], description="once the run is done")


class RunData(BaseModel):
    """The data a run trains on."""

    id: DatasetId
    name: str
    kind: Kind = Field(description="`subset`: shipped with ConvScope; `full`: the whole dataset, installed")
    train_size: int = Field(description="images this run trains on")
    test_size: int


class RunSummary(BaseModel):
    """A run's state. `progress` is the fraction of steps done; `elapsed` and `eta` are seconds."""

    id: str = Field(examples=["3f9a0c12"])
    status: Status
    settings: RunSettings = Field(description="as sent, with the defaults filled in (learning_rate, epochs or "
                                  "steps, log_every)")
    dataset: RunData
    created: str = Field(examples=["2025-01-01T12:00:00.000Z"])
    started: str | None
    finished: str | None
    queue_position: int | None = Field(description="1 for the next run to start, while queued")
    step: int
    total_steps: int
    steps_per_epoch: int
    epoch: int = Field(description="the epoch the run is in (1-based), 0 before the first step")
    progress: float
    elapsed: float
    eta: float | None = Field(description="seconds until the last step, estimated from the steps so far")
    loss: float | None = Field(description="training loss, mean over the batches of the last step event")
    accuracy: float | None = Field(description="training accuracy over the same batches")
    test_loss: float | None = Field(description="on the test set, at the last epoch end (or at the end)")
    test_accuracy: float | None
    model: str | None = Field(description="the trained model's id, served by /api/models, once done")
    reason: str | None = Field(description="why a run failed, was cancelled or stopped early")
    urls: RunUrls


class RunList(BaseModel):
    runs: list[RunSummary] = Field(description="oldest first")


class StartEvent(BaseModel):
    """The run has begun training: what it will do."""

    type: Literal["start"]
    seq: int
    run: str
    total_steps: int
    steps_per_epoch: int
    epochs: int = Field(description="epochs the run will touch (the last may be partial when `steps` is set)")
    train_size: int
    test_size: int
    log_every: int
    kernel_layer: str = Field(examples=["conv1"], description="the layer whose kernels step events carry")
    elapsed: float


class StepEvent(BaseModel):
    """Every `log_every` steps, and at the last step. `loss` and `accuracy` are means over the batches
    since the previous step event; `kernels` (the first conv layer's weight) on some of them."""

    type: Literal["step"]
    seq: int
    run: str
    step: int
    epoch: int
    loss: float
    accuracy: float
    progress: float
    elapsed: float
    eta: float
    kernels: Tensor | None


class EpochEvent(BaseModel):
    """At the end of each complete epoch: the epoch's training means and the whole test set's."""

    type: Literal["epoch"]
    seq: int
    run: str
    epoch: int
    step: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    elapsed: float
    eta: float
    kernels: Tensor


class EndEvent(BaseModel):
    """The last event: how the run ended; the test metrics of the final weights when done."""

    type: Literal["end"]
    seq: int
    run: str
    status: Literal["done", "cancelled", "failed"]
    reason: str | None
    step: int
    elapsed: float
    test_loss: float | None
    test_accuracy: float | None
    model: str | None


RunEvent = Annotated[StartEvent | StepEvent | EpochEvent | EndEvent, Field(discriminator="type")]


class RunDetail(RunSummary):
    history: list[RunEvent] = Field(description="every event so far, as the event stream sends them")


class ChoiceInfo(BaseModel):
    id: str
    name: str
    description: str


class ArchitectureInfo(ChoiceInfo):
    parameter_count: int


class OptimizerInfo(ChoiceInfo):
    learning_rate: float = Field(description="the default learning rate")


class DatasetInfoOut(ChoiceInfo):
    kind: Kind = Field(description="`subset`: shipped with ConvScope; `full`: the whole dataset, installed")
    train_size: int
    test_size: int
    classes: list[str]
    licence: str


class Limits(BaseModel):
    max_steps: int = Field(description="optimizer steps per run")
    max_seconds: int = Field(description="training time per run; a run stops there and keeps its model")
    max_epochs: int
    max_batch_size: int
    max_step_events: int
    slots: int = Field(description="runs that train at once")
    max_queued: int = Field(description="runs waiting for a slot; past that, starting a run answers 429")
    max_runs: int = Field(description="runs remembered; past that, the oldest finished one is forgotten")


class TrainingOptions(BaseModel):
    """Everything a form needs: each setting's choices, the defaults, and the limits."""

    datasets: list[DatasetInfoOut]
    architectures: list[ArchitectureInfo]
    activations: list[ChoiceInfo]
    poolings: list[ChoiceInfo]
    losses: list[ChoiceInfo]
    optimizers: list[OptimizerInfo]
    defaults: RunSettings
    limits: Limits
