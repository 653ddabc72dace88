"""Method names and options: bad ones are refused with a sentence that names the option, and the
description the page builds its controls from is complete."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from convscope.engine.attribution import base, occlusion
from convscope.engine.attribution.explain import explain
from convscope.engine.attribution.registry import METHODS, configure, describe, method
from convscope.engine.graph import build_graph
from convscope.errors import InvalidRequest
from convscope.registry import LoadedModel, load_card
from tests import ROOT
from tests.nets import make


@pytest.fixture(scope="module")
def lenet() -> LoadedModel:
    return load_card(ROOT / "models" / "mnist-lenet.json")


def refused(words: str, work: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(InvalidRequest) as error:
        work(*args, **kwargs)
    assert words in error.value.detail, error.value.detail
    assert error.value.detail.endswith("."), error.value.detail


def test_the_issue_s_methods_are_all_there() -> None:
    assert {"saliency", "input_x_gradient", "integrated_gradients", "grad_cam", "guided_backprop",
            "guided_grad_cam", "smoothgrad", "occlusion"} <= set(METHODS)
    for name, cls in METHODS.items():
        assert cls.name == name and cls.summary.endswith(".") and 40 < len(cls.summary) < 400, name
        assert cls.summary.count(". ") <= 2, f"{name}: one or two sentences"
    assert [n for n, c in METHODS.items() if c.needs_layer()] == ["grad_cam", "guided_grad_cam"]


def test_an_unknown_method_is_refused_with_the_list_of_methods() -> None:
    refused("'method': there is no attribution method called 'gradcam'. The methods are: saliency, "
            "input_x_gradient, integrated_gradients, grad_cam,", method, "gradcam")
    refused("called None", method, None)


@pytest.mark.parametrize(("name", "given", "words"), [
    ("saliency", {"steps": 10}, "'steps' is not an option of saliency; it takes no options."),
    ("grad_cam", {"window": 3}, "'window' is not an option of grad_cam; its options are: layer."),
    ("occlusion", {"colour": 3}, "'colour' is not an option of occlusion (nor of any method)"),
    ("integrated_gradients", {"steps": 0}, "'steps' must be a whole number from 1 to 256; got 0."),
    ("integrated_gradients", {"steps": 257}, "from 1 to 256; got 257"),
    ("integrated_gradients", {"steps": 2.5}, "'steps' must be a whole number"),
    ("integrated_gradients", {"steps": True}, "'steps' must be a whole number"),
    ("integrated_gradients", {"baseline": "white"}, "'baseline' must be one of: zero, black; got 'white'."),
    ("smoothgrad", {"samples": 65}, "'samples' must be a whole number from 1 to 64; got 65."),
    ("smoothgrad", {"stdevs": float("nan")}, "'stdevs' must be a finite number from 0 to 10; got nan."),
    ("smoothgrad", {"stdevs": -0.1}, "'stdevs' must be a finite number from 0 to 10"),
    ("smoothgrad", {"seed": -1}, "'seed' must be a whole number from 0 to 4294967295"),
    ("occlusion", {"window": [0, 3]}, "'window' must be a whole number or [height, width] of whole numbers, each of "
                                      "at least 1; got [0, 3]."),
    ("occlusion", {"stride": [1, 2, 3]}, "'stride' must be a whole number or [height, width]"),
    ("occlusion", {"window": "4"}, "'window' must be a whole number"),
])
def test_bad_options_are_refused_naming_the_option(name: str, given: dict[str, Any], words: str) -> None:
    refused(words, configure, METHODS[name], given)


def test_options_are_converted_and_defaults_filled_in() -> None:
    assert configure(METHODS["occlusion"], {"window": 5, "stride": [2, 3], "steps": None}) == base.MethodOptions(
        window=(5, 5), stride=(2, 3))
    assert configure(METHODS["smoothgrad"], {"stdevs": 1}).stdevs == 1.0
    assert configure(METHODS["saliency"], {}) == base.MethodOptions()


@pytest.mark.parametrize(("options", "words"), [
    ({"layer": "fc1"}, "'layer': 'fc1' is a linear layer with output [120], not feature maps [C, h, w]; choose a "
                       "conv layer or another of: conv1, act1, pool1, conv2, act2, pool2."),
    ({"layer": "conv9"}, "'layer': this model has no layer called 'conv9'."),
])
def test_a_layer_without_feature_maps_or_unknown_is_refused(lenet: LoadedModel, options: dict[str, Any],
                                                            words: str) -> None:
    for name in ("grad_cam", "guided_grad_cam"):
        refused(words, explain, lenet.graph, torch.zeros(1, 1, 28, 28), name, None, options)


def test_a_layer_whose_module_runs_twice_or_a_function_is_refused() -> None:
    model, shape = make("resnet")  # each block calls its nn.ReLU module twice, as torchvision's do
    graph = build_graph(model, shape)
    for name in ("layer1.0.relu", "layer1_0_relu_1"):
        refused(f"'layer': '{name}' runs module 'layer1.0.relu', which the model calls 2 times; choose a layer "
                "whose module runs once:", explain, graph, torch.zeros(1, *shape), "grad_cam", None, {"layer": name})
    refused("'layer': 'add' is a function call (add)", explain, graph, torch.zeros(1, *shape), "grad_cam", None,
            {"layer": "add"})
    model, shape = make("residual")
    graph = build_graph(model, shape)
    refused("'layer': 'relu' is a function call (relu), with no module for Captum to hook",
            explain, graph, torch.zeros(1, *shape), "grad_cam", None, {"layer": "relu"})


@pytest.mark.parametrize(("options", "words"), [
    ({"window": [29, 4]}, "'window' [29, 4] is larger than the 28×28 input."),
    ({"window": 4, "stride": 5}, "'stride' [5, 5] is larger than the window [4, 4]"),
    ({"window": 1, "stride": [1, 1], "baseline": "black"}, None),  # 784 occlusions: allowed
    ({"window": [1, 2], "stride": 1}, "'stride': window [1, 2] with stride [1, 1] makes 756 occlusions"),
])
def test_occlusion_windows_must_fit_the_input_and_stay_under_the_cap(
        lenet: LoadedModel, options: dict[str, Any], words: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(1, 1, 28, 28)
    if words is None:
        assert explain(lenet.graph, x, "occlusion", 0, options).options["window"] == [1, 1]
    else:
        # 28×28 allows at most 784 positions, under the cap of 1024: a smaller cap shows the refusal.
        monkeypatch.setattr(occlusion, "MAX_OCCLUSIONS", 700)
        refused(words, explain, lenet.graph, x, "occlusion", 0, options)


def test_bad_targets_and_inputs_are_refused(lenet: LoadedModel) -> None:
    x = torch.zeros(1, 1, 28, 28)
    refused("'target' must be a class index from 0 to 9; got 10.", explain, lenet.graph, x, "saliency", 10)
    refused("The target must be a class index (an integer)", explain, lenet.graph, x, "saliency", "3")
    refused("NaN or infinite", explain, lenet.graph, torch.full((1, 1, 28, 28), float("nan")), "saliency")
    refused("The input has shape [1, 1, 14, 14]", explain, lenet.graph, torch.zeros(1, 1, 14, 14), "saliency")


def test_describe_lists_every_option_with_type_default_and_range(lenet: LoadedModel) -> None:
    generic = {m["name"]: m for m in describe()}
    assert list(generic) == list(METHODS)
    steps = {o["name"]: o for o in generic["integrated_gradients"]["options"]}["steps"]
    assert steps == {"name": "steps", "type": "integer", "default": 50, "minimum": 1, "maximum": 256, "enum": None,
                     "description": steps["description"]}
    assert {o["name"]: o["enum"] for o in generic["occlusion"]["options"]}["baseline"] == ["zero", "black"]
    assert {o["name"]: o["default"] for o in generic["occlusion"]["options"]} == {
        "window": None, "stride": None, "baseline": "zero"}
    for_lenet = {m["name"]: {o["name"]: o for o in m["options"]} for m in describe(lenet.graph)}
    layer = for_lenet["grad_cam"]["layer"]
    assert layer["default"] == "act2" and layer["enum"] == ["conv1", "act1", "pool1", "conv2", "act2", "pool2"]
    assert for_lenet["occlusion"]["window"]["default"] == [4, 4]
    assert for_lenet["occlusion"]["stride"]["default"] == [2, 2]
