"""Private replicas of a Graph's module, leased to one request at a time, for Captum to hook.

Several Captum methods register hooks on the modules they are given (Grad-CAM on its layer,
guided backprop and deconvolution on every nn.ReLU). The Graph's own module is shared by every
request, so they must never see it. Each attribution request instead leases a replica:

- **What a replica is.** `copy.deepcopy` of the traced GraphModule, with a memo that maps each
  parameter to a new `nn.Parameter` over the *same storage* with `requires_grad=False`, and each
  buffer to itself. So its modules (where hooks live) are its own; its weights cost no memory
  and no copying; nothing can write `.grad` on a shared parameter (autograd reaches no parameter
  at all: only the request's own input requires grad); and eval-mode batch norm only reads the
  shared buffers. A model that ends in a softmax layer has that layer cut off its replica, which
  returns the logits (probe.final_softmax): every method attributes the logit.
- **Why a pool, not a copy per request.** A deepcopy re-generates the GraphModule's code: 2.3–4.0 ms
  per copy for either built-in model, sharing the weights or not (bench/attribution.py measures
  it), as much as a whole saliency or Grad-CAM map (1–3 ms). Leasing a pooled replica and checking
  it on return takes 30–60 µs, nearly all of it the check (`leftovers`).
- **Why a lease, not one replica per thread.** Requests run on anyio's worker threads (up to 40),
  at most `compute_slots` at a time; a lease pool holds only as many replicas as ever ran at once
  (two on a two-core machine through the API), a thread-local one would grow to one per thread.
- **Hooks are Captum's to remove** (it does, in `finally`); on return a replica is checked, and one
  with any hook, tensor hook or `.grad` left on it is dropped, not reused.
"""

from __future__ import annotations

import copy
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.fx import GraphModule

from convscope.engine.graph import Graph
from convscope.engine.probe import final_softmax

log = logging.getLogger("convscope")
MAX_IDLE = 8  # idle replicas kept per model; more only if more requests ran at once than that

_idle: weakref.WeakKeyDictionary[Graph, list[GraphModule]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def build(graph: Graph) -> GraphModule:
    """A new replica of graph.module: its own modules over the shared (frozen) weights, logits out."""
    shared = graph.module
    memo: dict[int, Any] = {id(p): nn.Parameter(p.detach(), requires_grad=False) for p in shared.parameters()}
    memo.update({id(b): b for b in shared.buffers()})
    replica: GraphModule = copy.deepcopy(shared, memo)
    _cut_final_softmax(replica, graph)
    return replica


def _cut_final_softmax(replica: GraphModule, graph: Graph) -> None:
    """Make the replica return the input of a final softmax layer (its logits), if it ends in one."""
    head = final_softmax(graph)
    if head is None:
        return
    fx = replica.graph
    node = next(n for n in fx.nodes if n.name == graph.nodes[head])
    output = next(n for n in fx.nodes if n.op == "output")
    logits = node.args[0] if node.args else node.kwargs.get("input")
    if output.args != (node,) or logits is None:
        return  # the model returns something other than the softmax itself: leave it as it is
    output.args = (logits,)
    fx.erase_node(node)
    replica.recompile()


@contextmanager
def lease(graph: Graph) -> Iterator[GraphModule]:
    """A replica of graph.module for this caller alone, returned to the pool afterwards if clean."""
    with _lock:
        idle = _idle.get(graph)
        replica = idle.pop() if idle else None
    if replica is None:
        replica = build(graph)
    try:
        yield replica
    finally:
        left = leftovers(replica)
        if left:
            log.warning("An attribution replica was dropped, not reused: %s.", left)
        else:
            with _lock:
                idle = _idle.setdefault(graph, [])
                if len(idle) < MAX_IDLE:
                    idle.append(replica)


def idle_count(graph: Graph) -> int:
    """Replicas of `graph` waiting in the pool (for tests and benchmarks)."""
    with _lock:
        return len(_idle.get(graph, []))


def leftovers(module: nn.Module) -> str:
    """What temporary state is left on `module`: module hooks, tensor hooks or gradients ('' if none)."""
    found = []
    for name, sub in module.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            if getattr(sub, kind, None):
                found.append(f"{kind[1:-1].replace('_', ' ')} on '{name or 'the model'}'")
    for name, p in module.named_parameters(remove_duplicate=False):
        if p.grad is not None:
            found.append(f"a .grad on '{name}'")
        if getattr(p, "_backward_hooks", None):
            found.append(f"a tensor hook on '{name}'")
    return ", ".join(found)
