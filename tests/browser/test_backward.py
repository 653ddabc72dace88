"""Backward mode in the page: the loss and every layer's gradient as the API serves them, stepped
through with ← from the output back to the input, weight gradients beside the kernels, and one
optimizer step whose losses are the server's."""

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from convscope.codec import decode
from tests.browser.ui import assert_shown, open_page, query, shoot, varied

DETAIL = "[data-view=detail]"
# Exact `===`: the page shows String() of the loss the same server computes by the same code for the same
# request, and String() and JSON carry a float64 (here a float32's value) exactly.
SHOWS_LOSS = "loss => Number(document.querySelector('[data-view=loss]').dataset.loss) === loss"


def served_backward(api: httpx.Client, model: str, sample: str, **options: Any) -> dict[str, Any]:
    answer = api.post(f"/api/models/{model}/backward?encoding=base64", json={"sample": sample, **options})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def shown_loss(page: Page) -> float:
    page.wait_for_selector("[data-view=loss][data-loss]:not([data-loss=''])")
    return float(page.get_attribute("[data-view=loss]", "data-loss") or "nan")


def read_value(page: Page, channel: int, y: int, x: int) -> str:
    """Point at (y, x) of a detail channel canvas and read the value the page says is there, as shown."""
    canvas = page.locator(f"{DETAIL} .channels canvas[data-channel='{channel}']")
    box = canvas.bounding_box()
    assert box is not None
    rows, cols = canvas.evaluate("c => [c.height, c.width]")
    canvas.hover(position={"x": (x + 0.5) * box["width"] / cols, "y": (y + 0.5) * box["height"] / rows})
    text = page.text_content(f"{DETAIL} .readout") or ""
    return text.rsplit(":", 1)[1]


@pytest.mark.parametrize("model", ["mnist-lenet", "fashion-tinyvgg"])
def test_backward_steps_from_the_output_to_the_input_showing_the_served_gradients(
        page: Page, live_server: str, api: httpx.Client, layers: dict[str, list[dict[str, Any]]], model: str) -> None:
    network = layers[model]
    sample = api.get(f"/api/models/{model}/samples").json()["samples"][3]["id"]
    open_page(page, live_server, f"?model={model}&sample={sample}&layer={network[-1]['name']}")
    page.click("[data-view=mode] [data-mode=backward]")
    page.wait_for_selector(f"{DETAIL}[data-mode=backward] .channels canvas")
    assert query(page)["mode"] == "backward"

    served = served_backward(api, model, sample)
    # Exact: the page shows String() of the loss the same server computed by the same code for the same image.
    assert shown_loss(page) == served["loss"]
    for i, layer in reversed(list(enumerate(network))):
        name = layer["name"]
        if i < len(network) - 1:
            page.keyboard.press("ArrowLeft")
        page.wait_for_selector(f"{DETAIL}[data-layer='{name}'][data-mode=backward] .channels canvas")
        gradient = decode(served["layers"][name]["activation_gradient"])
        maps = gradient.reshape(gradient.shape[0], -1) if gradient.dim() == 3 else gradient.reshape(1, -1)
        shown = varied(page, f"{DETAIL} .channels canvas")
        # Exact `!=`: does a served map hold two values? Each is drawn on its own signed scale to its largest
        # |value|, so two values take two colours unless they are within ~1/255 of that of each other.
        assert shown == [bool(m.min() != m.max()) for m in maps], f"{name}: blank gradient maps where the served ones vary"
        # The value under the pointer is the served gradient (the largest one, so it is not a zero).
        flat = gradient.abs().flatten().argmax().item()
        if gradient.dim() == 3:
            c, h, w = gradient.shape
            where = (flat // (h * w), flat // w % h, flat % w)
        else:
            where = (0, flat, 0)
        # The readout is toPrecision(5) of the served float32: half a unit in its 5th significant digit.
        assert_shown(read_value(page, *where), gradient[where if gradient.dim() == 3 else where[1]].item(), digits=5)
        if layer["parameters"]:
            page.wait_for_selector(f"{DETAIL} .grads figure[data-param=weight_gradient]")
            assert any(varied(page, f"{DETAIL} .grads figure[data-param=weight_gradient] canvas")) or \
                page.locator(f"{DETAIL} .grads figure[data-param=weight_gradient] details").count() == 1
        page.wait_for_selector(f"{DETAIL} .lesson [data-rule='{layer['type']}']")
    assert page.is_disabled("[data-action=prev]")
    # Beside the gradients, the Grad-CAM overlay over the input: where the class's evidence lies.
    page.wait_for_selector("[data-view=attribution] canvas.attr-map[data-method=grad_cam]")
    assert varied(page, "[data-view=attribution] canvas.attr-map") == [True]
    shoot(page, f"backward-{model}-first-layer")


def test_another_target_and_loss_give_the_served_loss_and_one_step_lowers_it(
        page: Page, live_server: str, api: httpx.Client) -> None:
    model, layer = "mnist-lenet", "conv2"
    sample = api.get(f"/api/models/{model}/samples").json()["samples"][7]["id"]
    open_page(page, live_server, f"?model={model}&sample={sample}&layer={layer}&mode=backward")
    page.wait_for_selector(f"{DETAIL}[data-mode=backward][data-layer={layer}] .channels canvas")
    predicted = served_backward(api, model, sample)["target"]
    other = (predicted + 3) % 10
    page.select_option("[data-view=mode] [data-control=target]", str(other))
    page.wait_for_function("t => new URLSearchParams(location.search).get('target') === t", arg=str(other))
    served = served_backward(api, model, sample, target=other)
    page.wait_for_function(SHOWS_LOSS, arg=served["loss"])
    assert served["loss"] > 1, "a class the model does not see should cost a lot"

    # One step: SGD by default; the losses the page shows are the server's for the same step.
    page.select_option(f"{DETAIL} [data-control=optimizer]", "adam")
    page.wait_for_selector(f"{DETAIL} .step-result:not([data-busy]) [data-loss-after]")
    page.wait_for_function("() => document.querySelector('[data-view=detail] .step-result [data-loss-after]')")
    step = api.post(f"/api/models/{model}/step", json={"sample": sample, "target": other, "optimizer": "adam",
                                                       "layers": [layer]}).json()
    before = float(page.get_attribute(f"{DETAIL} [data-loss-before]", "data-loss-before") or "nan")
    after = float(page.get_attribute(f"{DETAIL} [data-loss-after]", "data-loss-after") or "nan")
    # Exact: the page's step is the same request (its first asks for the server's default rate), so the
    # same code on the same input; the losses are float32 values carried exactly by JSON and String().
    assert before == step["loss"]
    assert after == step["loss_after"]
    assert after < before
    assert page.locator(f"{DETAIL} .step-row[data-param=weight] figure").count() == 3
    shoot(page, "backward-step", DETAIL)

    page.select_option("[data-view=mode] [data-control=loss]", "mse")
    served = served_backward(api, model, sample, target=other, loss="mse")
    page.wait_for_function(SHOWS_LOSS, arg=served["loss"])
    assert query(page)["loss"] == "mse"

    page.click("[data-view=mode] [data-mode=forward]")
    page.wait_for_selector(f"{DETAIL}[data-mode=forward][data-layer={layer}]")
    assert "mode" not in query(page)
    assert page.is_hidden("[data-view=mode] .loss-bar")
