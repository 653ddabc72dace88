"""The engine names layers by the one table (convscope.layer_types): every module class and every
function listed there gives a layer of that type, whatever else the table holds."""

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from convscope.engine.graph import build_graph
from convscope.layer_types import ACTIVATIONS, LAYER_TYPES
from convscope.models.lenet import ACTIVATIONS as MODEL_ACTIVATIONS
from convscope.training.nets import ACTIVATIONS as LAB_ACTIVATIONS

# An input [C, H, W] (linear layers act on its last dimension) and what each type's modules and
# functions need besides it.
SHAPE = [4, 6, 6]
MODULE_ARGUMENTS: dict[str, tuple[Any, ...]] = {
    "conv2d": (4, 4, 3), "linear": (6, 3), "max_pool2d": (2,), "avg_pool2d": (2,), "adaptive_max_pool2d": (2,),
    "adaptive_avg_pool2d": (2,), "batch_norm2d": (4,), "softmax": (1,)}
FUNCTION_ARGUMENTS: dict[str, Callable[[Tensor], tuple[Any, ...]]] = {
    "conv2d": lambda x: (torch.ones(4, 4, 3, 3),), "linear": lambda x: (torch.ones(3, 6),),
    "max_pool2d": lambda x: (2,), "avg_pool2d": lambda x: (2,), "adaptive_max_pool2d": lambda x: (2,),
    "adaptive_avg_pool2d": lambda x: (2,), "add": lambda x: (x,), "cat": lambda x: (),
    "softmax": lambda x: (1,), "flatten": lambda x: (1,), "dropout": lambda x: (0.5, False)}


class OneModule(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x).flatten(1)  # a model answers [1, K]


class OneFunction(nn.Module):
    def __init__(self, kind: str, function: Callable[..., Tensor]) -> None:
        super().__init__()
        self.kind, self.function = kind, function
        self.register_buffer("weight", FUNCTION_ARGUMENTS.get(kind, lambda x: (None,))(torch.zeros(1))[0]
                             if kind in ("conv2d", "linear") else torch.zeros(0))

    def forward(self, x: Tensor) -> Tensor:
        x = x.clone()  # in-place functions (relu_) act on a fresh value, as a network's do
        if self.kind == "cat":
            y = self.function([x, x], 1)
        elif self.kind in ("conv2d", "linear"):
            y = self.function(x, self.weight)
        else:
            y = self.function(x, *FUNCTION_ARGUMENTS.get(self.kind, lambda x: ())(x))
        return y.flatten(1)  # a model answers [1, K]


MODULES = [(t.id, cls) for t in LAYER_TYPES.values() for cls in t.modules]
FUNCTIONS = [(t.id, f) for t in LAYER_TYPES.values() for f in t.functions]


@pytest.mark.parametrize(("kind", "cls"), MODULES, ids=[f"{k}-{c.__name__}" for k, c in MODULES])
def test_each_listed_module_class_gives_its_type(kind: str, cls: type[nn.Module]) -> None:
    graph = build_graph(OneModule(cls(*MODULE_ARGUMENTS.get(kind, ()))), SHAPE)
    assert [layer.type for layer in graph.layers] == [kind, "flatten"]
    attributes = LAYER_TYPES[kind].attributes
    if attributes is not None:
        assert list(graph.layers[0].attributes) == [a for a in attributes if a in graph.layers[0].attributes]


@pytest.mark.parametrize(("kind", "function"), FUNCTIONS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(FUNCTIONS)])
def test_each_listed_function_gives_its_type(kind: str, function: Callable[..., Tensor]) -> None:
    graph = build_graph(OneFunction(kind, function), SHAPE)
    assert [layer.type for layer in graph.layers][-2:] == [kind, "flatten"]


def test_the_models_and_the_lab_offer_every_activation_type() -> None:
    assert list(MODEL_ACTIVATIONS) == list(LAB_ACTIVATIONS) == list(ACTIVATIONS)
    assert all(MODEL_ACTIVATIONS[k] is t.modules[0] for k, t in ACTIVATIONS.items())
