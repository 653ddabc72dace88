"""summarize/thumbnail: statistics equal torch's in float64, thumbnails equal adaptive average pooling."""

import math

import pytest
import torch
import torch.nn.functional as F

from convscope.engine.summary import summarize, thumbnail
from tests.tolerance import gamma64


@pytest.mark.parametrize("shape, size, expected", [
    ([64, 112, 112], 8, [64, 8, 8]),
    ([3, 30, 17], 8, [3, 8, 8]),
    ([3, 6, 20], 8, [3, 6, 8]),  # a side already short enough keeps its length
    ([5, 7, 7], 8, [5, 7, 7]),
    ([2, 9, 9], 1, [2, 1, 1]),
    ([2, 40, 40], 32, [2, 32, 32]),
])
def test_a_feature_map_thumbnail_is_each_channel_adaptive_average_pooled(
        shape: list[int], size: int, expected: list[int]) -> None:
    torch.manual_seed(0)
    t = torch.randn(shape)
    thumb = thumbnail(t, size)
    assert list(thumb.shape) == expected and thumb.dtype == torch.float32
    # Each channel on its own, through the batched 4-D call: the same numbers.
    for c in range(shape[0]):
        plain = F.adaptive_avg_pool2d(t[c][None, None], (expected[1], expected[2]))[0, 0]
        assert torch.equal(thumb[c], plain)


def test_a_map_no_larger_than_the_thumbnail_is_its_own_thumbnail() -> None:
    t = torch.randn(4, 8, 8)
    assert torch.equal(thumbnail(t, 8), t)


def test_a_vector_is_its_own_thumbnail_up_to_1024_values_then_pooled_to_1024() -> None:
    short, full, long = torch.randn(10), torch.randn(1024), torch.randn(4096 + 7)
    assert torch.equal(thumbnail(short, 8), short) and torch.equal(thumbnail(full, 8), full)
    pooled = thumbnail(long, 8)
    assert list(pooled.shape) == [1024]
    assert torch.equal(pooled, F.adaptive_avg_pool1d(long[None, None], 1024)[0, 0])
    exact = torch.arange(2048, dtype=torch.float32)
    assert torch.equal(thumbnail(exact, 8), exact.reshape(1024, 2).mean(1))  # pairs averaged


def test_other_ranks_pool_their_last_two_dimensions() -> None:
    t = torch.randn(20, 30)
    assert torch.equal(thumbnail(t, 4), F.adaptive_avg_pool2d(t[None], (4, 4))[0])
    scalar = torch.tensor(2.5)
    assert torch.equal(thumbnail(scalar, 4), scalar)


def test_statistics_equal_torch_in_float64_with_the_population_std() -> None:
    torch.manual_seed(1)
    t = torch.randn(16, 20, 20) * 3 + 1
    s = summarize(t, 8)
    d = t.double()
    assert s.shape == [16, 20, 20]
    assert s.min == float(d.min()) and s.max == float(d.max())
    n, mean, std = d.numel(), float(d.mean()), float(d.std(correction=0))
    # numpy's pairwise float64 sum and torch's are two orders of the same n terms: 2·γ(n)·Σ|x| / n apart.
    assert abs(s.mean - mean) <= 2 * gamma64(n + 1) * float(d.abs().mean())
    # A sum of n positive squares (+ the centring and the sqrt, which halves a relative error), in two algorithms
    # (two-pass, Welford) whose centring costs up to a factor 1 + mean²/var on top.
    assert abs(s.std - std) <= gamma64(n + 3) * (1 + mean**2 / std**2) * std
    assert torch.equal(s.thumbnail, thumbnail(t, 8))
    one = summarize(torch.tensor([4.0]), 8)
    assert (one.min, one.max, one.mean, one.std) == (4.0, 4.0, 4.0, 0.0)  # no NaN for a single value


def test_statistics_that_are_not_finite_are_none() -> None:
    s = summarize(torch.tensor([1.0, math.inf, 2.0]), 8)
    assert s.min == 1.0 and s.max is None and s.mean is None and s.std is None
    empty = summarize(torch.zeros(0, 4, 4), 8)
    assert (empty.min, empty.max, empty.mean, empty.std) == (None, None, None, None)
    assert list(empty.thumbnail.shape) == [0, 4, 4]
