"""Trace any nn.Module with torch.fx into its ordered layers: names, types, wiring, shapes, weights.

The engine always runs models in eval mode. `build_graph` traces a deep copy of the model, so
the caller's model keeps its mode, its hooks and its weights, and the Graph is a snapshot that
later training of the original cannot change under a running request.
"""

from __future__ import annotations

import copy
import inspect
import operator
import os
import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx import GraphModule, Interpreter, Node
from torch.fx.operator_schemas import normalize_function

from app.errors import InvalidRequest, NotFound, UntraceableModel

CALLS = ("call_module", "call_function", "call_method")
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_HERE = os.path.abspath(__file__)

# Vocabulary types of leaf modules by isinstance, and of functions by identity of the fx target.
_MODULES: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.Conv2d, "conv2d"), (nn.Linear, "linear"), (nn.ReLU, "relu"), (nn.LeakyReLU, "leaky_relu"),
    (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"), (nn.MaxPool2d, "max_pool2d"), (nn.AvgPool2d, "avg_pool2d"),
    (nn.AdaptiveAvgPool2d, "adaptive_avg_pool2d"), (nn.BatchNorm2d, "batch_norm2d"),
    (nn.Dropout, "dropout"), (nn.Flatten, "flatten"), (nn.Softmax, "softmax"))
_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.relu_: "relu", torch.relu_: "relu", F.leaky_relu: "leaky_relu",
    F.leaky_relu_: "leaky_relu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", torch.tanh: "tanh",
    F.tanh: "tanh", F.max_pool2d: "max_pool2d", torch.max_pool2d: "max_pool2d", F.avg_pool2d: "avg_pool2d",
    F.adaptive_avg_pool2d: "adaptive_avg_pool2d", F.dropout: "dropout", torch.dropout: "dropout",
    torch.flatten: "flatten", operator.add: "add", operator.iadd: "add", torch.add: "add", torch.cat: "cat",
    torch.concat: "cat", torch.concatenate: "cat", F.softmax: "softmax", torch.softmax: "softmax",
    F.conv2d: "conv2d", F.linear: "linear", F.batch_norm: "batch_norm"}
_OPERATOR_INPLACE = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                     operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor,
                     operator.ilshift, operator.irshift, operator.imatmul, operator.setitem}
# The attributes a vocabulary type reports, in PyTorch's names and order.
_KEYS: dict[str, tuple[str, ...]] = {
    "conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
               "padding_mode"),
    "linear": ("in_features", "out_features"),
    "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "adaptive_avg_pool2d": ("output_size",),
    "batch_norm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "leaky_relu": ("negative_slope",), "flatten": ("start_dim", "end_dim"), "softmax": ("dim",),
    "cat": ("dim",), "dropout": ("p",)}
_PAIRS = ("kernel_size", "stride", "padding", "dilation", "output_size")
_DROPPED = ("inplace", "training", "return_indices")  # how to run, not what is computed
_SKIP = object()  # an attribute value with no JSON form (a tensor argument, a module, ...)


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


class Runner(Interpreter):
    """An fx Interpreter that runs in-place ops on a copy, so no earlier node output is overwritten."""

    def __init__(self, module: GraphModule, inplace: frozenset[str]) -> None:
        super().__init__(module)
        self.inplace = inplace
        self.moved: dict[Node, Node] = {}  # node -> the in-place node that last overwrote its value

    def run_node(self, n: Node) -> Any:
        """Run one node; in-place nodes mutate a clone of their first tensor argument."""
        if n.op not in CALLS:
            return super().run_node(n)
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        mutated = args[0] if args else kwargs.get("input")
        if n.name in self.inplace and isinstance(mutated, Tensor):
            clone = mutated.clone()
            args, kwargs = ((clone, *args[1:]), kwargs) if args else (args, {**kwargs, "input": clone})
            # Later readers of the mutated value (or of a same-memory alias) see the mutation,
            # as in eager PyTorch; the value recorded for the earlier node stays intact.
            for node, value in list(self.env.items()):
                if _same_memory(value, mutated):
                    self.env[node], self.moved[node] = clone, n
            return getattr(self, n.op)(n.target, args, kwargs)
        out = getattr(self, n.op)(n.target, args, kwargs)
        if isinstance(out, Tensor) and any(out is a for a in (*args, *kwargs.values())):
            out = out.view_as(out)  # e.g. nn.Identity: a node of its own for autograd
        return out


def _dtype(module: nn.Module) -> torch.dtype:
    tensors = (*module.parameters(), *module.buffers())
    return next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)


def _same_memory(a: Any, b: Tensor) -> bool:
    if a is b:
        return True
    return (isinstance(a, Tensor) and a.numel() > 0 and a.data_ptr() == b.data_ptr()
            and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype)


class _ShapeProp(Runner):
    """Records the type of every node's value and the shape of every tensor."""

    def __init__(self, module: GraphModule, inplace: frozenset[str]) -> None:
        super().__init__(module, inplace)
        self.kinds: dict[str, type] = {}
        self.shapes: dict[str, list[int]] = {}
        self.reads: dict[Node, list[Node]] = {}  # arguments, as the nodes whose values were read

    def run_node(self, n: Node) -> Any:
        self.reads[n] = [self.moved.get(a, a) for a in _arg_nodes(n)]
        out = super().run_node(n)
        self.kinds[n.name] = type(out)
        if isinstance(out, Tensor):
            self.shapes[n.name] = list(out.shape)
        return out


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
    inplace = frozenset(n.name for n in gm.graph.nodes if _is_inplace(n, modules))
    prop = _ShapeProp(gm, inplace)
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


def _is_inplace(n: Node, modules: dict[str, nn.Module]) -> bool:
    if n.op == "call_module":
        return getattr(modules[str(n.target)], "inplace", False) is True
    if n.op == "call_method":
        return str(n.target).endswith("_") and not str(n.target).startswith("_")
    if n.op == "call_function":
        name = getattr(n.target, "__name__", "")
        bound = _bind(n.target, n.args, dict(n.kwargs), None) if callable(n.target) else {}
        return (n.target in _OPERATOR_INPLACE or bound.get("inplace") is True
                or (name.endswith("_") and not name.startswith("_")))
    return False


def _bind(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
          types: tuple[Any, ...] | None) -> dict[str, Any]:
    """Every argument by its parameter name (positional-only and untyped ones as arg0, arg1...)."""
    kinds = None if types is None else {k: types[len(args) + i] for i, k in enumerate(kwargs)}
    try:  # types pick among overloads (torch.add(Tensor, Tensor) vs torch.add(Tensor, Number))
        pair = normalize_function(target, args, kwargs, types[: len(args)] if types else None,
                                  kinds, normalize_to_only_use_kwargs=True)
        if pair is not None:
            return dict(pair.kwargs)
    except Exception:
        pass
    try:
        bound = inspect.signature(target).bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)
    except (TypeError, ValueError):
        return {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}


def _describe(gm: GraphModule, shape: list[int], inplace: frozenset[str], prop: _ShapeProp,
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
        kind, source, owned = _source(n, modules, prop)
        layer_params = {k: v for k, v in owned.items() if v in params}
        layers.append(Layer(
            name=names[n], type=kind, inputs=inputs, output_shape=prop.shapes[n.name][1:],
            attributes=_attributes(kind, source),
            parameters={k: list(params[v].shape) for k, v in layer_params.items()},
            buffers={k: list(buffers[v].shape) for k, v in owned.items()
                     if v in buffers and not v.endswith("num_batches_tracked")},
            module=str(n.target) if n.op == "call_module" else None))
        if layer_params:
            paths[names[n]] = layer_params
    return Graph(gm, layers, shape, {v: k.name for k, v in names.items()}, paths, inplace)


def _arg_nodes(n: Node) -> list[Node]:
    """The nodes among n's arguments, in argument order, repeats kept."""
    found: list[Node] = []

    def keep(a: Node) -> Node:
        found.append(a)
        return a

    torch.fx.node.map_arg((n.args, n.kwargs), keep)
    return found


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


def _source(n: Node, modules: dict[str, nn.Module],
            prop: _ShapeProp) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The layer type, its raw attributes, and {argument name: qualified tensor path} it owns."""
    shapes = prop.shapes
    if n.op == "call_module":
        m = modules[str(n.target)]
        kind = next((k for cls, k in _MODULES if isinstance(m, cls)), None) or _snake(type(m).__name__)
        keys = _KEYS.get(kind) or tuple(getattr(type(m), "__constants__", ()))
        owned = {k: f"{n.target}.{k}" for k, _ in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]}
        return kind, {k: getattr(m, k) for k in keys if hasattr(m, k)}, owned
    args, kwargs = tuple(n.args), dict(n.kwargs)
    types = tuple(prop.kinds[a.name] if isinstance(a, Node) else type(a) for a in (*args, *kwargs.values()))
    name = str(n.target) if n.op == "call_method" else getattr(n.target, "__name__", str(n.target))
    if n.op == "call_method":  # bind x.flatten(1) as torch.flatten(x, 1)
        bound = _bind(getattr(torch, name.rstrip("_"), None), args, kwargs, types)
    else:
        bound = _bind(n.target, args, kwargs, types)
        name = name[1:] if n.target in _OPERATOR_INPLACE else name  # operator.imul -> "mul"
    kind = _FUNCTIONS.get(n.target) or _snake(name.rstrip("_"))
    owned = {k: str(v.target) for k, v in bound.items() if isinstance(v, Node) and v.op == "get_attr"}
    source = dict(bound)
    first = args[0] if args and isinstance(args[0], Node) else None
    before, after = shapes.get(first.name, []) if first else [], shapes[n.name]
    if kind in ("view", "reshape"):  # [B, ...] -> [B, N] is a flatten; otherwise keep the shape
        flat = len(after) == 2 and len(before) > 2 and before[0] == after[0]
        kind, source = ("flatten", {"start_dim": 1, "end_dim": -1}) if flat else (kind, {"shape": after[1:]})
    elif kind == "batch_norm":
        kind = {4: "batch_norm2d", 5: "batch_norm3d"}.get(len(before), "batch_norm1d")
        source |= {"num_features": before[1], "affine": bound.get("weight") is not None,
                   "track_running_stats": bound.get("running_mean") is not None}
    elif kind in ("conv2d", "linear") and isinstance(bound.get("weight"), Node):
        w = shapes[bound["weight"].name]
        source |= ({"in_channels": w[1] * source.get("groups", 1), "out_channels": w[0],
                    "kernel_size": w[2:], "padding_mode": "zeros"} if kind == "conv2d"
                   else {"in_features": w[1], "out_features": w[0]})
    return kind, {k: source[k] for k in _KEYS.get(kind, source) if k in source}, owned


def _attributes(kind: str, source: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready attributes: pairs as lists, pool stride defaulting to the kernel size."""
    out = {k: _plain(v) for k, v in source.items() if k not in _DROPPED and not k.startswith("_")}
    out = {k: v for k, v in out.items() if v is not _SKIP}
    if kind in ("max_pool2d", "avg_pool2d") and out.get("stride") in (None, []):
        out["stride"] = out.get("kernel_size")
    if kind.endswith("2d"):
        out |= {k: [v, v] for k, v in out.items() if k in _PAIRS and type(v) is int}
    return out


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of an attribute value, or _SKIP if it has none."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return _SKIP


def _snake(name: str) -> str:
    """snake_case of a class or function name, preferring torch.nn.functional's spelling."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    return name.lower() if snake not in _F_NAMES and name.lower() in _F_NAMES else snake


_F_NAMES = frozenset(dir(F))
