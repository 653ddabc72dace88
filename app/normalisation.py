"""Input normalisation, defined once.

Every place that normalises pixels calls `normalise`: uploaded images (imaging.py), the training
lab's datasets, and the 'black' attribution baseline. One spelling gives the same float32 bits
everywhere. `-mean / std` worked out in Python floats and then cast is one ulp away from
`(0 - mean) / std` in float32, and integrated gradients through ReLU and max-pool kinks turns
that one ulp into 1e-2 on some pixels.
"""

from collections.abc import Sequence

import torch
from torch import Tensor


def normalise(pixels: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Pixels scaled to [0, 1], [..., C, H, W] → float32 (pixels − mean) / std, per channel.

    mean and std are cast to float32 first, and the subtraction and division are done in float32."""
    per_channel = (len(mean), 1, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(per_channel)
    s = torch.tensor(std, dtype=torch.float32).view(per_channel)
    return (pixels.to(torch.float32) - m) / s


def black(like: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """A black image (every pixel 0) normalised, shaped like `like` [..., C, H, W]."""
    return normalise(torch.zeros_like(like, dtype=torch.float32), mean, std)
