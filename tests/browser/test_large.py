"""The ResNet-18 example (examples/resnet18.toml, 69 layers, 224×224) in Chromium: served from a
models file, summarised in the overview with its blocks folded, stepped through layer by layer with
each full layer fetched on demand, found by name, and explained in Backward mode."""

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from convscope.codec import decode
from tests.browser.test_conv import conv_slack
from tests.browser.ui import open_page, query, shoot, varied

MODEL = "resnet18"
SAMPLE = "shapes"
DETAIL = "[data-view=detail]"
LESSON = f"{DETAIL} .lesson"
FIRST_CHANNELS = 64  # the detail view shows this many channels of a wider layer until asked for all
STEP_MS = 20_000     # one layer fetched and drawn, on a busy 2-core machine


@pytest.fixture
def live_server(resnet_server: str) -> str:
    """Here the page and the API are the ResNet example's server (tests/browser/conftest.py)."""
    return resnet_server


@pytest.fixture
def api(resnet_api: httpx.Client) -> httpx.Client:
    return resnet_api


@pytest.fixture(scope="module")
def network(resnet_api: httpx.Client) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = resnet_api.get(f"/api/models/{MODEL}").json()["layers"]
    return layers


def served(api: httpx.Client, *layers: str) -> dict[str, Any]:
    answer = api.post(f"/api/models/{MODEL}/forward?encoding=base64", json={"sample": SAMPLE, "layers": list(layers)})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def block(layer: dict[str, Any]) -> str:
    """The unit a layer folds into: the outermost module of its scope that is not a container
    (layer2.0, a BasicBlock, holds its downsample Sequential)."""
    return str(next(s["module"] for s in layer["scope"] if s["type"] != "Sequential"))


def names(network: list[dict[str, Any]]) -> list[str]:
    return [layer["name"] for layer in network]


def links(page: Page) -> list[list[str]]:
    """The overview's arcs, as [from, to] layer names in the order drawn."""
    drawn: list[list[str]] = page.eval_on_selector_all(
        "[data-view=overview] .overview-links path[data-from]", "paths => paths.map(p => [p.dataset.from, p.dataset.to])")
    return drawn


def shown_count(page: Page) -> tuple[int, int]:
    """The overview's own count, "15 of 69 layers shown", against the columns actually visible."""
    text = page.text_content("[data-view=shown-count]") or ""
    said = int(text.split(" of ")[0].split()[-1])
    visible = page.locator("[data-view=overview] > figure[data-layer]:not([hidden]):not([data-layer=input])").count()
    return said, visible


def test_resnet_example_opens_folded_and_steps_through_every_layer(
        page: Page, live_server: str, api: httpx.Client, network: list[dict[str, Any]]) -> None:
    assert len(network) == 69
    open_page(page, live_server, f"?model={MODEL}&sample={SAMPLE}")
    answer = served(api, network[-1]["name"])
    assert page.get_attribute(".verdict", "data-prediction") == answer["prediction"]["label"]

    # A thousand classes: the ten most probable, highest first, and all of them on request.
    probabilities = answer["prediction"]["probabilities"]
    top = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])[:10]
    classes = api.get(f"/api/models/{MODEL}").json()["classes"]
    assert page.eval_on_selector_all(".bars li .name", "names => names.map(n => n.textContent)") == [classes[i] for i in top]
    page.click("[data-action=all-classes]")
    assert page.locator(".bars li").count() == 1000
    page.click("[data-action=all-classes]")
    assert page.locator(".bars li").count() == 10

    # Blocks fold: each BasicBlock shows as one column, its output, until expanded.
    said, visible = shown_count(page)
    blocks = {block(layer) for layer in network if layer["scope"]}
    unscoped = sum(1 for layer in network if not layer["scope"])
    assert said == visible == unscoped + len(blocks)
    assert all(varied(page, "[data-view=overview] figure[data-layer]:not([hidden]) canvas")), "a blank column"
    shoot(page, "large-resnet18-overview", "[data-view=overview]")

    # → through all 69 layers: each layer's full output is fetched by run id and drawn.
    for i, layer in enumerate(network):
        if i:
            page.keyboard.press("ArrowRight")
        name = layer["name"]
        page.wait_for_selector(f"{DETAIL}[data-layer='{name}'] .channels canvas", timeout=STEP_MS)
        assert page.text_content("[data-view=position]") == f"{i + 1} / {len(network)}: {name} ({layer['type']})"
        assert query(page)["layer"] == name
        shape = layer["output_shape"]
        channels = shape[0] if len(shape) == 3 else 1
        shown = varied(page, f"{DETAIL} .channels canvas")
        assert len(shown) == min(channels, FIRST_CHANNELS), name
        if len(shape) == 3 and shape[1] * shape[2] == 1:  # one value per channel: the channels differ instead
            colours = page.eval_on_selector_all(f"{DETAIL} .channels canvas",
                                                "cs => cs.map(c => c.getContext('2d').getImageData(0, 0, 1, 1).data.join())")
            assert len(set(colours)) > 1, f"{name}: every channel the same colour"
        else:
            assert any(shown), f"{name}: every channel blank"
        if channels > FIRST_CHANNELS:
            assert page.text_content(f"{DETAIL} [data-action=all-channels]") == f"Show all {channels} channels"
        if name in ("conv1", "layer4.1.conv2", "fc"):
            shoot(page, f"large-resnet18-{name}", DETAIL)

    # The widest layer shows all 512 channels when asked.
    page.click("[data-view=overview] figure[data-layer='avgpool']")
    page.wait_for_selector(f"{DETAIL}[data-layer='avgpool'] .channels canvas", timeout=STEP_MS)
    page.click(f"{DETAIL} [data-action=all-channels]")
    assert page.locator(f"{DETAIL} .channels canvas").count() == 512


def test_a_clicked_value_of_a_deep_convolution_is_its_sum_of_products_plus_bias_and_the_served_one(
        page: Page, live_server: str, api: httpx.Client, network: list[dict[str, Any]]) -> None:
    layer = "layer3.1.conv1"
    open_page(page, live_server, f"?model={MODEL}&sample={SAMPLE}&layer={layer}")
    page.wait_for_selector(f"{DETAIL}[data-layer='{layer}'] .lesson canvas[data-output-map]", timeout=STEP_MS)
    output = decode(served(api, layer)["layers"][layer])
    c, y, x = (int(v) for v in (page.get_attribute(LESSON, "data-position") or "").split(","))
    mine = float(page.get_attribute(f"{LESSON} [data-neuron-sum]", "data-value") or "nan")
    theirs = float(page.get_attribute(f"{LESSON} [data-neuron-served]", "data-value") or "nan")
    assert theirs == output[c, y, x].item()  # exact: the served float32, carried exactly by base64
    # 256 input channels × 3 × 3 products (no bias), summed in float64 by the page against float32 PyTorch.
    slack = conv_slack(api, MODEL, SAMPLE, next(la for la in network if la["name"] == layer))[c, y, x].item()
    assert abs(mine - theirs) <= slack, f"page computes {mine}, serves {theirs}: more than {slack:.3g} apart"
    shoot(page, "large-resnet18-neuron", LESSON)


def test_find_and_unfold_blocks(page: Page, live_server: str, network: list[dict[str, Any]]) -> None:
    open_page(page, live_server, f"?model={MODEL}&sample={SAMPLE}")
    folded, _ = shown_count(page)

    page.fill("[data-control=find]", "downsample")
    matches = [layer["name"] for layer in network if "downsample" in layer["name"]]
    assert len(matches) == 6  # a 1×1 conv and a batch norm in each of three stages
    said, visible = shown_count(page)
    assert said == visible == len(matches)
    page.fill("[data-control=find]", "batch_norm2d")  # by type too
    assert shown_count(page)[0] == sum(1 for layer in network if layer["type"] == "batch_norm2d")
    page.fill("[data-control=find]", "")
    assert shown_count(page)[0] == folded

    # Expanding one block shows its layers; unticking "fold blocks" shows all 69.
    size = sum(1 for layer in network if layer["scope"] and block(layer) == "layer2.0")
    assert size == 9  # two convs, two batch norms, two ReLUs, the add, and the downsample's conv and batch norm
    assert links(page) == [], "folded, the network is a chain of blocks"
    page.click("[data-view=overview] [data-action=fold-group][data-group='layer2.0']")
    assert shown_count(page) == (folded + size - 1, folded + size - 1)
    # The open block's two branches: the downsample reads the previous block's output, and the
    # addition reads the main branch's last batch norm across the downsample's columns.
    add = next(layer for layer in network if layer["type"] == "add" and block(layer) == "layer2.0")
    assert add["inputs"] == ["layer2.0.bn2", "layer2.0.downsample.1"]
    assert links(page) == [["layer1_1_relu_1", "layer2.0.downsample.0"], ["layer2.0.bn2", add["name"]]]
    page.uncheck("[data-view=overview-tools] [data-control=fold]")
    assert shown_count(page) == (69, 69)
    # Unfolded, an arc for every input that is not the column just before: all the shortcuts.
    order = ["input", *names(network)]
    expected = [[i, layer["name"]] for j, layer in enumerate(network, 1) for i in layer["inputs"]
                if i in order and order.index(i) != j - 1]
    assert links(page) == expected
    assert sum(1 for layer in network if layer["type"] == "add") == 8 and len(expected) == 8 + 3
    shoot(page, "large-resnet18-unfolded", "[data-view=overview]")


def test_backward_on_the_resnet_shows_the_served_gradient_of_the_current_layer(
        page: Page, live_server: str, api: httpx.Client, network: list[dict[str, Any]]) -> None:
    layer = "layer2.0.conv1"
    open_page(page, live_server, f"?model={MODEL}&sample={SAMPLE}&layer={layer}")
    page.click("[data-view=mode] [data-mode=backward]")
    page.wait_for_selector(f"{DETAIL}[data-layer='{layer}'][data-mode=backward] .channels canvas", timeout=STEP_MS)
    answer = api.post(f"/api/models/{MODEL}/backward?encoding=base64", json={"sample": SAMPLE, "layers": [layer]}).json()
    gradient = decode(answer["layers"][layer]["activation_gradient"])
    page.wait_for_selector("[data-view=loss][data-loss]:not([data-loss=''])")
    # Exact: the page shows String() of the loss the same server computed by the same code for the same image.
    assert float(page.get_attribute("[data-view=loss]", "data-loss") or "nan") == answer["loss"]
    # Exact `!=`: a map drawn on a scale over its values shows more than one colour iff its values differ.
    expected = [bool(m.min() != m.max()) for m in gradient.reshape(gradient.shape[0], -1)][:FIRST_CHANNELS]
    assert varied(page, f"{DETAIL} .channels canvas") == expected
    # The overview shows every shown column's gradient in brief (thumbnails), not blank columns.
    overview = "[data-view=overview] figure[data-layer]:not([hidden]) canvas"
    assert all(varied(page, overview)), "a blank column in Backward"
    page.keyboard.press("ArrowLeft")  # the previous layer's gradient is fetched as the cursor moves
    previous = network[[la["name"] for la in network].index(layer) - 1]["name"]
    page.wait_for_selector(f"{DETAIL}[data-layer='{previous}'][data-mode=backward] .channels canvas", timeout=STEP_MS)
    assert any(varied(page, f"{DETAIL} .channels canvas"))
    assert all(varied(page, overview)), "a step lost the overview's gradients"
    shoot(page, "large-resnet18-backward")
