"""Facts about one fx call node: its arguments by name, the nodes it reads, whether it is in-place."""

from __future__ import annotations

import inspect
import operator
from typing import Any

import torch
from torch import nn
from torch.fx import Node
from torch.fx.operator_schemas import normalize_function

CALLS = ("call_module", "call_function", "call_method")
OPERATOR_INPLACE = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                    operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor,
                    operator.ilshift, operator.irshift, operator.imatmul, operator.setitem}


def arg_nodes(n: Node) -> list[Node]:
    """The nodes among n's arguments, in argument order, repeats kept."""
    found: list[Node] = []

    def keep(a: Node) -> Node:
        found.append(a)
        return a

    torch.fx.node.map_arg((n.args, n.kwargs), keep)
    return found


def is_inplace(n: Node, modules: dict[str, nn.Module]) -> bool:
    """Whether the call overwrites its first argument: inplace=True, x.add_(...), operator.iadd..."""
    if n.op == "call_module":
        return getattr(modules[str(n.target)], "inplace", False) is True
    if n.op == "call_method":
        return str(n.target).endswith("_") and not str(n.target).startswith("_")
    if n.op == "call_function":
        name = getattr(n.target, "__name__", "")
        bound = bind(n.target, n.args, dict(n.kwargs), None) if callable(n.target) else {}
        return (n.target in OPERATOR_INPLACE or bound.get("inplace") is True
                or (name.endswith("_") and not name.startswith("_")))
    return False


def bind(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
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
