"""The layer types, defined once: the engine names each layer by this table (engine/kinds.py), the
training lab offers its activations, the attribution methods find activations in it, the models take
their activation modules from it, and the page (GET /api/layer-types) picks the lesson for a layer
and explains its backward pass from it. Adding a layer type is one entry here (and, for a lesson of
its own, a view in static/js/views/).

A layer whose type is not in the table still works everywhere: the engine names it after its module
class or function (snake_case, e.g. `GELU` -> "gelu") and the page shows its generic detail view.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

# What kind of computation a type is: the lab's and the attribution methods' question.
Family = Literal["convolution", "linear", "activation", "pooling", "normalization", "merge", "reshape",
                 "regularization", "probabilities"]
# Which lesson of the page explains it (static/js/views/<view>.js); None: the generic detail view only.
View = Literal["conv", "activation", "pool", "norm", "merge", "dense"]


@dataclass(frozen=True)
class LayerType:
    """One layer type: what people call it, what it computes, how the gradient passes back through it,
    and how PyTorch spells it."""

    id: str  # the name a layer reports as its `type`
    name: str
    family: Family
    description: str  # what it computes, in a sentence
    backward: str  # how the gradient passes back through it, in a sentence or two
    view: View | None = None
    # The attributes a layer of this type reports, in PyTorch's names and order; None: every constant
    # of its module class (`__constants__`), or every argument of its function.
    attributes: tuple[str, ...] | None = None
    pooling: Literal["max", "average"] | None = None  # for the pooling family: what a window keeps
    modules: tuple[type[nn.Module], ...] = ()  # leaf modules of this type, by isinstance
    functions: tuple[Callable[..., Any], ...] = ()  # functions and operators of this type, by identity


_POOL_2D = ("kernel_size", "stride", "padding")
LAYER_TYPES: dict[str, LayerType] = {t.id: t for t in [
    LayerType(
        "conv2d", "Convolution", "convolution",
        "Slides each kernel over the input maps: every output value is the sum of a patch times the kernel's "
        "weights, plus a bias.",
        "A convolution passes the gradient back by the same kernels, flipped: each input value gets the sum "
        "of the output gradients it helped to make, each times the weight that joined them. A weight's "
        "gradient is the sum, over every position, of its input value times the output gradient there.",
        view="conv", attributes=("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                                 "groups", "padding_mode"),
        modules=(nn.Conv2d,), functions=(F.conv2d,)),
    LayerType(
        "linear", "Linear", "linear",
        "Every output is a weighted sum of all the inputs, plus a bias: W·x + b.",
        "A linear layer sends back Wᵀ·g: each input gets the output gradients weighted by the weights it "
        "feeds. Weight w[i, j] gets g[i] × x[j], so weights from strongly active inputs move most.",
        view="dense", attributes=("in_features", "out_features"), modules=(nn.Linear,), functions=(F.linear,)),
    LayerType(
        "relu", "ReLU", "activation",
        "max(0, x): the modern default; gradients do not shrink for positive inputs.",
        "ReLU passes the gradient where its input was positive and blocks it (zero) everywhere else: units "
        "that were switched off learn nothing from this image.",
        view="activation", modules=(nn.ReLU,),
        functions=(F.relu, torch.relu, F.relu_, torch.relu_)),
    LayerType(
        "sigmoid", "Sigmoid", "activation",
        "1 / (1 + e^-x): squashes to (0, 1); its gradient is at most 0.25, so deep stacks learn slowly "
        "(vanishing gradients).",
        "Sigmoid multiplies the gradient by σ(x)(1 − σ(x)), at most 0.25 and close to 0 where it is "
        "saturated: stacked sigmoids make gradients shrink layer after layer (vanishing gradients).",
        view="activation", modules=(nn.Sigmoid,), functions=(torch.sigmoid, F.sigmoid)),
    LayerType(
        "tanh", "Tanh", "activation",
        "Squashes to (-1, 1), centred on zero; LeNet's original choice.",
        "Tanh multiplies the gradient by 1 − tanh²(x), at most 1 and close to 0 where it is saturated.",
        view="activation", modules=(nn.Tanh,), functions=(torch.tanh, F.tanh)),
    LayerType(
        "leaky_relu", "Leaky ReLU", "activation",
        "Like ReLU but with slope 0.01 for negative inputs, so no unit is ever without a gradient.",
        "LeakyReLU passes the gradient where its input was positive and passes a small fraction of it (the "
        "slope) where the input was negative, so no unit is cut off completely.",
        view="activation", attributes=("negative_slope",), modules=(nn.LeakyReLU,),
        functions=(F.leaky_relu, F.leaky_relu_)),
    LayerType(
        "max_pool2d", "Max pooling", "pooling",
        "Each window of a map keeps its largest value.",
        "Max pooling sends each gradient back to the one value that was the maximum of its window; every "
        "other value in the window gets zero.",
        view="pool", attributes=(*_POOL_2D, "dilation", "ceil_mode"), pooling="max",
        modules=(nn.MaxPool2d,), functions=(F.max_pool2d, torch.max_pool2d)),
    LayerType(
        "avg_pool2d", "Average pooling", "pooling",
        "Each window of a map keeps its mean.",
        "Average pooling shares each gradient equally among the values of its window.",
        view="pool", attributes=(*_POOL_2D, "ceil_mode", "count_include_pad", "divisor_override"),
        pooling="average", modules=(nn.AvgPool2d,), functions=(F.avg_pool2d,)),
    LayerType(
        "adaptive_max_pool2d", "Adaptive max pooling", "pooling",
        "Cuts each map into a fixed number of windows, whatever its size, and keeps each window's largest value.",
        "Adaptive max pooling sends each gradient back to the one value that was the maximum of its window; "
        "every other value in the window gets zero.",
        view="pool", attributes=("output_size",), pooling="max",
        modules=(nn.AdaptiveMaxPool2d,), functions=(F.adaptive_max_pool2d,)),
    LayerType(
        "adaptive_avg_pool2d", "Adaptive average pooling", "pooling",
        "Cuts each map into a fixed number of windows, whatever its size, and keeps each window's mean "
        "(global average pooling when the output is 1×1).",
        "Adaptive average pooling shares each gradient equally among the values of its window.",
        view="pool", attributes=("output_size",), pooling="average",
        modules=(nn.AdaptiveAvgPool2d,), functions=(F.adaptive_avg_pool2d,)),
    # Functional batch norm has one function for every rank; engine/kinds.py names it by input rank,
    # as nn.BatchNorm1d/2d/3d do.
    LayerType(
        "batch_norm2d", "Batch normalization", "normalization",
        "Normalizes each channel by the mean and variance recorded in training, then scales it by γ and "
        "shifts it by β.",
        "Batch norm (in evaluation) scales and shifts each channel, so the gradient is scaled by γ / √(var + ε).",
        view="norm", attributes=("num_features", "eps", "momentum", "affine", "track_running_stats"),
        modules=(nn.BatchNorm2d,)),
    LayerType(
        "dropout", "Dropout", "regularization",
        "In training, zeroes random values (and scales the rest up); when the model is evaluated, it does nothing.",
        "Dropout does nothing when the model is evaluated, so the gradient passes unchanged.",
        attributes=("p",), modules=(nn.Dropout,), functions=(F.dropout, torch.dropout)),
    LayerType(
        "flatten", "Flatten", "reshape",
        "Unrolls the maps into one vector, row by row, channel after channel.",
        "Flatten only reshapes: the gradient goes back unchanged, folded into the maps it came from.",
        view="dense", attributes=("start_dim", "end_dim"), modules=(nn.Flatten,), functions=(torch.flatten,)),
    LayerType(
        "add", "Addition", "merge",
        "Adds its inputs value by value, as a residual connection does.",
        "An addition copies its gradient to each of its inputs: this is why residual connections keep "
        "gradients alive.",
        view="merge", functions=(operator.add, operator.iadd, torch.add)),
    LayerType(
        "cat", "Concatenation", "merge",
        "Joins its inputs along one dimension (the channels, for maps).",
        "A concatenation splits its gradient back into the pieces it joined.",
        view="merge", attributes=("dim",), functions=(torch.cat, torch.concat, torch.concatenate)),
    LayerType(
        "softmax", "Softmax", "probabilities",
        "Turns scores into probabilities: e^xᵢ / Σⱼ e^xⱼ, positive and summing to 1.",
        "Softmax couples every class: the gradient of one probability depends on all of them.",
        view="dense", attributes=("dim",), modules=(nn.Softmax,), functions=(F.softmax, torch.softmax)),
]}


def of_family(family: Family) -> dict[str, LayerType]:
    """The layer types of one family, in the table's order."""
    return {t.id: t for t in LAYER_TYPES.values() if t.family == family}


# What the lab and the models can use as an activation: each is built with its module's defaults.
ACTIVATIONS = of_family("activation")
