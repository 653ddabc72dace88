"""A value picked in a lesson is the store's (store.picks), not the lesson's: it is still picked and
drawn after stepping to the next layer and back, a colour-scale change and a switch to Backward and
back; another image starts the lesson from its default pick again."""

import httpx
import torch
from playwright.sync_api import Page

from tests.browser.test_conv import LESSON, click_cell, position, served_map
from tests.browser.ui import mark_result, new_verdict, open_page, query

DETAIL = "[data-view=detail]"
OUTPUT_MAP = f"{LESSON} canvas[data-output-map]"


def default_pick(served: torch.Tensor) -> tuple[int, int, int]:
    """Where the conv and pool lessons open: channel 0's largest value (its first, in reading order)."""
    y, x = divmod(int(served[0].flatten().argmax()), served.shape[2])
    return 0, y, x


def open_layer(page: Page, layer: str) -> None:
    page.wait_for_selector(f"{DETAIL}[data-layer='{layer}'][data-mode=forward] .lesson canvas[data-output-map]")


def step(page: Page, key: str, layer: str) -> None:
    """Press ← or → on the page (not on a focused map, whose arrows move the pick) and wait for `layer`."""
    page.evaluate("document.activeElement?.blur()")
    page.keyboard.press(key)
    page.wait_for_selector(f"{DETAIL}[data-layer='{layer}']")


def assert_picked(page: Page, served: torch.Tensor, pick: tuple[int, int, int]) -> None:
    """The lesson explains `pick`: its position, its controls, its output map's channel and outlined
    cell, and the value it shows as served is the API's at that place."""
    c, y, x = pick
    assert position(page) == pick
    assert page.input_value(f"{LESSON} [data-control=output-channel]") == str(c)
    assert [page.input_value(f"{LESSON} [data-control={axis}]") for axis in ("row", "col")] == [str(y), str(x)]
    canvas = page.locator(OUTPUT_MAP)
    assert (canvas.get_attribute("data-channel"), canvas.get_attribute("data-selected")) == (str(c), f"{y},{x}")
    hook = "neuron-served" if page.locator(f"{LESSON} [data-neuron-served]").count() else "pool-served"
    assert float(page.get_attribute(f"{LESSON} [data-{hook}]", "data-value") or "nan") == served[c, y, x].item()


def other_sample(api: httpx.Client, model: str, than: str) -> str:
    return str(next(s["id"] for s in api.get(f"/api/models/{model}/samples").json()["samples"] if s["id"] != than))


def choose_sample(page: Page, sample: str) -> None:
    mark_result(page)
    page.click(f"[data-view=samples] [data-sample='{sample}']")
    new_verdict(page)


def test_a_conv_pick_survives_stepping_away_and_back_the_colour_scale_and_backward(
        page: Page, live_server: str, api: httpx.Client) -> None:
    model, layer, after = "mnist-lenet", "conv2", "act2"
    open_page(page, live_server, f"?model={model}&layer={layer}")
    open_layer(page, layer)
    sample = query(page)["sample"]
    served = served_map(api, model, sample, layer)
    channels, rows, _ = served.shape
    default = default_pick(served)
    assert position(page) == default

    pick = (channels - 2, rows - 2, 1)
    assert pick != default
    page.select_option(f"{LESSON} [data-control=output-channel]", str(pick[0]))
    click_cell(page.locator(OUTPUT_MAP), pick[1], pick[2])
    inputs = page.eval_on_selector_all(f"{LESSON} [data-input-channel]", "bs => bs.map(b => b.dataset.inputChannel)")
    pressed = page.get_attribute(f"{LESSON} [data-input-channel][aria-pressed=true]", "data-input-channel")
    chosen = next(i for i in inputs if i != pressed)  # an input channel other than the one the lesson chose
    page.click(f"{LESSON} [data-input-channel='{chosen}']")
    assert_picked(page, served, pick)

    def assert_kept() -> None:
        assert_picked(page, served, pick)
        assert page.get_attribute(f"{LESSON} [data-input-channel][aria-pressed=true]", "data-input-channel") == chosen
        assert page.get_attribute(f"{LESSON} [data-products]", "data-products") == chosen

    step(page, "ArrowRight", after)
    step(page, "ArrowLeft", layer)
    open_layer(page, layer)
    assert_kept()

    page.eval_on_selector(OUTPUT_MAP, "canvas => canvas.dataset.before = ''")
    page.select_option(f"{DETAIL} [data-control=scale]", "global")
    page.wait_for_selector(f"{OUTPUT_MAP}:not([data-before])")  # the lesson redrawn in the new colours
    assert_kept()

    page.click("[data-mode=backward]")
    page.wait_for_selector(f"{DETAIL}[data-layer='{layer}'][data-mode=backward]")
    page.click("[data-mode=forward]")
    open_layer(page, layer)
    assert_kept()

    other = other_sample(api, model, sample)
    choose_sample(page, other)
    served = served_map(api, model, other, layer)
    page.wait_for_function("([selector, at]) => document.querySelector(selector)?.dataset.position === at",
                           arg=[LESSON, ",".join(map(str, default_pick(served)))])
    assert_picked(page, served, default_pick(served))


def test_a_pool_pick_and_its_shift_survive_stepping_away_and_back(page: Page, live_server: str, api: httpx.Client) -> None:
    model, layer, after = "mnist-lenet", "pool1", "conv2"
    open_page(page, live_server, f"?model={model}&layer={layer}")
    open_layer(page, layer)
    sample = query(page)["sample"]
    served = served_map(api, model, sample, layer)
    channels, _, cols = served.shape
    default = default_pick(served)
    assert position(page) == default

    pick = (channels - 1, 2, cols - 3)
    assert pick != default
    page.select_option(f"{LESSON} [data-control=output-channel]", str(pick[0]))
    click_cell(page.locator(OUTPUT_MAP), pick[1], pick[2])
    page.select_option(f"{LESSON} [data-control=shift]", "3")
    page.select_option(f"{LESSON} [data-control=shift-direction]", "diagonal")
    assert_picked(page, served, pick)

    step(page, "ArrowRight", after)
    step(page, "ArrowLeft", layer)
    open_layer(page, layer)
    assert_picked(page, served, pick)
    assert page.locator(f"{LESSON} .numgrid .marked").count() == 1  # the window's max, outlined
    assert page.input_value(f"{LESSON} [data-control=shift]") == "3"
    assert page.input_value(f"{LESSON} [data-control=shift-direction]") == "diagonal"

    other = other_sample(api, model, sample)
    choose_sample(page, other)
    served = served_map(api, model, other, layer)
    page.wait_for_function("([selector, at]) => document.querySelector(selector)?.dataset.position === at",
                           arg=[LESSON, ",".join(map(str, default_pick(served)))])
    assert_picked(page, served, default_pick(served))
    assert page.input_value(f"{LESSON} [data-control=shift]") == "1"
    assert page.input_value(f"{LESSON} [data-control=shift-direction]") == "right"
