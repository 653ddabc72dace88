"""A layer output's stand-in for large models' overviews: its value statistics and a small thumbnail."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

THUMBNAIL = 8  # default side of a feature map's thumbnail
MAX_THUMBNAIL = 32
MAX_VECTOR = 1024  # a 1-D output longer than this is pooled down to it


@dataclass(frozen=True)
class Summary:
    """Shape, min, max, mean and (population) standard deviation of a layer output, and its thumbnail.

    A statistic is None when it is not a finite number (an output holding inf or NaN, or no values)."""

    shape: list[int]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    thumbnail: Tensor


def summarize(t: Tensor, size: int = THUMBNAIL) -> Summary:
    """The summary of one output without batch dim: [C, H, W], [N], or any other shape.

    The statistics are those of the float32 values the API serves, summed in float64."""
    # numpy: its two-pass float64 mean and std take a third of the time of torch.std_mean (Welford),
    # which cost as much as the forward itself on a ResNet-18 at 224×224.
    values = t.detach().to(torch.float32).contiguous().numpy().ravel()
    if values.size == 0:
        return Summary(list(t.shape), None, None, None, None, thumbnail(t, size))
    with np.errstate(invalid="ignore", over="ignore"):  # inf or NaN in, None out
        stats = values.min(), values.max(), values.mean(dtype=np.float64), values.std(dtype=np.float64)
    low, high, mean, std = (_finite(float(v)) for v in stats)
    return Summary(list(t.shape), low, high, mean, std, thumbnail(t, size))


def thumbnail(t: Tensor, size: int = THUMBNAIL) -> Tensor:
    """A small picture of an output, float32.

    [C, H, W]: each channel adaptive-average-pooled to at most size × size (a side already no longer
    than `size` keeps its length) → [C, min(H, size), min(W, size)]. [N]: the values themselves if
    N <= 1024, else adaptive-average-pooled to 1024. Any other rank of 2 or more: as [C, H, W], the
    last two dimensions pooled. A 0-D output is itself."""
    t = t.detach().to(torch.float32)
    if t.dim() == 1:
        return t if t.numel() <= MAX_VECTOR else F.adaptive_avg_pool1d(t[None, None], MAX_VECTOR)[0, 0]
    if t.dim() < 2:
        return t
    height, width = t.shape[-2:]
    out = (min(height, size), min(width, size))
    if out == (height, width):
        return t
    pooled = F.adaptive_avg_pool2d(t.reshape(-1, height, width), out)  # [C, h, w], unbatched
    return pooled.reshape(*t.shape[:-2], *out)


def _finite(number: float) -> float | None:
    return number if math.isfinite(number) else None
