"""A call node's layer type (convscope.layer_types, else its snake_case name) and its attributes, in
PyTorch's names and order."""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from convscope.engine.calls import OPERATOR_INPLACE, bind
from convscope.layer_types import LAYER_TYPES

# The layer types (convscope.layer_types): leaf modules by isinstance, functions by identity of the fx
# target. Functional batch norm is not in the table: it is named by its input's rank, below.
_MODULES: tuple[tuple[type[nn.Module], str], ...] = tuple(
    (cls, t.id) for t in LAYER_TYPES.values() for cls in t.modules)
_FUNCTIONS: dict[Any, str] = {f: t.id for t in LAYER_TYPES.values() for f in t.functions} | {
    F.batch_norm: "batch_norm", torch.batch_norm: "batch_norm"}
# Functional batch norm has one name for every rank; the vocabulary names it by input rank, as
# nn.BatchNorm1d/2d/3d do: [N, C, H, W] -> batch_norm2d, [N, C, D, H, W] -> batch_norm3d, else 1d.
_BATCH_NORM_BY_RANK = {4: "batch_norm2d", 5: "batch_norm3d"}
# The attributes a layer type reports, in PyTorch's names and order (None: see LayerType.attributes).
_KEYS: dict[str, tuple[str, ...]] = {
    t.id: t.attributes for t in LAYER_TYPES.values() if t.attributes is not None}
_PAIRS = ("kernel_size", "stride", "padding", "dilation", "output_size")
_DROPPED = ("inplace", "training", "return_indices")  # how to run, not what is computed
_SKIP = object()  # an attribute value with no JSON form (a tensor argument, a module, ...)
_F_NAMES = frozenset(dir(F))


def classify(n: Node, modules: dict[str, nn.Module], shapes: dict[str, list[int]],
             types: dict[str, type]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The layer type of call node n, its JSON-ready attributes, and {argument name: tensor path} it owns.

    `shapes` and `types` are those of the node values in one run, by fx node name.
    """
    kind, source, owned = _source(n, modules, shapes, types)
    return kind, _attributes(kind, source), owned


def _source(n: Node, modules: dict[str, nn.Module], shapes: dict[str, list[int]],
            types: dict[str, type]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The layer type, its raw attributes, and {argument name: qualified tensor path} it owns."""
    if n.op == "call_module":
        m = modules[str(n.target)]
        kind = next((k for cls, k in _MODULES if isinstance(m, cls)), None) or _snake(type(m).__name__)
        keys = _KEYS.get(kind) or tuple(getattr(type(m), "__constants__", ()))
        owned = {k: f"{n.target}.{k}" for k, _ in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]}
        return kind, {k: getattr(m, k) for k in keys if hasattr(m, k)}, owned
    args, kwargs = tuple(n.args), dict(n.kwargs)
    arg_types = tuple(types[a.name] if isinstance(a, Node) else type(a) for a in (*args, *kwargs.values()))
    name = str(n.target) if n.op == "call_method" else getattr(n.target, "__name__", str(n.target))
    if n.op == "call_method":  # bind x.flatten(1) as torch.flatten(x, 1)
        bound = bind(getattr(torch, name.rstrip("_"), None), args, kwargs, arg_types)
    else:
        bound = bind(n.target, args, kwargs, arg_types)
        name = name[1:] if n.target in OPERATOR_INPLACE else name  # operator.imul -> "mul"
    kind = _FUNCTIONS.get(n.target) or _snake(name.rstrip("_"))
    owned = {k: str(v.target) for k, v in bound.items() if isinstance(v, Node) and v.op == "get_attr"}
    source = dict(bound)
    first = args[0] if args and isinstance(args[0], Node) else None
    before, after = shapes.get(first.name, []) if first else [], shapes[n.name]
    if kind in ("view", "reshape"):  # [B, ...] -> [B, N] is a flatten; otherwise keep the shape
        flat = len(after) == 2 and len(before) > 2 and before[0] == after[0]
        kind, source = ("flatten", {"start_dim": 1, "end_dim": -1}) if flat else (kind, {"shape": after[1:]})
    elif kind == "batch_norm":
        kind = _BATCH_NORM_BY_RANK.get(len(before), "batch_norm1d")
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
