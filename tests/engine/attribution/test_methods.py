"""Every attribution method equals Captum called directly on a fresh copy of the model (or plain
autograd), for both built-in models, two residual nets and a model that ends in a softmax layer;
with the default options and target, and with chosen ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from convscope.config import Settings
from convscope.engine.attribution.explain import explain
from convscope.engine.attribution.registry import METHODS
from convscope.engine.graph import Graph, build_graph
from convscope.imaging import load_image
from convscope.models.lenet import LeNet
from convscope.registry import load_card
from tests import ROOT
from tests.engine.attribution.reference import arguments, fresh, reference, same
from tests.nets import make

SUBJECTS = ["mnist-lenet", "fashion-tinyvgg", "resnet", "residual", "softmax-lenet"]
# The last conv layer's activation where a module called once applies it, else the last conv layer:
# MiniResNet's last conv is a shortcut (1×1 conv, batch norm, then an add); ResidualNet's ReLUs are functional.
DEFAULT_LAYER = {"mnist-lenet": "act2", "fashion-tinyvgg": "act2_2", "resnet": "layer1.1.downsample.0",
                 "residual": "conv2", "softmax-lenet": "act2"}


class SoftmaxLeNet(LeNet):
    """LeNet returning probabilities: attributions must still be those of its logits."""

    def __init__(self) -> None:
        super().__init__()
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.softmax(super().forward(x))
        return out


@dataclass
class Subject:
    graph: Graph
    fresh: nn.Module  # an independent copy that returns logits: the reference runs on it
    x: Tensor  # [1, C, H, W]
    mean: list[float]
    std: list[float]

    @property
    def predicted(self) -> int:
        with torch.no_grad():
            return int(self.fresh(self.x).argmax())

    @property
    def convs(self) -> list[str]:
        return [layer.name for layer in self.graph.layers if layer.type == "conv2d"]

    def module(self, layer: str) -> str:
        path = self.graph.layer(layer).module
        assert path is not None
        return path


def built_in(model_id: str) -> Subject:
    loaded = load_card(ROOT / "models" / f"{model_id}.json")
    sample = next(iter(loaded.samples.values()))
    x = load_image(sample.path.read_bytes(), loaded.spec, Settings())
    return Subject(loaded.graph, fresh(model_id), x, list(loaded.spec.mean), list(loaded.spec.std))


def small_net(name: str) -> Subject:
    model, shape = make(name)
    torch.manual_seed(1)
    x = torch.randn(1, *shape)
    return Subject(build_graph(model, shape), make(name)[0], x, [0.5] * shape[0], [0.25] * shape[0])


def softmax_lenet() -> Subject:
    weights = load_file(ROOT / "models" / "mnist-lenet.safetensors")
    ending = SoftmaxLeNet()
    ending.load_state_dict(weights)
    plain = LeNet()
    plain.load_state_dict(weights)
    subject = built_in("mnist-lenet")
    return Subject(build_graph(ending.eval(), [1, 28, 28]), plain.eval(), subject.x, subject.mean, subject.std)


@pytest.fixture(scope="module")
def subjects() -> dict[str, Subject]:
    return {"mnist-lenet": built_in("mnist-lenet"), "fashion-tinyvgg": built_in("fashion-tinyvgg"),
            "resnet": small_net("resnet"), "residual": small_net("residual"), "softmax-lenet": softmax_lenet()}


def chosen_options(method: str, s: Subject) -> dict[str, Any]:
    """Non-default options for `method`."""
    if method == "integrated_gradients":
        return {"steps": 16, "baseline": "black"}
    if method in ("grad_cam", "guided_grad_cam"):
        return {"layer": s.convs[0]}
    if method == "smoothgrad":
        return {"samples": 8, "stdevs": 0.2, "seed": 7}
    if method == "occlusion":
        return {"window": [3, 5], "stride": [2, 3], "baseline": "black"}
    return {}


def default_window(s: Subject) -> list[int]:
    """Occlusion's documented default: a seventh of the input's shorter side, at least 1."""
    return [max(1, round(min(s.x.shape[2:]) / 7))] * 2


@pytest.mark.parametrize("variant", ["defaults", "chosen"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("name", SUBJECTS)
def test_method_equals_captum_on_a_fresh_copy_of_the_model(subjects: dict[str, Subject], name: str, method: str,
                                                           variant: str) -> None:
    s = subjects[name]
    with torch.no_grad():
        logits = s.fresh(s.x)[0]
    if variant == "defaults":
        target, options = None, {}
    else:
        target = (s.predicted + 3) % logits.shape[0]
        options = chosen_options(method, s)
    found = explain(s.graph, s.x, method, target, options, s.mean, s.std)
    expected = s.predicted if target is None else target
    what = f"{name} {method} {variant}"
    assert found.method == method and found.target == expected, what
    # The same forward on the same input as the reference's: bit for bit (see reference.same).
    assert found.score == float(logits[expected]), what
    same(found.logits, logits, f"{what}: logits")
    assert all(found.options[key] == value for key, value in options.items()), f"{what}: {found.options}"
    if method == "occlusion" and variant == "defaults":
        assert found.options["window"] == default_window(s), what
    kwargs = arguments(method, found.options, s.x, s.mean, s.std, s.graph, s.module)
    plain, cam = reference(method, s.fresh, s.x, expected, **kwargs)
    same(found.attribution, plain[0], what)
    if cam is None:
        assert found.layer is None and found.layer_attribution is None, what
    else:
        assert found.layer == options.get("layer", DEFAULT_LAYER[name]), what
        assert found.layer_attribution is not None
        same(found.layer_attribution, cam[0], f"{what}: layer_attribution")
    assert found.attribution.abs().sum() > 0, f"{what}: an all-zero map checks nothing"


def test_the_answer_reports_the_options_it_used(subjects: dict[str, Subject]) -> None:
    s = subjects["fashion-tinyvgg"]
    used = {name: explain(s.graph, s.x, name, None, {}, s.mean, s.std).options for name in METHODS}
    assert used["integrated_gradients"] == {"steps": 50, "baseline": "zero"}
    assert used["grad_cam"] == used["guided_grad_cam"] == {"layer": "act2_2"}
    assert used["smoothgrad"] == {"samples": 20, "stdevs": 0.5, "seed": 0}
    assert used["occlusion"] == {"window": [4, 4], "stride": [2, 2], "baseline": "zero"}
    assert used["saliency"] == used["guided_backprop"] == {}


def test_smoothgrad_is_the_same_for_the_same_seed_and_differs_for_another(subjects: dict[str, Subject]) -> None:
    s = subjects["mnist-lenet"]
    first, again, other = (explain(s.graph, s.x, "smoothgrad", 3, {"seed": seed}, s.mean, s.std).attribution
                           for seed in (5, 5, 6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_the_global_random_generator_is_left_alone(subjects: dict[str, Subject]) -> None:
    s = subjects["mnist-lenet"]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    explain(s.graph, s.x, "smoothgrad", None, {}, s.mean, s.std)
    assert torch.equal(torch.rand(3), expected)
