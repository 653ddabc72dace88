"""The optimizers, defined once: the training lab, the one-step view, the API schemas, the client
and the page (GET /api/optimizers) all read this table, so adding one is one edit here.

Each has two default learning rates, for two different jobs. `training_lr` trains the lab's nets
well in an epoch of mini-batches. `step_lr` is for one step on one image from a fresh optimizer
(the Backward view): a step that visibly moves the kernels and, on the built-in models, lowers the
loss. A first step is special (engine/step.py): Adam's, Adagrad's and RMSprop's are about lr·sign(g)
for every weight, so they need smaller rates there than in training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

OptimizerName = Literal["sgd", "momentum", "adam", "rmsprop", "adagrad"]
MOMENTUM = 0.9
MAX_LR = 10.0  # the largest learning rate a request may ask for


@dataclass(frozen=True)
class ParameterStep:
    """One parameter tensor (PyTorch's layout) before and after an optimizer step, the gradient the
    optimizer was given, and the update: after - before, which way and how far the step moved each
    value. The engine computes it (engine/step.py); the client returns it as the server sent it."""

    before: torch.Tensor
    after: torch.Tensor
    gradient: torch.Tensor
    update: torch.Tensor

    @classmethod
    def of(cls, before: torch.Tensor, after: torch.Tensor, gradient: torch.Tensor) -> ParameterStep:
        # Kept rather than recomputed from a float16 answer's before and after, whose rounding
        # (2⁻¹¹ relative) is larger than most single-step updates.
        return cls(before, after, gradient, after - before)


@dataclass(frozen=True)
class OptimizerKind:
    """One optimizer: what people call it, what it does, how torch.optim builds it, its default rates."""

    id: OptimizerName
    name: str
    description: str
    torch_class: type[torch.optim.Optimizer]
    training_lr: float
    step_lr: float
    settings: dict[str, Any] = field(default_factory=dict)  # besides lr: PyTorch's defaults spelled out

    def build(self, parameters: Iterable[nn.Parameter] | Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        """A fresh torch.optim optimizer of this kind over `parameters`."""
        return self.torch_class(parameters, lr=lr, **self.settings)  # type: ignore[call-arg]


OPTIMIZERS: dict[str, OptimizerKind] = {o.id: o for o in [
    OptimizerKind("sgd", "SGD", "Plain stochastic gradient descent: w ← w − lr · gradient.", torch.optim.SGD,
                  training_lr=0.1, step_lr=0.01),
    OptimizerKind("momentum", "SGD with momentum", f"SGD whose step is a running sum of past gradients "
                  f"(momentum {MOMENTUM}); its default learning rate in training is SGD's divided by 10, the same "
                  f"effective step once the momentum builds up.", torch.optim.SGD,
                  training_lr=0.01, step_lr=0.01, settings={"momentum": MOMENTUM}),
    OptimizerKind("adam", "Adam", "Adaptive moment estimation: per-weight steps from running means of the "
                  "gradient and its square (betas 0.9, 0.999).", torch.optim.Adam,
                  training_lr=0.001, step_lr=0.001, settings={"betas": (0.9, 0.999), "eps": 1e-8}),
    OptimizerKind("rmsprop", "RMSprop", "Per-weight steps divided by a running root mean square of the "
                  "gradient (alpha 0.99).", torch.optim.RMSprop,
                  training_lr=0.001, step_lr=0.0001, settings={"alpha": 0.99, "eps": 1e-8}),
    OptimizerKind("adagrad", "Adagrad", "Per-weight steps divided by the root of the sum of all past squared "
                  "gradients, so steps only ever shrink.", torch.optim.Adagrad,
                  training_lr=0.01, step_lr=0.001, settings={"eps": 1e-10}),
]}


def optimizer(name: str) -> OptimizerKind:
    """The optimizer called `name` (KeyError if there is none: callers check names first)."""
    return OPTIMIZERS[name]


def rates(which: Literal["training_lr", "step_lr"]) -> str:
    """'sgd 0.1, momentum 0.01, ...': the default rates, for descriptions."""
    return ", ".join(f"{o.id} {getattr(o, which):g}" for o in OPTIMIZERS.values())
