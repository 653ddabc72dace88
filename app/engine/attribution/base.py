"""The one interface every attribution method implements, and the options they share.

A method is a class with a name, a one- or two-sentence summary, the options it takes, and
`attribute(subject, x, target, options) -> Result`, the same call for every method (as Captum's
`Attribution.attribute` is). It computes on `subject.model`, which runs a private replica of the
model that returns its logits (replica.py, explain.py), never on the Graph's own module.
"""

from __future__ import annotations

import math
import operator
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from convscope.engine.attribution.layers import feature_layer
from convscope.engine.graph import Graph
from convscope.errors import InvalidRequest
from convscope.normalisation import black

# Captum announces on every call that it hooks the ReLUs (guided backprop, deconvolution); here they
# are always a private replica's (replica.py), so the warning would only fill the server's log.
warnings.filterwarnings("ignore", "Setting backward hooks on ReLU activations", UserWarning, r"captum\.")

OptionType = Literal["integer", "number", "string", "integer_pair"]
Pair = tuple[int, int]

# Caps that keep one request to seconds, not minutes: each step, sample or occlusion is one pass
# through the model (steps and samples a forward and a backward), so the cost is that many passes.
MAX_STEPS = 256
MAX_SAMPLES = 64
MAX_STDEVS = 10.0
MAX_SEED = 2**32 - 1
MAX_OCCLUSIONS = 1024
DEFAULT_STEPS = 50
DEFAULT_SAMPLES = 20
DEFAULT_STDEVS = 0.5
BASELINES = ("zero", "black")
# Activation values one batch may hold (per image: the input plus every layer's output). Batching
# the steps, samples and occlusions of one request saves Python overhead; this bound keeps a large
# model's batch (a ResNet-18 at 224×224 has 7.5 M values per image) from taking gigabytes.
BATCH_VALUES = 2**22


@dataclass(frozen=True)
class Option:
    """One option of a method, as GET /api/attributions/methods describes it to the page."""

    name: str
    type: OptionType  # "integer_pair": a whole number, or [height, width]
    default: int | float | str | None  # None: worked out for the model and input (see description)
    description: str
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None

    def check(self, value: object) -> Any:
        """`value` in this option's type and range, or InvalidRequest naming the option."""
        if self.type == "integer":
            number = _whole(value)
            if number is None or not self._in_range(number):
                raise InvalidRequest(f"'{self.name}' must be a whole number {self._range()}; got {value!r}.")
            return number
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not self._in_range(float(value)):
                raise InvalidRequest(f"'{self.name}' must be a finite number {self._range()}; got {value!r}.")
            return float(value)
        if self.type == "string":
            if not isinstance(value, str) or (self.enum is not None and value not in self.enum):
                known = f"one of: {', '.join(self.enum)}" if self.enum else "a string"
                raise InvalidRequest(f"'{self.name}' must be {known}; got {value!r}.")
            return value
        items = [value] if _whole(value) is not None else value
        pair = [_whole(v) for v in items] if isinstance(items, (list, tuple)) and 1 <= len(items) <= 2 else None
        if pair is None or any(v is None or not self._in_range(v) for v in pair):
            raise InvalidRequest(f"'{self.name}' must be a whole number or [height, width] of whole numbers, "
                                 f"each {self._range()}; got {value!r}.")
        height, width = (pair[0], pair[-1])
        assert height is not None and width is not None
        return height, width

    def _in_range(self, value: float) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def _range(self) -> str:
        low, high = (_text(v) for v in (self.minimum, self.maximum))
        if self.minimum is not None and self.maximum is not None:
            return f"from {low} to {high}"
        return f"of at least {low}" if self.minimum is not None else f"of at most {high}"


def _whole(value: object) -> int | None:
    """value as an int if it is one (numpy integers too), else None; bools are not numbers here."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _text(value: float | None) -> str:
    return f"{value:g}" if value is not None and value != int(value) else str(int(value or 0))


LAYER = Option("layer", "string", None, "the layer whose feature maps Grad-CAM weighs by their gradient: a conv "
               "layer, or an activation, pooling or batch norm after one (default: the last conv layer's "
               "activation, else the last conv layer)")
STEPS = Option("steps", "integer", DEFAULT_STEPS, "points on the path from the baseline to the input "
               "(Gauss-Legendre); more steps, a closer approximation of the integral", 1, MAX_STEPS)
BASELINE = Option("baseline", "string", "zero", "what 'no information' is: 'zero', zeros in the normalised "
                  "input space (Captum's default), or 'black', a black image normalised as the model's inputs are",
                  enum=BASELINES)
SAMPLES = Option("samples", "integer", DEFAULT_SAMPLES, "noisy copies of the input to average over",
                 1, MAX_SAMPLES)
STDEVS = Option("stdevs", "number", DEFAULT_STDEVS, "standard deviation of the Gaussian noise, in the "
                "normalised input space (a pixel's range [0, 1] spans 1/std there)", 0, MAX_STDEVS)
SEED = Option("seed", "integer", 0, "seed of the noise: the same seed gives the same map", 0, MAX_SEED)
WINDOW = Option("window", "integer_pair", None, "height and width of the occluding patch, in input pixels "
                "(default: a seventh of the input's shorter side, at least 1)", 1)
STRIDE = Option("stride", "integer_pair", None, "step between patch positions, at most the window "
                "(default: half the window, at least 1)", 1)
ALL_OPTIONS = (LAYER, STEPS, BASELINE, SAMPLES, STDEVS, SEED, WINDOW, STRIDE)


@dataclass(frozen=True)
class MethodOptions:
    """Every method option, validated, with the constant defaults filled in; a method reads its own.

    `layer`, `window` and `stride` stay None when not given: their defaults depend on the model
    and the input, and the method works them out.
    """

    layer: str | None = None
    steps: int = DEFAULT_STEPS
    baseline: str = "zero"
    samples: int = DEFAULT_SAMPLES
    stdevs: float = DEFAULT_STDEVS
    seed: int = 0
    window: Pair | None = None
    stride: Pair | None = None


@dataclass(frozen=True)
class Result:
    """A method's answer: the map over the input and, for layer methods, the map over the layer."""

    attribution: Tensor  # [1, C, H, W] like the input; grad_cam: [1, 1, H, W], one map for all channels
    options: dict[str, Any]  # the options used, defaults filled in, as the API reports them
    layer: str | None = None
    layer_attribution: Tensor | None = None  # [1, 1, h, w] at the layer's resolution


@dataclass(frozen=True)
class Subject:
    """What a method attributes: a private replica that returns logits, its Graph, and its input
    normalisation (for the 'black' baseline)."""

    model: nn.Module  # runs a replica leased for this request alone (replica.py): its hooks touch nobody else
    graph: Graph
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def batch(self, count: int, backward: bool = True) -> int:
        """How many of `count` inputs to run through the model at once (see batch_size)."""
        return batch_size(self.graph, count, backward)

    def baseline(self, kind: str, like: Tensor) -> Tensor:
        """The baseline input shaped like `like` [1, C, H, W]: zeros, or a black image normalised."""
        if kind == "zero":
            return torch.zeros_like(like).detach()
        return black(like, self.mean, self.std).to(like.dtype)

    def layer(self, name: str | None) -> tuple[str, nn.Module]:
        """The layer `name` (default: layers.default_layer) and its module in the replica."""
        layer = feature_layer(self.graph, name)
        assert layer.module is not None
        return layer.name, self.model.get_submodule(layer.module)


def batch_size(graph: Graph, count: int, backward: bool = True) -> int:
    """How many of `count` inputs a method runs through the model at once: as many as BATCH_VALUES
    activation values allow (a forward and backward keeps about three times the activations a
    forward alone does). Tests hand the same number to Captum, so both sum in the same order."""
    values_per_image = math.prod(graph.input_shape) + sum(math.prod(layer.output_shape) for layer in graph.layers)
    budget = BATCH_VALUES if backward else 3 * BATCH_VALUES
    return max(1, min(count, budget // max(1, values_per_image)))


class Method(ABC):
    """An attribution method: a name, what it computes in a sentence or two, its options, and one call."""

    name: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def needs_layer(cls) -> bool:
        return LAYER in cls.options

    @abstractmethod
    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        """The attribution of the target's logit to x [1, C, H, W] (a leaf that requires grad)."""
