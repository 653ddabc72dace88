"""One attribution request: check it, lease a replica, pick the target, run the method, verify."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from convscope.engine.attribution import registry, replica
from convscope.engine.attribution.base import Subject
from convscope.engine.graph import Graph
from convscope.engine.probe import _check_input, _integer  # the engine's one set of input and target rules
from convscope.errors import InvalidRequest


@dataclass(frozen=True)
class Explanation:
    """An attribution and what it is of: the target class, its logit, the model's logits."""

    method: str
    target: int
    score: float  # the target's logit for the input
    logits: Tensor  # [K]: a final softmax layer's input if the model ends in one
    attribution: Tensor  # [C, H, W] (grad_cam: [1, H, W])
    layer: str | None
    layer_attribution: Tensor | None  # [1, h, w] at the layer's resolution, for layer methods
    options: dict[str, Any]


class _Watch(nn.Module):
    """The replica, keeping its output (detached) the first time it runs on the request's own input.

    Most methods run the model on the input itself once (gradient methods, Grad-CAM, occlusion's
    unoccluded pass): that output gives the logits and the score, so a given target costs no extra
    forward. Integrated gradients and SmoothGrad never do, and pay one more forward afterwards."""

    def __init__(self, model: nn.Module, x: Tensor) -> None:
        super().__init__()
        self.model = model
        self.x = x
        self.output: Tensor | None = None

    def get_submodule(self, target: str) -> nn.Module:
        """Layers are named by their paths in the replica (Subject.layer)."""
        return self.model.get_submodule(target)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.model(x)
        if self.output is None and x is self.x:
            self.output = out.detach()
        return out


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        out: Tensor = model(x)[0]
    return out


def _classes(graph: Graph) -> int | None:
    """K, the number of classes, from the layer the traced model returns (None if it is not a layer)."""
    output = next(n for n in graph.module.graph.nodes if n.op == "output")
    returned = getattr(output.args[0], "name", None)
    for layer in graph.layers:
        if graph.nodes.get(layer.name) == returned and len(layer.output_shape) == 1:
            return layer.output_shape[0]
    return None


def explain(graph: Graph, x: Tensor, method: str, target: int | None = None,
            options: Mapping[str, object] | None = None, mean: Sequence[float] | None = None,
            std: Sequence[float] | None = None) -> Explanation:
    """Attribute the logit of `target` (default: the predicted class) for x [1, C, H, W] with `method`.

    The attributed score is always a logit: for a model that ends in a softmax layer, the input of
    that layer (see probe.final_softmax), so that every method explains the same number and the
    maps are not flattened by a saturated softmax. `mean` and `std` are the input normalisation,
    needed by the 'black' baseline (default: none, i.e. 0 and 1)."""
    cls = registry.method(method)
    settings = registry.configure(cls, options or {})
    chosen = _integer(target)
    x = _check_input(graph, x)
    channels = graph.input_shape[0]
    subject_mean = tuple(float(m) for m in mean) if mean is not None else (0.0,) * channels
    subject_std = tuple(float(s) for s in std) if std is not None else (1.0,) * channels
    leaf = x.clone().requires_grad_(True)  # this request's own input: the only tensor that needs grad
    classes = _classes(graph)
    with replica.lease(graph) as model:
        logits = None
        if chosen is None or classes is None:  # the prediction is needed first
            with torch.no_grad():
                logits = model(x)[0]
            classes = logits.shape[0]
            chosen = int(logits.argmax().item()) if chosen is None else chosen
        if not 0 <= chosen < classes:
            raise InvalidRequest(f"'target' must be a class index from 0 to {classes - 1}; got {chosen}.")
        watch = _Watch(model, leaf)
        result = cls().attribute(Subject(watch, graph, subject_mean, subject_std), leaf, chosen, settings)
        if logits is None:  # the method's own forward on the input, if it made one, else one more
            logits = watch.output[0] if watch.output is not None else _logits(model, x)
    cam = result.layer_attribution
    return Explanation(
        method=cls.name, target=chosen, score=float(logits[chosen]), logits=logits,
        attribution=result.attribution.detach()[0], layer=result.layer,
        layer_attribution=None if cam is None else cam.detach()[0], options=result.options)
