"""The attribution panel: every method the server lists can be chosen, and the map drawn over the
input is the server's (its largest |value| equals the API's for the same request); options reach
the server; a bad option gets the server's sentence and the page carries on."""

import math
from typing import Any

import httpx
import torch
from playwright.sync_api import Page

from convscope.codec import decode
from tests.browser.ui import Console, open_page, shoot, varied

PANEL = "[data-view=attribution]"
MAP = f"{PANEL} canvas.attr-map"


def served_max(api: httpx.Client, model: str, sample: str, **options: Any) -> float:
    """max |Σ over channels| of the served attribution: what the page scales its colours by, worked out as
    the page does (drawAttribution): channel after channel added into float32, then the largest finite |v|.
    Each float32 + float32 is correctly rounded in both (the page rounds a float64 sum, which for float32
    operands gives the same float32), so the result is the page's bit for bit."""
    answer = api.post(f"/api/models/{model}/attributions?encoding=base64", json={"sample": sample, **options})
    assert answer.status_code == 200, answer.text
    attribution = decode(answer.json()["attribution"])  # [C, H, W] float32
    summed = torch.zeros_like(attribution[0])
    for channel in attribution:
        summed = summed + channel
    finite = summed[summed.isfinite()].abs()
    return float(finite.max()) if finite.numel() else 0.0


def same_map(shown: float, served: float) -> bool:
    """Exact: the page's and this test's requests are the same, so the server runs the same code on the same
    input (its noise seeded), and data-max is String() of the page's float32 maximum, which reads back exactly."""
    return math.isfinite(shown) and shown == served


def wait_for_map(page: Page, method: str) -> float:
    page.wait_for_selector(f"{MAP}[data-method={method}]")
    page.wait_for_selector(f"{PANEL}:not([data-busy])")
    return float(page.get_attribute(MAP, "data-max") or "nan")


def test_every_listed_method_draws_the_served_map(page: Page, live_server: str, api: httpx.Client) -> None:
    model = "mnist-lenet"
    sample = api.get(f"/api/models/{model}/samples").json()["samples"][4]["id"]
    methods = [m["name"] for m in api.get(f"/api/attributions/methods?model={model}").json()["methods"]]
    assert {"saliency", "grad_cam", "integrated_gradients", "occlusion", "smoothgrad"} <= set(methods)
    open_page(page, live_server, f"?model={model}&sample={sample}")
    for method in methods:
        page.select_option(f"{PANEL} [data-control=attribution-method]", method)  # it opens on Grad-CAM
        shown = wait_for_map(page, method)
        assert page.get_attribute(f"{PANEL} [data-summary]", "data-summary") == method
        assert same_map(shown, served_max(api, model, sample, method=method)), method
        assert varied(page, MAP) == [True], f"{method}: a blank map"
    shoot(page, "attribution-last-method", PANEL)


def test_grad_cam_options_target_opacity_and_side_by_side(page: Page, live_server: str, api: httpx.Client) -> None:
    model = "fashion-tinyvgg"
    sample = api.get(f"/api/models/{model}/samples").json()["samples"][2]["id"]
    open_page(page, live_server, f"?model={model}&sample={sample}")
    assert same_map(wait_for_map(page, "grad_cam"), served_max(api, model, sample, method="grad_cam"))
    assert page.locator(f"{PANEL} .attr-layer canvas").count() == 1, "no raw layer-resolution map"

    page.select_option(f"{PANEL} [data-option=layer]", "conv1_2")
    page.wait_for_function("() => document.querySelector('[data-view=attribution-caption]').textContent.includes('conv1_2')")
    wait_for_map(page, "grad_cam")
    assert same_map(float(page.get_attribute(MAP, "data-max") or "nan"),
                    served_max(api, model, sample, method="grad_cam", layer="conv1_2"))

    page.select_option(f"{PANEL} [data-control=attribution-target]", "8")
    page.wait_for_function("() => document.querySelector('[data-view=attribution-caption]').textContent.includes('Bag')")
    wait_for_map(page, "grad_cam")
    assert same_map(float(page.get_attribute(MAP, "data-max") or "nan"),
                    served_max(api, model, sample, method="grad_cam", layer="conv1_2", target=8))

    page.fill(f"{PANEL} [data-control=attribution-opacity]", "0.3")
    page.dispatch_event(f"{PANEL} [data-control=attribution-opacity]", "input")
    assert page.eval_on_selector(MAP, "c => c.style.opacity") == "0.3"
    page.check(f"{PANEL} [data-control=attribution-side]")
    base, overlay = page.locator(f"{PANEL} .attr-base").bounding_box(), page.locator(MAP).bounding_box()
    assert base and overlay and overlay["x"] >= base["x"] + base["width"], "side by side: the map should sit beside the image"
    shoot(page, "attribution-grad-cam-side", PANEL)


def test_a_bad_option_gets_the_servers_sentence_and_the_next_good_one_works(
        page: Page, live_server: str, api: httpx.Client, console: Console) -> None:
    console.allow(r"Failed to load resource: the server responded with a status of 422")
    open_page(page, live_server, "?model=mnist-lenet")
    wait_for_map(page, "grad_cam")
    page.select_option(f"{PANEL} [data-control=attribution-method]", "occlusion")
    wait_for_map(page, "occlusion")
    page.fill(f"{PANEL} [data-option=window]", "40")
    page.dispatch_event(f"{PANEL} [data-option=window]", "change")
    status = page.wait_for_selector("[data-view=status].error")
    assert status is not None and "window" in (status.text_content() or "")
    page.fill(f"{PANEL} [data-option=window]", "6")
    page.dispatch_event(f"{PANEL} [data-option=window]", "change")
    wait_for_map(page, "occlusion")
    assert varied(page, MAP) == [True]
