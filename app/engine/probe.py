"""Forward and backward passes that record every layer's output and gradient, sharing no state.

Each call runs the Graph's GraphModule through its own fx Interpreter: no hooks, no `.grad`
writes, nothing stored on the module, so any number of threads may probe one Graph at once.

A model may end in a softmax layer (`nn.Softmax(dim=1)`, `F.softmax(x, 1)`, ...): its output is
then probabilities, not logits. Both passes find such a final softmax (`final_softmax`), always
record its input, and report that input as the model's `logits` and its output as the
`probabilities`; the losses are taken on those real logits, never on a second softmax.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, SupportsIndex, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx import Node

from convscope.engine.graph import Graph
from convscope.engine.runner import Runner
from convscope.errors import InvalidRequest

LOSSES = ("cross_entropy", "mse", "logit")


@dataclass(frozen=True)
class ForwardResult:
    """The model's output [1, K], the recorded layer outputs (batch dim kept), and the real logits
    and probabilities [1, K], all detached.

    `logits` is the input of a final softmax layer if the model ends in one (`output` is then the
    probabilities), else `output` itself; `probabilities` is the final softmax's output, else
    `softmax(output)`.
    """

    output: Tensor
    activations: dict[str, Tensor]
    logits: Tensor
    probabilities: Tensor


@dataclass(frozen=True)
class BackwardResult:
    """A loss, and its gradients with respect to the input, layer outputs and layer parameters."""

    loss: float
    target: int
    output: Tensor
    input_gradient: Tensor
    activations: dict[str, Tensor]
    activation_gradients: dict[str, Tensor]
    parameter_gradients: dict[str, dict[str, Tensor]]
    logits: Tensor  # as in ForwardResult
    probabilities: Tensor


def final_softmax(graph: Graph) -> str | None:
    """The name of the model's last layer if it is a softmax over the classes, else None."""
    last = graph.layers[-1] if graph.layers else None
    if last is None or last.type != "softmax" or len(last.output_shape) != 1:
        return None
    return last.name if last.attributes.get("dim") in (None, 1, -1) else None


class _Recorder(Runner):
    """Runs a Graph once, keeping the outputs of the chosen layers (autograd graph intact), and
    the input of a final softmax layer: the model's real logits."""

    def __init__(self, graph: Graph, layers: list[str], parameters: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(graph.module, graph.inplace)
        self.wanted = {graph.nodes[name]: name for name in layers}  # fx node name -> layer name
        self.stand_ins = _stand_ins(graph.module, parameters or {})
        self.outputs: dict[str, Tensor] = {}
        head = final_softmax(graph)
        self.head = graph.nodes[head] if head is not None else None  # its fx node name
        self.head_input: Tensor | None = None
        self.head_output: Tensor | None = None

    def run_node(self, n: Node) -> Any:
        if n.name == self.head:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            first = args[0] if args else kwargs.get("input")
            if isinstance(first, Tensor):
                self.head_input = first
        out = super().run_node(n)
        if n.name == self.head:
            self.head_output = out
        layer = self.wanted.get(n.name)
        if layer is not None:
            self.outputs[layer] = out
        return out

    def fetch_attr(self, target: str) -> Any:
        """A module or parameter by path; a stand-in where one was given."""
        found = self.stand_ins.get(target)
        return super().fetch_attr(target) if found is None else found

    def split(self, output: Tensor) -> tuple[Tensor, Tensor]:
        """(logits, probabilities) of the model whose output this run returned."""
        if self.head_input is not None and output is self.head_output and self.head_input.shape == output.shape:
            return self.head_input, output
        return output, output.softmax(1)


def forward(graph: Graph, x: Tensor, layers: Iterable[str] | None = None,
            parameters: Mapping[str, Tensor] | None = None) -> ForwardResult:
    """Run the model on x [1, C, H, W] and return its logits and the chosen layers' outputs.

    `parameters` maps parameter paths (as `graph.module.named_parameters()` names them) to tensors
    used in their place for this run only; the Graph's own modules are not changed."""
    names = _select(graph, layers)
    x = _check_input(graph, x)
    with torch.no_grad():
        recorder = _Recorder(graph, names, parameters)
        output = recorder.run(x)
        logits, probabilities = recorder.split(output)
    return ForwardResult(output.detach(), {n: recorder.outputs[n].detach() for n in names},
                         logits.detach(), probabilities.detach())


def backward(graph: Graph, x: Tensor, target: int | None = None, loss: str = "cross_entropy",
             layers: Iterable[str] | None = None) -> BackwardResult:
    """Run the model on x, then differentiate `loss` for `target` (default: the predicted class).

    Every loss reads the real logits: for a model that ends in a softmax layer, that layer's input.
    `cross_entropy` and `logit` are then functions of those logits alone, so the final softmax
    layer's own activation gradient is zero for them (the loss does not pass through it), while
    every layer before it gets the same gradients as the model without the softmax. `mse` compares
    the probabilities with the one-hot target, and reads them from the softmax layer's output
    (equal to softmax of the logits), so its gradient passes through that layer.
    """
    if loss not in LOSSES:
        raise InvalidRequest(f"There is no loss called '{loss}'; choose one of: {', '.join(LOSSES)}.")
    target = _integer(target)
    names = _select(graph, layers)
    # The caller's tensor is never touched: we differentiate with respect to our own leaf.
    x_leaf = _check_input(graph, x).clone().requires_grad_(True)
    with torch.enable_grad():
        recorder = _Recorder(graph, names)
        output = recorder.run(x_leaf)
        logits, probabilities = recorder.split(output)
        classes = logits.shape[1]
        chosen = int(logits.argmax(1).item()) if target is None else target
        if not 0 <= chosen < classes:
            raise InvalidRequest(f"The target must be a class index from 0 to {classes - 1}; got {chosen}.")
        value = _loss(logits, probabilities, chosen, loss)
        params = {(layer, key): graph.module.get_parameter(path)
                  for layer in names for key, path in graph.parameter_paths.get(layer, {}).items()}
        wrt = [x_leaf, *(recorder.outputs[n] for n in names), *params.values()]
        # One autograd call for everything; tensors outside the autograd graph get zeros.
        live = [t for t in wrt if t.requires_grad] if value.requires_grad else []
        grads = dict(zip(map(id, live), torch.autograd.grad(value, live, allow_unused=True) if live else ()))
    found = [_or_zeros(grads.get(id(t)), t) for t in wrt]
    activation_grads = dict(zip(names, found[1 : 1 + len(names)]))
    param_grads: dict[str, dict[str, Tensor]] = {}
    for (layer, key), grad in zip(params, found[1 + len(names) :]):
        param_grads.setdefault(layer, {})[key] = grad
    return BackwardResult(
        loss=float(value.item()), target=chosen, output=output.detach(), input_gradient=found[0],
        activations={n: recorder.outputs[n].detach() for n in names},
        activation_gradients=activation_grads, parameter_gradients=param_grads,
        logits=logits.detach(), probabilities=probabilities.detach())


def loss_value(result: ForwardResult, target: int, loss: str) -> float:
    """The loss `backward` would report for this forward result: the same function, not differentiated."""
    return float(_loss(result.logits, result.probabilities, target, loss).item())


def _stand_ins(root: nn.Module, parameters: Mapping[str, Tensor]) -> dict[str, Any]:
    """By path: the given parameters, and shallow copies of every module on the way to them that
    hold the new tensors instead (with their own `_parameters` and `_modules` dicts, so the shared
    modules, which other requests are running, never change). No GraphModule is copied: each copy
    of one would compile its code again, and torch.fx keeps every compiled source for good."""
    found: dict[str, Any] = dict(parameters)
    for path in parameters:
        root.get_parameter(path)  # AttributeError for a path the model does not have
        atoms = path.split(".")
        for depth in range(len(atoms) - 1, 0, -1):  # from the owner up to a child of the root
            owner, child = ".".join(atoms[:depth]), atoms[depth]
            twin = found.get(owner)
            if twin is None:
                twin = found[owner] = copy.copy(root.get_submodule(owner))
                twin._parameters, twin._modules = dict(twin._parameters), dict(twin._modules)
            if depth == len(atoms) - 1:
                cast(dict[str, Any], twin._parameters)[child] = parameters[path]  # any Tensor serves
            else:
                twin._modules[child] = found[".".join(atoms[: depth + 1])]
    return found


def _integer(target: object) -> int | None:
    """The target as an int (numpy integers too); bools, floats and strings are refused."""
    if target is None:
        return None
    if not isinstance(target, bool) and isinstance(target, SupportsIndex):
        try:
            return operator.index(target)
        except TypeError:  # e.g. a float tensor, which claims __index__ but refuses it
            pass
    raise InvalidRequest(f"The target must be a class index (an integer), not {target!r}.")


def _or_zeros(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like).detach() if grad is None else grad.detach()


def _loss(logits: Tensor, probabilities: Tensor, target: int, loss: str) -> Tensor:
    """cross_entropy of the logits, mse (mean over classes of (probabilities - one_hot)^2), or the
    raw target logit. `probabilities` is softmax(logits), possibly computed by the model itself."""
    if loss == "cross_entropy":
        return F.cross_entropy(logits, torch.tensor([target], device=logits.device))
    if loss == "mse":
        one_hot = F.one_hot(torch.tensor([target], device=logits.device), logits.shape[1])
        return ((probabilities - one_hot.to(probabilities.dtype)) ** 2).mean()
    return logits[0, target]


def _select(graph: Graph, layers: Iterable[str] | None) -> list[str]:
    """The layers to record, in execution order; unknown names raise NotFound."""
    if layers is None:
        return [layer.name for layer in graph.layers]
    wanted = {graph.layer(name).name for name in layers}
    return [layer.name for layer in graph.layers if layer.name in wanted]


def _check_input(graph: Graph, x: Tensor) -> Tensor:
    """x as a detached tensor in the model's dtype, after checking its shape and values."""
    if not isinstance(x, Tensor):
        raise InvalidRequest(f"The input must be a tensor, not {type(x).__name__}.")
    expected = [1, *graph.input_shape]
    if list(x.shape) != expected:
        raise InvalidRequest(f"The input has shape {list(x.shape)}, but this model takes {expected} (one image, [1, C, H, W]).")
    if not x.is_floating_point():
        raise InvalidRequest(f"The input must hold floating-point numbers, not {x.dtype}.")
    if not bool(torch.isfinite(x).all()):
        raise InvalidRequest("The input contains NaN or infinite values; every value must be a finite number.")
    return x.detach().to(graph.dtype)
