"""The layers a layer method (Grad-CAM, guided Grad-CAM) can attribute to, and the default one.

Captum's layer methods hook the layer's module, so a layer qualifies when its output is a stack
of feature maps [C, h, w] and it runs a module that the model calls once (a second call would
overwrite the output recorded by the first): conv, activation, pooling and batch-norm modules.

The default is the last conv layer's *rectified* output: its activation if a module called once
applies one directly (through a batch norm, if any), else the conv layer itself. That is the map
Grad-CAM was defined on (the last conv layer's feature maps, after the ReLU), and it matters: on
the shipped Fashion-MNIST samples, the pre-activation output of TinyVGG's last conv (conv2_2)
gives an all-zero Grad-CAM for 13 of 20 images, its ReLU (act2_2) for none.
"""

from __future__ import annotations

from convscope.engine.graph import Graph, Layer
from convscope.errors import InvalidRequest
from convscope.layer_types import ACTIVATIONS, LAYER_TYPES


def _module_calls(graph: Graph) -> dict[str, int]:
    calls: dict[str, int] = {}
    for layer in graph.layers:
        if layer.module is not None:
            calls[layer.module] = calls.get(layer.module, 0) + 1
    return calls


def feature_layers(graph: Graph) -> list[Layer]:
    """The layers a layer method can use, in execution order."""
    calls = _module_calls(graph)
    return [layer for layer in graph.layers
            if len(layer.output_shape) == 3 and layer.module is not None and calls[layer.module] == 1]


def default_layer(graph: Graph) -> Layer | None:
    """The last conv layer's activation (see the module docstring), the last conv layer, or else the
    last usable layer; None if there is none."""
    usable = {layer.name: layer for layer in feature_layers(graph)}
    convs = [layer for layer in usable.values() if layer.type == "conv2d"]
    if not convs:
        return list(usable.values())[-1] if usable else None
    chosen = layer = convs[-1]
    while True:
        readers = [other for other in graph.layers if layer.name in other.inputs]
        if len(readers) != 1 or readers[0].name not in usable:
            return chosen
        layer = readers[0]
        if layer.type in ACTIVATIONS:
            return layer
        if layer.type not in LAYER_TYPES or LAYER_TYPES[layer.type].family != "normalization":
            return chosen


def feature_layer(graph: Graph, name: str | None) -> Layer:
    """The usable layer called `name` (default: default_layer), or InvalidRequest saying why not."""
    usable = feature_layers(graph)
    names = ", ".join(layer.name for layer in usable) or "none"
    if name is None:
        chosen = default_layer(graph)
        if chosen is None:
            raise InvalidRequest("'layer': this model has no layer with feature maps ([C, h, w]) that runs a "
                                 "module once, so there is no layer to attribute to.")
        return chosen
    found = [layer for layer in graph.layers if layer.name == name]
    if not found:
        raise InvalidRequest(f"'layer': this model has no layer called '{name}'. The layers a layer method can "
                             f"use are: {names}.")
    layer = found[0]
    if len(layer.output_shape) != 3:
        raise InvalidRequest(f"'layer': '{name}' is a {layer.type} layer with output {layer.output_shape}, not "
                             f"feature maps [C, h, w]; choose a conv layer or another of: {names}.")
    if layer.module is None:
        raise InvalidRequest(f"'layer': '{name}' is a function call ({layer.type}), with no module for Captum to "
                             f"hook; choose one of: {names}.")
    calls = _module_calls(graph)[layer.module]
    if calls > 1:
        raise InvalidRequest(f"'layer': '{name}' runs module '{layer.module}', which the model calls {calls} times; "
                             f"choose a layer whose module runs once: {names}.")
    return layer
