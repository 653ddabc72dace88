"""Stepping through the network with the keyboard: the detail view, the overview and the URL."""

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from convscope.codec import decode
from tests.browser.ui import open_page, overview_columns, query, shoot, varied

MODELS = ["mnist-lenet", "fashion-tinyvgg"]


def served_variation(api: httpx.Client, model: str, sample: str) -> dict[str, list[bool]]:
    """Per layer, per channel: does the served map hold more than one value (so it cannot be drawn in one colour)?"""
    body = api.post(f"/api/models/{model}/forward?encoding=base64", json={"sample": sample}).json()
    out: dict[str, list[bool]] = {}
    for name, tensor in body["layers"].items():
        values = decode(tensor).numpy()
        maps = values.reshape(values.shape[0], -1) if values.ndim == 3 else values.reshape(1, -1)
        # Exact `!=`: each map is drawn on its own min..max, so two values show as two colours.
        out[name] = [bool(row.min() != row.max()) for row in maps]
    return out


def channel_count(layer: dict[str, Any]) -> int:
    shape = layer["output_shape"]
    return int(shape[0]) if len(shape) == 3 else 1


def detail_layer(page: Page) -> str:
    return page.get_attribute("[data-view=detail]", "data-layer") or ""


# Does the page have a lesson view for a layer type? Its own registry says (static/js/views/kinds.js).
HAS_LESSON = "async type => !!(await (await import('/static/js/views/kinds.js')).viewFor(type))"


def settle(page: Page, layer: dict[str, Any]) -> None:
    """Let the detail view's slower parts (parameters, the lesson for the layer type) arrive before a
    screenshot: waited for where the page has them, however long they take, and not at all where not."""
    if layer["parameters"]:
        page.wait_for_selector("[data-view=detail] .params figure")
    if page.evaluate(HAS_LESSON, layer["type"]):
        page.wait_for_selector("[data-view=detail] .lesson > *")


@pytest.mark.parametrize("model", MODELS)
def test_arrow_keys_step_through_every_layer_and_the_url_follows(
        page: Page, live_server: str, api: httpx.Client, layers: dict[str, list[dict[str, Any]]], model: str) -> None:
    sample = api.get(f"/api/models/{model}/samples").json()["samples"][0]["id"]
    expected_variation = served_variation(api, model, sample)
    network = layers[model]
    open_page(page, live_server, f"?model={model}&sample={sample}")

    # A step only moves the overview's highlight: the column canvases stay the same elements.
    page.eval_on_selector("[data-view=overview] figure[data-layer] canvas", "canvas => canvas.dataset.kept = ''")
    shot: set[str] = set()
    for i, layer in enumerate(network):
        if i:
            page.keyboard.press("ArrowRight")
        name = layer["name"]
        page.wait_for_selector(f"[data-view=detail][data-layer='{name}'] .channels canvas")
        assert page.get_attribute("[data-view=detail]", "data-type") == layer["type"]
        assert page.text_content("[data-view=position]") == f"{i + 1} / {len(network)}: {name} ({layer['type']})"
        assert query(page)["layer"] == name
        assert page.locator(f"[data-view=overview] figure.current[data-layer='{name}']").count() == 1
        shown = varied(page, "[data-view=detail] .channels canvas")
        assert len(shown) == channel_count(layer), f"{name}: one canvas per output channel"
        assert shown == expected_variation[name], f"{name}: blank canvases where the served maps vary, or the opposite"
        assert any(shown), f"{name}: every channel blank"
        if layer["type"] not in shot:  # one screenshot per kind of layer view
            shot.add(layer["type"])
            settle(page, layer)
            shoot(page, f"detail-{model}-{i + 1:02d}-{name}", "[data-view=detail]")

    assert page.locator("[data-view=overview] canvas[data-kept]").count() == 1, "the overview was rebuilt by a step"

    page.keyboard.press("ArrowRight")  # at the last layer, → stays there
    assert detail_layer(page) == network[-1]["name"]
    assert page.is_disabled("[data-action=next]")

    for layer in reversed(network[-4:-1]):
        page.keyboard.press("ArrowLeft")
        assert detail_layer(page) == layer["name"]
        assert query(page)["layer"] == layer["name"]

    back = network[-4]  # a reload of the URL reopens the same layer, sample and model
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert detail_layer(page) == back["name"]
    assert query(page) == {"model": model, "sample": sample, "layer": back["name"]}
    assert page.get_attribute(f"[data-sample='{sample}']", "aria-pressed") == "true"
    assert page.locator("[data-view=detail] .channels canvas").count() == channel_count(back)
    page.click(f"[data-view=overview] figure[data-layer='{network[0]['name']}']")
    page.keyboard.press("ArrowLeft")  # at the first layer, ← stays there
    assert detail_layer(page) == network[0]["name"]
    assert page.is_disabled("[data-action=prev]")


@pytest.mark.parametrize("model", MODELS)
def test_overview_has_a_column_per_layer_and_the_input(
        page: Page, live_server: str, api: httpx.Client, layers: dict[str, list[dict[str, Any]]], model: str) -> None:
    network = layers[model]
    sample = api.get(f"/api/models/{model}/samples").json()["samples"][0]["id"]
    open_page(page, live_server, f"?model={model}")
    figures = page.eval_on_selector_all("[data-view=overview] > figure[data-layer]",
                                        "figures => figures.map(f => [f.dataset.layer, f.querySelectorAll('canvas').length])")
    assert figures == [[name, 1] for name in ["input", *(layer["name"] for layer in network)]], "one canvas per column"
    columns = overview_columns(page)
    assert [[c["layer"], c["channels"]] for c in columns] == \
        [["input", 1]] + [[layer["name"], channel_count(layer)] for layer in network]
    for column in columns:  # the pixels hold one band per channel, parted by transparent gaps
        assert len(column["bands"]) == column["channels"], f"{column['layer']}: bands of pixels vs data-channels"
    assert columns[0]["bands"][0][2], "the input picture is blank"
    shown = {c["layer"]: [band[2] for band in c["bands"]] for c in columns[1:]}
    assert shown == served_variation(api, model, sample), "blank channels where the served maps vary, or the opposite"
    assert any(varied(page, "[data-view=overview] canvas"))

    # Pointing at a channel names it and where the layer's input came from.
    layer = network[2]
    column = columns[3]
    channel = min(5, column["channels"] - 1)
    first, end, _ = column["bands"][channel]
    selector = f"[data-view=overview] figure[data-layer='{layer['name']}'] canvas"
    box = page.locator(selector).bounding_box()
    assert box is not None
    page.hover(selector, position={"x": box["width"] / 2, "y": (first + end) / 2 * box["height"] / column["height"]})
    assert page.is_visible("[data-view=overview] .overview-tip")
    assert page.text_content("[data-view=overview] .overview-tip") == \
        f"{layer['name']} · channel {channel} · from {', '.join(layer['inputs'])}"
    assert page.is_visible(f"[data-view=overview] figure[data-layer='{layer['name']}'] .overview-mark")
    page.mouse.move(0, 0)
    assert page.is_hidden("[data-view=overview] .overview-tip")

    # Another colour scale repaints the same canvases.
    checksum = "canvases => canvases.map(c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.reduce((a, b) => (a * 31 + b) % 1000003, 0))"
    before = page.eval_on_selector_all("[data-view=overview] canvas", checksum)
    page.select_option("[data-control=scale]", "layer")
    after = page.eval_on_selector_all("[data-view=overview] canvas", checksum)
    assert len(after) == len(before) and after != before, "the overview did not follow the colour scale"
    page.click(f"[data-view=overview] figure[data-layer='{network[-1]['name']}']")  # a column opens its layer
    assert detail_layer(page) == network[-1]["name"]
    shoot(page, f"overview-{model}", "[data-view=overview]")
    shoot(page, f"page-{model}")


def test_model_picker_switches_models(page: Page, live_server: str, api: httpx.Client,
                                      layers: dict[str, list[dict[str, Any]]]) -> None:
    open_page(page, live_server, "?model=mnist-lenet")
    for model in ["fashion-tinyvgg", "mnist-lenet"]:
        summary = api.get(f"/api/models/{model}").json()
        samples = [s["id"] for s in api.get(f"/api/models/{model}/samples").json()["samples"]]
        page.select_option("[data-control=model]", model)
        first = layers[model][0]["name"]
        page.wait_for_selector(f"[data-view=overview] figure[data-layer='{first}']")
        page.wait_for_selector(f"[data-view=detail][data-layer='{first}']")
        assert page.eval_on_selector_all("[data-sample]", "b => b.map(x => x.dataset.sample)") == samples
        assert page.locator("[data-view=overview] > figure").count() == len(layers[model]) + 1
        assert page.get_attribute(".verdict", "data-prediction") in summary["classes"]
        assert page.locator(".bars li").count() == len(summary["classes"])
        assert query(page) == {"model": model, "sample": samples[0], "layer": first}
        shoot(page, f"picker-{model}")
