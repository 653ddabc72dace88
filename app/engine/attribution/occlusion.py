"""Occlusion: how much the target's logit drops when a patch of the input is replaced by the baseline."""

import math
from typing import cast

from captum import attr as captum
from torch import Tensor

from convscope.engine.attribution.base import (
    BASELINE,
    MAX_OCCLUSIONS,
    STRIDE,
    WINDOW,
    Method,
    MethodOptions,
    Pair,
    Result,
    Subject,
)
from convscope.errors import InvalidRequest


def default_window(height: int, width: int) -> Pair:
    """A seventh of the shorter side, square: 4×4 for 28×28, 32×32 for 224×224 (169 positions either way
    with the default stride)."""
    side = max(1, round(min(height, width) / 7))
    return side, side


def default_stride(window: Pair) -> Pair:
    return max(1, window[0] // 2), max(1, window[1] // 2)


def positions(size: Pair, window: Pair, stride: Pair) -> int:
    """How many patch positions Captum's Occlusion visits (the last one may hang over the edge)."""
    return math.prod(math.ceil((n - w) / s) + 1 for n, w, s in zip(size, window, stride))


class Occlusion(Method):
    """Captum's Occlusion (Zeiler and Fergus, 2014): a (C, h, w) window slid over the input."""

    name = "occlusion"
    summary = ("The drop in the target's score when a window of the input (all channels) is replaced by the "
               "baseline, averaged over every window position that covers the pixel; forward passes only.")
    options = (WINDOW, STRIDE, BASELINE)

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        channels, height, width = x.shape[1:]
        size = (height, width)
        window = options.window or default_window(height, width)
        stride = options.stride or default_stride(window)
        if window[0] > height or window[1] > width:
            raise InvalidRequest(f"'window' {list(window)} is larger than the {height}×{width} input.")
        for n, w, s in zip(size, window, stride):
            if s > w and w < n:
                raise InvalidRequest(f"'stride' {list(stride)} is larger than the window {list(window)}: "
                                     "some pixels would never be covered.")
        count = positions(size, window, stride)
        if count > MAX_OCCLUSIONS:
            raise InvalidRequest(f"'stride': window {list(window)} with stride {list(stride)} makes {count} occlusions "
                                 f"of this {height}×{width} input; at most {MAX_OCCLUSIONS} are allowed, so use a "
                                 "larger stride or window.")
        found = captum.Occlusion(subject.model).attribute(
            x, sliding_window_shapes=(channels, *window), strides=(channels, *stride),
            baselines=subject.baseline(options.baseline, x), target=target,
            perturbations_per_eval=subject.batch(count, backward=False))
        return Result(cast(Tensor, found),
                      {"window": list(window), "stride": list(stride), "baseline": options.baseline})
