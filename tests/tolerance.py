"""Tolerances that follow from what is compared, so that they hold on any CPU and thread count.

Two float32 results can differ for only two reasons: the same numbers are added in another
order (another kernel, batch size, thread split or CPU), or another formula is used. The first
is bounded below; the second calls for a reason given where it is used. Where both sides run the
same code on the same input, compare bit for bit (atol=0, rtol=0): nothing can differ.

The bound (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1): a float32
dot product or sum of n terms, in any order, is within γ(n)·Σ|termᵢ| of the exact value, where
γ(n) = n·u / (1 − n·u) and u = 2⁻²⁴ is float32's unit roundoff. Two orders are therefore within
2·γ(n)·Σ|termᵢ| of each other. It is a worst case: typical errors are far smaller, so a test
that needs more than this has found a real difference.
"""

from __future__ import annotations

import torch
from torch import Tensor

UNIT_ROUNDOFF = 2.0**-24  # float32: |fl(x) − x| ≤ u·|x|
ULP_AT_ONE = 2.0**-23  # float32 machine epsilon, the spacing of floats in [1, 2)


def gamma(n: int) -> float:
    """γ(n) = n·u / (1 − n·u): the relative error bound of n float32 roundings in a row."""
    nu = n * UNIT_ROUNDOFF
    assert nu < 1, f"{n} roundings are too many for a float32 bound"
    return nu / (1 - nu)


def gamma64(n: int) -> float:
    """γ(n) for float64 (u = 2⁻⁵³): the relative error bound of n float64 roundings in a row."""
    nu = n * 2.0**-53
    return nu / (1 - nu)


def reordered(count: int, magnitude: float | Tensor) -> float | Tensor:
    """How far apart two float32 sums (or dot products) of `count` terms can be when they add them in
    different orders: 2·γ(count)·Σ|termᵢ|. `magnitude` is Σ|termᵢ| (for a dot product Σ|aᵢ·bᵢ|, a bias
    counting as one more term), a number or a tensor of them, one per output element."""
    return 2 * gamma(count) * magnitude


def assert_reordered(got: Tensor, expected: Tensor, count: int, magnitude: Tensor, what: str = "") -> None:
    """`got` equals `expected` element by element within `reordered(count, magnitude)`."""
    bound = reordered(count, magnitude)
    excess = (got.double() - expected.double()).abs() - torch.as_tensor(bound, dtype=torch.float64)
    worst = float(excess.max()) if excess.numel() else 0.0
    assert worst <= 0, f"{what}: off by {worst:.3g} more than a reordered float32 sum of {count} terms allows"
