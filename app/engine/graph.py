"""Trace any nn.Module with torch.fx into its ordered layers: names, types, wiring, shapes, weights.

The engine always runs models in eval mode. `build_graph` traces a deep copy of the model, so
the caller's model keeps its mode, its hooks and its weights, and the Graph is a snapshot that
later training of the original cannot change under a running request.
"""

from __future__ import annotations

import copy
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.fx import GraphModule, Node

from convscope.engine.calls import CALLS, is_inplace
from convscope.engine.kinds import classify
from convscope.engine.runner import Runner, ShapeProp
from convscope.errors import InvalidRequest, NotFound, UntraceableModel

__all__ = ["Graph", "Layer", "Runner", "build_graph"]  # Runner: re-exported for existing imports

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_HERE = os.path.abspath(__file__)


@dataclass(frozen=True)
class Layer:
    """One tensor-producing call in the traced model (a module, function or method call)."""

    name: str
    type: str
    inputs: list[str]
    output_shape: list[int]
    attributes: dict[str, Any]
    parameters: dict[str, list[int]]
    buffers: dict[str, list[int]]
    module: str | None
    # The modules whose forward made this call, outermost first, as (path, class name), the layer's
    # own module left out: ("layer1", "Sequential"), ("layer1.0", "BasicBlock") for a ResNet block's
    # conv or its residual add. The page folds a block's layers into one unit by it.
    scope: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, eq=False)  # eq=False: hashable by identity, e.g. as a cache key
class Graph:
    """A traced model in eval mode, its layers in execution order, and its input shape [C, H, W]."""

    module: GraphModule
    layers: list[Layer]
    input_shape: list[int]
    nodes: dict[str, str] = field(default_factory=dict, repr=False)  # layer name -> fx node name
    parameter_paths: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    inplace: frozenset[str] = field(default=frozenset(), repr=False)  # fx names of in-place nodes

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype the model computes in: that of its first floating tensor."""
        return _dtype(self.module)

    def layer(self, name: str) -> Layer:
        """The layer called `name`, or NotFound listing the layers there are."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = ", ".join(layer.name for layer in self.layers)
        raise NotFound(f"This model has no layer called '{name}'. Its layers are: {names}.")


def _dtype(module: nn.Module) -> torch.dtype:
    tensors = (*module.parameters(), *module.buffers())
    return next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)


def build_graph(model: nn.Module, input_shape: Sequence[int]) -> Graph:
    """Trace a copy of `model` in eval mode and describe every layer for an input [C, H, W]."""
    shape = [int(s) for s in input_shape]
    cls = type(model).__name__
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidRequest(f"The input shape must be [channels, height, width]; got {shape}.")
    try:
        private = copy.deepcopy(model)
    except Exception as exc:
        raise InvalidRequest(f"{cls} cannot be copied for inspection: {_first_line(exc)}.") from exc
    gm = _trace(private, cls)
    gm.eval()
    for p in gm.parameters():  # our own copy: freezing in the original must not hide gradients
        if p.is_floating_point():
            p.requires_grad_(True)
    modules = dict(gm.named_modules())
    inplace = frozenset(n.name for n in gm.graph.nodes if is_inplace(n, modules))
    prop = ShapeProp(gm, inplace)
    try:
        with torch.no_grad():
            out = prop.run(torch.zeros(1, *shape, dtype=_dtype(gm)))
    except Exception as exc:
        raise InvalidRequest(f"{cls} cannot run on an input of shape {shape}: {_first_line(exc)}.") from exc
    if not (isinstance(out, Tensor) and out.dim() == 2 and out.shape[0] == 1):
        got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InvalidRequest(f"{cls} must return one tensor of class scores shaped [1, K]; it returned {got}.")
    return _describe(gm, shape, inplace, prop, modules)


def _trace(model: nn.Module, cls: str) -> GraphModule:
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:
        raise UntraceableModel(
            f"{cls} cannot be traced into a layer graph by torch.fx: {_first_line(exc)}{_where(exc)}."
        ) from exc
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UntraceableModel(f"{cls}.forward takes {len(inputs)} inputs; ConvScope needs exactly one image tensor.")
    return gm


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__).rstrip(".")


def _where(exc: BaseException) -> str:
    """' (at file:line: `source`)' for the last traceback frame in the user's code, else ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_TORCH_DIR) and os.path.abspath(f.filename) != _HERE]
    if not frames:
        return ""
    frame = frames[-1]
    path = os.path.relpath(frame.filename) if frame.filename.startswith(os.getcwd()) else frame.filename
    return f" (at {path}:{frame.lineno}: `{(frame.line or '').strip()}`)"


def _describe(gm: GraphModule, shape: list[int], inplace: frozenset[str], prop: ShapeProp,
              modules: dict[str, nn.Module]) -> Graph:
    nodes = [n for n in gm.graph.nodes if n.op in CALLS and n.name in prop.shapes]
    names = _names(nodes)
    params = dict(gm.named_parameters(remove_duplicate=False))
    buffers = dict(gm.named_buffers(remove_duplicate=False))
    ancestors: dict[Node, list[str]] = {}  # non-layer node -> the layers (or "input") it reads
    layers: list[Layer] = []
    paths: dict[str, dict[str, str]] = {}
    for n in gm.graph.nodes:
        inputs: list[str] = []
        for arg in prop.reads[n]:  # direct arguments in order, repeats kept: add(a, a)
            if arg in names or arg.op == "placeholder":
                inputs.append(names.get(arg, "input"))
            else:  # read through sizes, getitems, attributes to the layers behind them
                inputs += [a for a in ancestors[arg] if a not in inputs]
        if n not in names:
            ancestors[n] = inputs
            continue
        kind, attributes, owned = classify(n, modules, prop.shapes, prop.types)
        layer_params = {k: v for k, v in owned.items() if v in params}
        layers.append(Layer(
            name=names[n], type=kind, inputs=inputs, output_shape=prop.shapes[n.name][1:], attributes=attributes,
            parameters={k: list(params[v].shape) for k, v in layer_params.items()},
            buffers={k: list(buffers[v].shape) for k, v in owned.items()
                     if v in buffers and not v.endswith("num_batches_tracked")},
            module=str(n.target) if n.op == "call_module" else None, scope=_scope(n)))
        if layer_params:
            paths[names[n]] = layer_params
    return Graph(gm, layers, shape, {v: k.name for k, v in names.items()}, paths, inplace)


def _scope(n: Node) -> tuple[tuple[str, str], ...]:
    """The enclosing modules of a call, from the tracer's module stack (torch.fx records it in
    `nn_module_stack`: path -> (path, class)); a module call's own entry is the last one, left out."""
    stack = list((n.meta.get("nn_module_stack") or {}).values())
    if n.op == "call_module" and stack:
        stack = stack[:-1]
    out: list[tuple[str, str]] = []
    for path, cls in stack:
        name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
        out.append((str(path), name))
    return tuple(out)


def _names(nodes: list[Node]) -> dict[Node, str]:
    """Module path for a module's first call, else the fx node name; unique either way."""
    first: dict[str, Node] = {}
    for n in nodes:
        if n.op == "call_module" and str(n.target) != "input":
            first.setdefault(str(n.target), n)
    used = set(first) | {"input"}
    names: dict[Node, str] = {}
    for n in nodes:
        if n.op == "call_module" and first.get(str(n.target)) is n:
            names[n] = str(n.target)
            continue
        name, i = n.name, 1
        while name in used:  # a module path may equal another node's fx name
            name, i = f"{n.name}_{i}", i + 1
        used.add(name)
        names[n] = name
    return names
