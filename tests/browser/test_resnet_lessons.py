"""The ResNet-18 lessons for batch norm, the residual add and global average pooling: the page's own
arithmetic for a clicked value equals the value it shows as served, which equals the API's value at
that place; and, apart from the page, each lesson's formula redone in PyTorch from the served
inputs and weights gives the served layer."""

import httpx
import pytest
import torch
import torch.nn.functional as F
from playwright.sync_api import Page

from app.codec import decode
from tests.browser.test_conv import LESSON, check_agreement, click_cell, position, served_map, step_and_play
# The page and the API are the ResNet example's server (tests/browser/conftest.py), as in test_large.py.
from tests.browser.test_large import api, live_server  # noqa: F401
from tests.browser.ui import open_page, shoot

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


def another_value(page: Page, served: torch.Tensor, hooks: tuple[str, str], channel: int) -> None:
    """Pick another channel and click a value near its far corner: the page still agrees."""
    _, rows, cols = served.shape
    page.select_option(f"{LESSON} [data-control=output-channel]", str(channel))
    click_cell(page.locator(f"{LESSON} canvas[data-output-map]"), rows - 2, cols - 1)
    assert check_agreement(page, served, *hooks) == (channel, rows - 2, cols - 1)


@pytest.mark.parametrize("layer, source", [("bn1", "conv1"), ("layer3.1.bn2", "layer3.1.conv2")])
def test_a_clicked_batch_norm_value_is_its_normalised_input_scaled_and_shifted(
        page: Page, live_server: str, api: httpx.Client, layer: str, source: str) -> None:
    open_layer(page, live_server, layer, "norm-result")
    served = output(api, layer)
    hooks = ("norm-result", "norm-served")
    check_agreement(page, served, *hooks)
    another_value(page, served, hooks, served.shape[0] - 1)
    shoot(page, f"resnet-norm-{layer}", LESSON)
    step_and_play(page, served, *hooks)

    # A bar of the per-channel scale chart picks its channel.
    before = position(page)[0]
    page.locator(f"{LESSON} canvas[data-chart=scale]").click(position={"x": 300, "y": 60})
    assert position(page)[0] != before
    check_agreement(page, served, *hooks)

    # The lesson's formula in PyTorch, from the served input and the weights endpoint: eval-mode batch norm.
    x, p = output(api, source), weights(api, layer)
    eps = next(la for la in api.get(f"/api/models/{MODEL}").json()["layers"] if la["name"] == layer)["attributes"]["eps"]
    mean, var, gamma, beta = (p[k][:, None, None] for k in ("running_mean", "running_var", "weight", "bias"))  # [C, 1, 1]
    mine = (x - mean) / torch.sqrt(var + eps) * gamma + beta
    torch.testing.assert_close(mine, served, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(F.batch_norm(x[None], p["running_mean"], p["running_var"], p["weight"], p["bias"],
                                            training=False, eps=eps)[0], served)


def test_a_clicked_value_of_the_first_residual_add_is_the_sum_of_its_two_inputs(
        page: Page, live_server: str, api: httpx.Client) -> None:
    layer = "add"
    open_layer(page, live_server, layer, "merge-result")
    served = output(api, layer)
    hooks = ("merge-result", "merge-served")
    check_agreement(page, served, *hooks)
    another_value(page, served, hooks, 5)
    # The picked channel of each input and of the sum, side by side, the same place marked in each.
    selected = page.eval_on_selector_all(f"{LESSON} canvas.map", "maps => maps.map(m => m.dataset.selected)")
    c, y, x = position(page)
    assert selected == [f"{y},{x}"] * 3
    shoot(page, "resnet-merge-add", LESSON)

    inputs = next(la for la in api.get(f"/api/models/{MODEL}").json()["layers"] if la["name"] == layer)["inputs"]
    assert inputs == ["layer1.0.bn2", "maxpool"]
    torch.testing.assert_close(output(api, inputs[0]) + output(api, inputs[1]), served, rtol=0, atol=0)


def test_global_average_pooling_is_the_mean_of_each_whole_map(page: Page, live_server: str, api: httpx.Client) -> None:
    layer = "avgpool"
    open_layer(page, live_server, layer, "pool-result")
    served = output(api, layer)
    hooks = ("pool-result", "pool-served")
    c, _, _ = check_agreement(page, served, *hooks)
    assert c == int(served.flatten().argmax()), "global pooling opens on its largest channel"
    assert page.locator(f"{LESSON} .numgrid [role=cell]").count() == 49  # the whole 7×7 map

    # The output is one grid of all 512 channels: clicking a cell picks that channel.
    grid = page.locator(f"{LESSON} canvas[data-output-map]")
    assert [grid.get_attribute("data-rows"), grid.get_attribute("data-cols")] == ["16", "32"]
    click_cell(grid, 3, 7)
    assert check_agreement(page, served, *hooks) == (3 * 32 + 7, 0, 0)
    shoot(page, "resnet-pool-avgpool", LESSON)

    before = output(api, "layer4_1_relu_1")
    torch.testing.assert_close(before.mean(dim=(1, 2), keepdim=True), served, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(F.adaptive_avg_pool2d(before, 1), served)
