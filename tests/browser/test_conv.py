"""The convolution and pooling lessons: click an output value, and the page's own arithmetic (sum of
products + bias, or the max of the window) equals the value it shows as served, which equals what
the API itself serves for that image; step and play move the position; the shift experiment runs.
"""

import math
from typing import Any

import httpx
import pytest
import torch
import torch.nn.functional as F
from playwright.sync_api import Locator, Page

from convscope.codec import decode
from tests.browser.ui import mark_result, new_verdict, open_page, query, shoot
from tests.tolerance import gamma

LESSON = "[data-view=detail] .lesson"


def served_map(api: httpx.Client, model: str, sample: str, layer: str) -> torch.Tensor:
    """The layer's output [C, H, W] for a sample (or the prepared input, for "input"), from the API directly."""
    layers = [] if layer == "input" else [layer]
    answer = api.post(f"/api/models/{model}/forward?encoding=base64", json={"sample": sample, "layers": layers})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return decode(body["input"] if layer == "input" else body["layers"][layer])


def conv_slack(api: httpx.Client, model: str, sample: str, layer: dict[str, Any]) -> torch.Tensor:
    """Per output value [C, H, W], how far the page's sum of products + bias may be from the served one.
    The server's float32 dot product of n terms (the products and the bias) is within γ(n)·Σ|terms| of the
    exact sum, in whatever order its kernel adds; the page's float64 products of float32 numbers are exact
    and its float64 sum is off by less than n·2⁻⁵³·Σ|terms|, under one more float32 rounding: γ(n + 1)."""
    a = layer["attributes"]
    x = served_map(api, model, sample, layer["inputs"][0]).double()
    params = api.get(f"/api/models/{model}/layers/{layer['name']}/weights?encoding=base64").json()
    w = decode(params["weight"]).double()
    b = decode(params["bias"]).double() if isinstance(params.get("bias"), dict) else None
    assert a["padding_mode"] == "zeros", "the padding reads as zeros, adding nothing to Σ|terms|"
    magnitude = F.conv2d(x.abs()[None], w.abs(), None if b is None else b.abs(), stride=a["stride"],
                         padding=a["padding"], dilation=a["dilation"], groups=a["groups"])[0]  # Σ|terms| per output
    count = w[0].numel() + (b is not None)
    return gamma(count + 1) * magnitude


def open_lesson(page: Page, live_server: str, model: str, layer: str) -> tuple[str, Locator]:
    """Open the page on `layer`; returns the sample it shows and the lesson's output map."""
    open_page(page, live_server, f"?model={model}&layer={layer}")
    page.wait_for_selector(f"[data-view=detail][data-layer='{layer}'] .lesson canvas[data-output-map]")
    return query(page)["sample"], page.locator(f"{LESSON} canvas[data-output-map]")


def position(page: Page) -> tuple[int, int, int]:
    c, y, x = (int(v) for v in (page.get_attribute(LESSON, "data-position") or "").split(","))
    return c, y, x


def click_cell(canvas: Locator, y: int, x: int) -> None:
    """Click the centre of cell (y, x) of a lesson map, from its own data-rows / data-cols."""
    box = canvas.bounding_box()
    assert box is not None
    rows, cols = int(canvas.get_attribute("data-rows") or 0), int(canvas.get_attribute("data-cols") or 0)
    canvas.click(position={"x": (x + 0.5) * box["width"] / cols, "y": (y + 0.5) * box["height"] / rows})


def value(page: Page, hook: str) -> float:
    text = page.get_attribute(f"{LESSON} [data-{hook}]", "data-value")
    assert text is not None, f"no [data-{hook}] in the lesson"
    return float(text)


def check_agreement(page: Page, served: torch.Tensor, result: str, shown: str,
                    slack: torch.Tensor) -> tuple[int, int, int]:
    """The page's own result is within `slack` ([C, H, W], each lesson's reasoned bound) of the value it
    shows as served, and that is the API's value exactly."""
    c, y, x = position(page)
    mine, theirs = value(page, result), value(page, shown)
    # data-value is String(a float64), which reads back exactly; the slack is the lesson's own reason.
    assert abs(mine - theirs) <= slack[c, y, x].item(), \
        f"at {(c, y, x)}: page computes {mine}, shows {theirs} as served, more than {slack[c, y, x].item():.3g} apart"
    # Exact: the page shows the float32 the API served for the same image, and JSON/base64 carry it exactly.
    assert theirs == served[c, y, x].item(), f"at {(c, y, x)}: page shows {theirs}, the API serves {served[c, y, x].item()}"
    return c, y, x


def step_and_play(page: Page, served: torch.Tensor, result: str, shown: str, slack: torch.Tensor) -> None:
    """Step moves one position in reading order (to the next row at a row's end) and the page's
    result still agrees; play toggles aria-pressed."""
    _, rows, cols = served.shape
    click_cell(page.locator(f"{LESSON} canvas[data-output-map]"), 1, cols - 2)
    c = position(page)[0]
    for expected in [(c, 1, cols - 1), (c, 2, 0), (c, 2, 1)]:
        page.click(f"{LESSON} [data-action=step]")
        assert position(page) == expected
        check_agreement(page, served, result, shown, slack)
    play = page.locator(f"{LESSON} [data-action=play]")
    assert play.get_attribute("aria-pressed") == "false"
    play.click()
    assert play.get_attribute("aria-pressed") == "true"
    play.click()
    assert play.get_attribute("aria-pressed") == "false"
    check_agreement(page, served, result, shown, slack)


@pytest.mark.parametrize("model, layer", [("mnist-lenet", "conv1"), ("fashion-tinyvgg", "conv2_1")])
def test_clicked_conv_value_is_the_sum_of_products_plus_bias_and_the_served_one(
        page: Page, live_server: str, api: httpx.Client, layers: dict[str, list[dict[str, Any]]],
        model: str, layer: str) -> None:
    sample, canvas = open_lesson(page, live_server, model, layer)
    served = served_map(api, model, sample, layer)
    slack = conv_slack(api, model, sample, next(la for la in layers[model] if la["name"] == layer))
    channels, rows, cols = served.shape
    assert [int(canvas.get_attribute("data-rows") or 0), int(canvas.get_attribute("data-cols") or 0)] == [rows, cols]
    check_agreement(page, served, "neuron-sum", "neuron-served", slack)  # the view opens on a value of its own

    # Inside, a corner and an edge (where the window reads padding), then another channel.
    for y, x, padded in [(rows // 2, cols // 3, False), (0, 0, True), (rows - 1, cols // 2, True)]:
        click_cell(canvas, y, x)
        c, got_y, got_x = check_agreement(page, served, "neuron-sum", "neuron-served", slack)
        assert (got_y, got_x) == (y, x)
        pads = page.locator(f"{LESSON} [data-products] .pad").count()
        assert (pads > 0) == padded, f"({y}, {x}): {pads} padding cells among the products"
    page.select_option(f"{LESSON} [data-control=output-channel]", str(channels - 1))
    canvas = page.locator(f"{LESSON} canvas[data-output-map]")  # a new map for the new channel
    click_cell(canvas, 1, cols - 2)
    assert check_agreement(page, served, "neuron-sum", "neuron-served", slack) == (channels - 1, 1, cols - 2)
    shoot(page, f"conv-{model}-{layer}", LESSON)
    step_and_play(page, served, "neuron-sum", "neuron-served", slack)


@pytest.mark.parametrize("model, layer", [("mnist-lenet", "pool1"), ("fashion-tinyvgg", "pool2")])
def test_clicked_pool_value_is_the_max_of_its_window_and_the_served_one(
        page: Page, live_server: str, api: httpx.Client, model: str, layer: str) -> None:
    sample, canvas = open_lesson(page, live_server, model, layer)
    served = served_map(api, model, sample, layer)
    exact = torch.zeros_like(served, dtype=torch.float64)  # the max of float32 values is one of them: nothing rounds
    _, rows, cols = served.shape
    check_agreement(page, served, "pool-result", "pool-served", exact)
    for y, x in [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 2)]:
        click_cell(canvas, y, x)
        assert check_agreement(page, served, "pool-result", "pool-served", exact)[1:] == (y, x)
        assert page.locator(f"{LESSON} .numgrid .marked").count() == 1  # the max, outlined
    strongest = divmod(int(served[0].argmax()), cols)  # a window worth a screenshot
    click_cell(canvas, *strongest)
    assert check_agreement(page, served, "pool-result", "pool-served", exact) == (0, *strongest)
    assert value(page, "pool-result") > 0
    shoot(page, f"pool-{model}-{layer}", LESSON)
    step_and_play(page, served, "pool-result", "pool-served", exact)

    page.click(f"{LESSON} [data-action=shift]")
    result = page.wait_for_selector(f"{LESSON} .shift-result")
    assert result is not None and result.get_attribute("data-shift") == "1,right"
    changes = {}
    for when in ("before", "after"):
        text = page.get_attribute(f"{LESSON} .shift-result [data-change={when}]", "data-value")
        assert text is not None
        changes[when] = float(text)
        assert math.isfinite(changes[when]) and changes[when] >= 0
    assert changes["before"] > 0, "a 1-pixel shift changed nothing before pooling"
    shoot(page, f"pool-shift-{model}-{layer}", LESSON)


def test_another_image_repaints_the_detail_in_place_and_a_channel_click_still_reaches_the_lesson(
        page: Page, live_server: str, api: httpx.Client, layers: dict[str, list[dict[str, Any]]]) -> None:
    model, layer = "fashion-tinyvgg", "conv1_1"
    first, _ = open_lesson(page, live_server, model, layer)
    channels = "[data-view=detail] .channels canvas"
    checksum = "canvases => canvases.map(c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.reduce((a, b) => (a * 31 + b) % 1000003, 0))"
    page.eval_on_selector_all(channels, "canvases => canvases.forEach(c => c.dataset.kept = '')")
    page.eval_on_selector("[data-view=detail] .params", "el => el.dataset.kept = ''")
    before = page.eval_on_selector_all(channels, checksum)

    other = next(s["id"] for s in api.get(f"/api/models/{model}/samples").json()["samples"] if s["id"] != first)
    mark_result(page)
    page.click(f"[data-view=samples] [data-sample='{other}']")
    new_verdict(page)
    page.wait_for_function("sample => new URLSearchParams(location.search).get('sample') === sample", arg=other)
    assert page.locator(f"{channels}[data-kept]").count() == page.locator(channels).count() == 32, "channels rebuilt"
    assert page.locator("[data-view=detail] .params[data-kept]").count() == 1, "parameters redrawn for a new image"
    assert page.eval_on_selector_all(channels, checksum) != before, "the channels still show the first image"
    served = served_map(api, model, other, layer)
    slack = conv_slack(api, model, other, next(la for la in layers[model] if la["name"] == layer))
    page.wait_for_selector(f"{LESSON} canvas[data-output-map]")
    check_agreement(page, served, "neuron-sum", "neuron-served", slack)

    # The lesson rebuilt for the new image still hears clicks on the (kept) channel canvases.
    canvas = page.locator(f"{channels}[data-channel='7']")
    box = canvas.bounding_box()
    assert box is not None
    canvas.click(position={"x": 4.5 * box["width"] / 28, "y": 9.5 * box["height"] / 28})
    assert position(page) == (7, 9, 4)
    check_agreement(page, served, "neuron-sum", "neuron-served", slack)
