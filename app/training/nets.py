"""What a run may choose: architecture, activation, pooling and loss, with their defaults (the optimizers
are convscope.optimizers, shared with the one-step view).

The networks are the built-in models' own classes (models/lenet.py, models/tinyvgg.py), so a lab
model is traced, drawn and served exactly like a built-in one, from the same factory and kwargs.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch._dynamo  # noqa: F401  (see below)
import torch.nn.functional as F
from torch import Tensor, nn

from convscope import layer_types
from convscope.factory import build

# torch.optim imports torch._dynamo on first use: 1.5–2 s of Python holding the GIL, which would
# stall every request in flight when the first run starts. Imported here, it is paid at start-up.

Architecture = Literal["lenet", "tinyvgg"]
# The activation layer types' ids (convscope.layer_types.ACTIVATIONS), for request validation and the schema.
Activation = Literal[tuple(layer_types.ACTIVATIONS)]  # type: ignore[valid-type]
Pooling = Literal["max", "avg"]
LossName = Literal["cross_entropy", "mse"]


@dataclass(frozen=True)
class Choice:
    """One option of a setting, as the options listing shows it."""

    id: str
    name: str
    description: str


@dataclass(frozen=True)
class Net(Choice):
    factory: str  # "package.module:callable", as in a model card
    kwargs: dict[str, Any]  # besides activation and pooling


ARCHITECTURES: dict[str, Net] = {n.id: n for n in [
    Net("lenet", "LeNet-style", "Two 5×5 convolutions (6 then 16 kernels), each followed by the activation "
        "and 2×2 pooling, then three linear layers (120, 84, 10), as models/lenet.py (mnist-lenet).",
        "convscope.models.lenet:LeNet", {}),
    Net("tinyvgg", "TinyVGG-style", "Two blocks of two 3×3 convolutions (16 kernels each) with the activation, "
        "each block ending in 2×2 pooling, then one linear layer, as models/tinyvgg.py (fashion-tinyvgg has "
        "32 kernels). Fewer parameters than LeNet-style but about 7× the arithmetic per image: slower to train.",
        "convscope.models.tinyvgg:TinyVGG", {"channels": 16}),
]}
# Every activation layer type (convscope.layer_types), as the models build them (models/lenet.py).
ACTIVATIONS: dict[str, Choice] = {t.id: Choice(t.id, t.name, t.description) for t in layer_types.ACTIVATIONS.values()}
POOLINGS: dict[str, Choice] = {c.id: c for c in [
    Choice("max", "Max pooling", "Each 2×2 window keeps its largest value."),
    Choice("avg", "Average pooling", "Each 2×2 window keeps its mean (LeNet's original subsampling)."),
]}
LOSSES: dict[str, Choice] = {c.id: c for c in [
    Choice("cross_entropy", "Cross-entropy", "−log of the probability (softmax of the logits) given to the "
           "true class, averaged over the batch."),
    Choice("mse", "Mean squared error", "Mean over the batch and the classes of (softmax(logits) − one-hot "
           "target)², the same definition as the backward endpoint's `mse`. Its gradient vanishes when a "
           "wrong class is confidently predicted, so it learns more slowly than cross-entropy."),
]}
def architecture_kwargs(architecture: str, activation: str, pooling: str) -> dict[str, Any]:
    """The factory kwargs a model card records for this choice."""
    return {**ARCHITECTURES[architecture].kwargs, "activation": activation, "pooling": pooling}


def build_net(architecture: str, activation: str, pooling: str, generator: torch.Generator) -> nn.Module:
    """The network, its weights drawn from `generator` (not from torch's process-wide RNG, which
    other threads may be using), with PyTorch's own default scheme for conv and linear layers."""
    net = build(ARCHITECTURES[architecture].factory, architecture_kwargs(architecture, activation, pooling))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                # as Conv2d.reset_parameters / Linear.reset_parameters, plus the generator
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in)
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    return net


def loss_function(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """(logits [B, K], labels [B]) → the mean loss."""
    if name == "mse":
        return lambda logits, labels: F.mse_loss(logits.softmax(1), F.one_hot(labels, logits.shape[1]).float())
    return F.cross_entropy


def first_conv(net: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first convolution (by isinstance, in definition order): the kernels the page redraws."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError("the network has no convolution")
