"""fx Interpreters that run a traced model safely: in-place ops on copies, and shape recording."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.fx import GraphModule, Interpreter, Node

from convscope.engine.calls import CALLS, arg_nodes


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


def _same_memory(a: Any, b: Tensor) -> bool:
    if a is b:
        return True
    return (isinstance(a, Tensor) and a.numel() > 0 and a.data_ptr() == b.data_ptr()
            and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype)


class ShapeProp(Runner):
    """Records the type of every node's value and the shape of every tensor."""

    def __init__(self, module: GraphModule, inplace: frozenset[str]) -> None:
        super().__init__(module, inplace)
        self.types: dict[str, type] = {}
        self.shapes: dict[str, list[int]] = {}
        self.reads: dict[Node, list[Node]] = {}  # arguments, as the nodes whose values were read

    def run_node(self, n: Node) -> Any:
        self.reads[n] = [self.moved.get(a, a) for a in arg_nodes(n)]
        out = super().run_node(n)
        self.types[n.name] = type(out)
        if isinstance(out, Tensor):
            self.shapes[n.name] = list(out.shape)
        return out
