"""One optimizer step on a private copy of the chosen layers' parameters: kernels before and after.

`take_step` differentiates the loss with probe.backward (which writes no `.grad` on the shared
model), copies the chosen parameters, gives the copies those gradients and a freshly built
torch.optim optimizer, calls `step()` once, and re-evaluates the same loss with the updated copies
standing in for the shared parameters (probe.forward's `parameters`). The shared Graph is only read.

A fresh optimizer has no state, so this is a *first* step, which for some optimizers is special:
momentum's velocity starts as the gradient itself, so its first step equals plain SGD's; Adam's
bias-corrected first step is lr·g/(|g| + eps) ≈ lr·sign(g) for every weight, whatever the
gradient's size; Adagrad's is lr·sign(g) too, and RMSprop's lr·g/√((1-alpha)·g²) ≈ 10·lr·sign(g).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from convscope.engine import probe
from convscope.engine.graph import Graph
from convscope.errors import InvalidRequest
from convscope.optimizers import MAX_LR, OPTIMIZERS, ParameterStep


@dataclass(frozen=True)
class StepResult:
    """The loss before and after one step, and every stepped parameter, by layer then key."""

    target: int
    optimizer: str
    lr: float
    hyperparameters: dict[str, Any]  # the optimizer's settings besides lr
    loss: float
    loss_after: float
    before: probe.ForwardResult  # the model's logits and probabilities before the step ...
    after: probe.ForwardResult  # ... and after it (no layer outputs recorded)
    layers: dict[str, dict[str, ParameterStep]]  # layer -> {"weight": ..., "bias": ...}


def take_step(graph: Graph, x: Tensor, target: int | None = None, loss: str = "cross_entropy",
              optimizer: str = "sgd", lr: float | None = None, layers: Iterable[str] | None = None) -> StepResult:
    """Update the chosen layers' parameters (default: every layer that has any) once, with a fresh
    `optimizer` at rate `lr` (default: its step_lr, convscope.optimizers), from the gradient of `loss` for `target`
    (default: the predicted class) on x [1, C, H, W]."""
    if optimizer not in OPTIMIZERS:
        raise InvalidRequest(f"'optimizer': there is no optimizer called '{optimizer}'; "
                             f"choose one of: {', '.join(OPTIMIZERS)}.")
    kind = OPTIMIZERS[optimizer]
    rate = kind.step_lr if lr is None else _rate(lr)
    names = _chosen(graph, layers)
    grads = probe.backward(graph, x, target, loss, names)

    # Our own leaf per shared tensor: a parameter that two layers share (a module called twice)
    # is one tensor with one gradient, and is stepped once.
    before: dict[int, Tensor] = {}
    private: dict[int, nn.Parameter] = {}
    for name in names:
        for key, path in graph.parameter_paths[name].items():
            tensor = graph.module.get_parameter(path)
            if id(tensor) not in private:
                before[id(tensor)] = tensor.detach().clone()
                private[id(tensor)] = nn.Parameter(tensor.detach().clone())
                private[id(tensor)].grad = grads.parameter_gradients[name][key].clone()
    kind.build(list(private.values()), rate).step()

    # The model again with the updated copies in place of the shared tensors, wherever those are used.
    updated = {path: private[id(tensor)] for path, tensor in graph.module.named_parameters(remove_duplicate=False)
               if id(tensor) in private}
    after = probe.forward(graph, x, [], updated)

    steps: dict[str, dict[str, ParameterStep]] = {}
    for name in names:
        for key, path in graph.parameter_paths[name].items():
            shared = id(graph.module.get_parameter(path))
            steps.setdefault(name, {})[key] = ParameterStep.of(
                before=before[shared], after=private[shared].detach(), gradient=grads.parameter_gradients[name][key])
    return StepResult(
        target=grads.target, optimizer=optimizer, lr=rate, hyperparameters=dict(kind.settings), loss=grads.loss,
        loss_after=probe.loss_value(after, grads.target, loss),
        before=probe.ForwardResult(grads.output, {}, grads.logits, grads.probabilities), after=after,
        layers=steps)


def _rate(lr: object) -> float:
    """lr as a float in (0, MAX_LR]; bools, strings, NaN and infinities are refused."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise InvalidRequest(f"'lr': the learning rate must be a number, not {lr!r}.")
    rate = float(lr)
    if not math.isfinite(rate) or not 0 < rate <= MAX_LR:
        raise InvalidRequest(f"'lr': the learning rate must be greater than 0 and at most {MAX_LR:g}; got {rate:g}.")
    return rate


def _chosen(graph: Graph, layers: Iterable[str] | None) -> list[str]:
    """The layers to step, in execution order: the named ones (each must have parameters), or every
    layer with parameters. An unknown name raises NotFound, as in forward and backward."""
    with_parameters = [layer.name for layer in graph.layers if layer.name in graph.parameter_paths]
    listing = ", ".join(with_parameters) or "none"
    if layers is None:
        if not with_parameters:
            raise InvalidRequest("This model has no parameters, so there is nothing for an optimizer to update.")
        return with_parameters
    wanted = [graph.layer(name).name for name in layers]
    bare = [name for name in wanted if name not in graph.parameter_paths]
    if bare:
        raise InvalidRequest(f"'layers': layer '{bare[0]}' has no parameters to update. "
                             f"The layers with parameters are: {listing}.")
    if not wanted:
        raise InvalidRequest(f"'layers' is empty: name at least one layer to update. "
                             f"The layers with parameters are: {listing}.")
    return [name for name in with_parameters if name in wanted]
