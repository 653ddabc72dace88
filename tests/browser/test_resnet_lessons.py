"""The ResNet-18 lessons for batch norm, the residual add and global average pooling: the page's own
arithmetic for a clicked value equals the value it shows as served, which equals the API's value at
that place; and, apart from the page, each lesson's formula redone in PyTorch from the served
inputs and weights gives the served layer."""

import httpx
import pytest
import torch
import torch.nn.functional as F
from playwright.sync_api import Page

from convscope.codec import decode
from tests.browser.test_conv import LESSON, check_agreement, click_cell, position, served_map, step_and_play

# The page and the API are the ResNet example's server (tests/browser/conftest.py), as in test_large.py.
from tests.browser.test_large import api, live_server  # noqa: F401
from tests.browser.ui import open_page, shoot
from tests.tolerance import assert_reordered, gamma

MODEL = "resnet18"
SAMPLE = "shapes"
DETAIL = "[data-view=detail]"
STEP_MS = 20_000  # a layer and its inputs fetched and drawn, on a busy 2-core machine


def output(api: httpx.Client, layer: str) -> torch.Tensor:
    return served_map(api, MODEL, SAMPLE, layer)


def weights(api: httpx.Client, layer: str) -> dict[str, torch.Tensor]:
    answer = api.get(f"/api/models/{MODEL}/layers/{layer}/weights?encoding=base64")
    assert answer.status_code == 200, answer.text
    return {k: decode(v) for k, v in answer.json().items() if isinstance(v, dict)}


def open_layer(page: Page, live_server: str, layer: str, hook: str) -> None:
    open_page(page, live_server, f"?model={MODEL}&sample={SAMPLE}&layer={layer}")
    page.wait_for_selector(f"{DETAIL}[data-layer='{layer}'] .lesson [data-{hook}]", timeout=STEP_MS)


def another_value(page: Page, served: torch.Tensor, hooks: tuple[str, str], channel: int,
                  slack: torch.Tensor) -> None:
    """Pick another channel and click a value near its far corner: the page still agrees."""
    _, rows, cols = served.shape
    page.select_option(f"{LESSON} [data-control=output-channel]", str(channel))
    click_cell(page.locator(f"{LESSON} canvas[data-output-map]"), rows - 2, cols - 1)
    assert check_agreement(page, served, *hooks, slack) == (channel, rows - 2, cols - 1)


@pytest.mark.parametrize("layer, source", [("bn1", "conv1"), ("layer3.1.bn2", "layer3.1.conv2")])
def test_a_clicked_batch_norm_value_is_its_normalised_input_scaled_and_shifted(
        page: Page, live_server: str, api: httpx.Client, layer: str, source: str) -> None:
    open_layer(page, live_server, layer, "norm-result")
    served = output(api, layer)
    x, p = output(api, source), weights(api, layer)
    eps = next(la for la in api.get(f"/api/models/{MODEL}").json()["layers"] if la["name"] == layer)["attributes"]["eps"]
    mean, var, gamma_, beta = (p[k][:, None, None] for k in ("running_mean", "running_var", "weight", "bias"))  # [C, 1, 1]
    # Σ|terms| of y = x·a − μ·a + β, a = γ/√(σ² + ε): the scale every rounding below is relative to.
    a = gamma_.double() / torch.sqrt(var.double() + eps)
    magnitude = (x.double() * a).abs() + (mean.double() * a).abs() + beta.double().abs()
    # The server's float32 batch norm rounds at most 7 times along any term's path (σ² + ε, √, 1/·, ·γ into
    # a; then μ·a, β − μ·a and the last sum), each within u of its result: γ(7)·Σ|terms|; the page's float64
    # steps from the same float32 numbers (and ε as float64, not float32) add less than one more: γ(8).
    slack = gamma(8) * magnitude
    hooks = ("norm-result", "norm-served")
    check_agreement(page, served, *hooks, slack)
    another_value(page, served, hooks, served.shape[0] - 1, slack)
    shoot(page, f"resnet-norm-{layer}", LESSON)
    step_and_play(page, served, *hooks, slack)

    # A bar of the per-channel scale chart picks its channel.
    before = position(page)[0]
    page.locator(f"{LESSON} canvas[data-chart=scale]").click(position={"x": 300, "y": 60})
    assert position(page)[0] != before
    check_agreement(page, served, *hooks, slack)

    # The lesson's formula in PyTorch, from the served input and the weights endpoint: eval-mode batch norm.
    # Another float32 formula: x − μ, σ² + ε, √, ÷, ·γ, + β round 6 times, γ(6); with the server's γ(7), γ(13).
    mine = (x - mean) / torch.sqrt(var + eps) * gamma_ + beta
    excess = float(((mine.double() - served.double()).abs() - gamma(13) * magnitude).max())
    assert excess <= 0, f"the formula in PyTorch is off by {excess:.3g} more than its float32 roundings allow"
    # Bitwise: the same PyTorch kernel on the same float32 input, at the server's thread count.
    torch.testing.assert_close(F.batch_norm(x[None], p["running_mean"], p["running_var"], p["weight"], p["bias"],
                                            training=False, eps=eps)[0], served, rtol=0, atol=0)


def test_a_clicked_value_of_the_first_residual_add_is_the_sum_of_its_two_inputs(
        page: Page, live_server: str, api: httpx.Client) -> None:
    layer = "add"
    open_layer(page, live_server, layer, "merge-result")
    served = output(api, layer)
    inputs = next(la for la in api.get(f"/api/models/{MODEL}").json()["layers"] if la["name"] == layer)["inputs"]
    assert inputs == ["layer1.0.bn2", "maxpool"]
    a, b = output(api, inputs[0]), output(api, inputs[1])
    # a + b: one float32 rounding on the server, within u·(|a| + |b|); the page's float64 sum adds less than one more.
    slack = gamma(2) * (a.double().abs() + b.double().abs())
    hooks = ("merge-result", "merge-served")
    check_agreement(page, served, *hooks, slack)
    another_value(page, served, hooks, 5, slack)
    # The picked channel of each input and of the sum, side by side, the same place marked in each.
    selected = page.eval_on_selector_all(f"{LESSON} canvas.map", "maps => maps.map(m => m.dataset.selected)")
    c, y, x = position(page)
    assert selected == [f"{y},{x}"] * 3
    shoot(page, "resnet-merge-add", LESSON)

    # Bitwise: the same float32 addition, elementwise, so correctly rounded on any CPU.
    torch.testing.assert_close(a + b, served, rtol=0, atol=0)


def test_global_average_pooling_is_the_mean_of_each_whole_map(page: Page, live_server: str, api: httpx.Client) -> None:
    layer = "avgpool"
    open_layer(page, live_server, layer, "pool-result")
    served = output(api, layer)
    before = output(api, "layer4_1_relu_1")  # [512, 7, 7]
    # A mean of 49: the server's float32 sum and division, within γ(50)·Σ|x|/49 of the exact mean (the sum's 49
    # terms and the division); the page's float64 sum and division add less than one more rounding: γ(51).
    slack = gamma(51) * before.double().abs().sum(dim=(1, 2), keepdim=True) / 49
    hooks = ("pool-result", "pool-served")
    c, _, _ = check_agreement(page, served, *hooks, slack)
    assert c == int(served.flatten().argmax()), "global pooling opens on its largest channel"
    assert page.locator(f"{LESSON} .numgrid [role=cell]").count() == 49  # the whole 7×7 map

    # The output is one grid of all 512 channels: clicking a cell picks that channel.
    grid = page.locator(f"{LESSON} canvas[data-output-map]")
    assert [grid.get_attribute("data-rows"), grid.get_attribute("data-cols")] == ["16", "32"]
    click_cell(grid, 3, 7)
    assert check_agreement(page, served, *hooks, slack) == (3 * 32 + 7, 0, 0)
    shoot(page, "resnet-pool-avgpool", LESSON)

    # Another kernel for the same mean: 49 terms of x/49 added in another order, and the division, 50 roundings.
    assert_reordered(before.mean(dim=(1, 2), keepdim=True), served, 50,
                     before.abs().sum(dim=(1, 2), keepdim=True) / 49, "the mean of each map")
    # Bitwise: the same PyTorch kernel on the same float32 input, at the server's thread count.
    torch.testing.assert_close(F.adaptive_avg_pool2d(before, 1), served, rtol=0, atol=0)
