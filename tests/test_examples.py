"""The ResNet-18 example (examples/resnet18.toml) served through the API: its graph shows the residual
additions and downsample convolutions, and its feature maps and gradients equal plain PyTorch."""

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from torch import Tensor, nn

from convscope.config import Settings
from convscope.main import create_app
from examples.resnet18 import BasicBlock, resnet18
from tests import ROOT
from tests.api.rebuild import plain_loss, tensor

TOML = ROOT / "examples" / "resnet18.toml"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models_file=TOML, builtins=False))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def detail(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/models/resnet18")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def close(served: Tensor, plain: Tensor, what: str) -> None:
    """Bit for bit: the server runs the same modules and autograd kernels on the same float32 input, in this
    process at the same thread count, and base64 float32 carries every bit."""
    torch.testing.assert_close(served, plain.detach(), rtol=0, atol=0, msg=lambda m: f"{what}: {m}")


def test_example_is_listed_with_its_card(client: TestClient) -> None:
    (summary,) = client.get("/api/models").json()["models"]
    assert summary["id"] == "resnet18" and summary["name"] == "ResNet-18 (random weights)"
    assert summary["input"] == {"channels": 3, "height": 224, "width": 224, "mean": [0.485, 0.456, 0.406],
                                "std": [0.229, 0.224, 0.225]}
    assert summary["classes"] == [f"class {i}" for i in range(1000)]
    assert summary["parameter_count"] == 11_689_512  # torchvision's resnet18 has as many
    samples = client.get("/api/models/resnet18/samples").json()["samples"]
    assert [s["id"] for s in samples] == ["checker", "shapes", "stripes"]
    assert all(s["label"] is None and s["label_name"] is None for s in samples)


def test_graph_shows_residual_adds_downsample_convs_and_every_stage(detail: dict[str, Any]) -> None:
    layers = {layer["name"]: layer for layer in detail["layers"]}
    types = [layer["type"] for layer in detail["layers"]]
    assert len(types) == 69
    assert {t: types.count(t) for t in set(types)} == {
        "conv2d": 20, "batch_norm2d": 20, "relu": 17, "add": 8, "max_pool2d": 1, "adaptive_avg_pool2d": 1,
        "flatten": 1, "linear": 1}
    assert layers["conv1"]["attributes"]["kernel_size"] == [7, 7] and layers["conv1"]["attributes"]["stride"] == [2, 2]
    assert layers["conv1"]["output_shape"] == [64, 112, 112] and layers["maxpool"]["output_shape"] == [64, 56, 56]
    adds = [layer for layer in detail["layers"] if layer["type"] == "add"]
    block_inputs = ["maxpool", "layer1_0_relu_1", None, "layer2_0_relu_1", None, "layer3_0_relu_1", None,
                    "layer4_0_relu_1"]
    for i, (add, identity) in enumerate(zip(adds, block_inputs)):
        stage, block = i // 2 + 1, i % 2
        expected = identity or f"layer{stage}.{block}.downsample.1"
        assert add["inputs"] == [f"layer{stage}.{block}.bn2", expected], add
        assert [s["module"] for s in add["scope"]] == [f"layer{stage}", f"layer{stage}.{block}"]
    for stage, (channels, size) in enumerate([(128, 28), (256, 14), (512, 7)], start=2):
        down = layers[f"layer{stage}.0.downsample.0"]
        assert down["type"] == "conv2d" and down["output_shape"] == [channels, size, size]
        assert down["attributes"]["kernel_size"] == [1, 1] and down["attributes"]["stride"] == [2, 2]
        assert down["parameters"] == {"weight": [channels, channels // 2, 1, 1]}
        assert layers[f"layer{stage}.0.conv1"]["attributes"]["stride"] == [2, 2]
        assert layers[f"layer{stage}.0.downsample.1"]["buffers"] == {"running_mean": [channels],
                                                                      "running_var": [channels]}
    assert layers["avgpool"]["output_shape"] == [512, 1, 1] and layers["fc"]["output_shape"] == [1000]


def recorded(model: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """The logits, and every leaf module's first output and every block's residual sum, by the API's names."""
    outputs: dict[str, Tensor] = {}
    blocks: list[tuple[str, Tensor]] = []
    handles = []
    def keep(name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Tensor) -> None:  # None: the output stays as it is
            if name not in outputs:  # a module's first call is the layer named by its path
                outputs[name] = out.clone()  # the in-place ReLU and `out += identity` overwrite it later
        return hook

    for name, module in model.named_modules():
        if isinstance(module, BasicBlock):
            handles.append(module.register_forward_pre_hook(lambda m, args, name=name: blocks.append((name, args[0]))))
        elif name and not list(module.children()):
            handles.append(module.register_forward_hook(keep(name)))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    for i, (name, block_input) in enumerate(blocks):
        identity = outputs.get(f"{name}.downsample.1", block_input)
        outputs["add" if i == 0 else f"add_{i}"] = outputs[f"{name}.bn2"] + identity
    return logits, outputs


def test_every_feature_map_served_equals_plain_pytorch(client: TestClient, detail: dict[str, Any]) -> None:
    response = client.post("/api/models/resnet18/forward", params={"encoding": "base64"}, json={"sample": "shapes"})
    assert response.status_code == 200, response.text
    served = response.json()
    x = tensor(served["input"]).unsqueeze(0)
    assert list(x.shape) == [1, 3, 224, 224]
    logits, plain = recorded(resnet18(), x)
    close(torch.tensor(served["prediction"]["logits"]), logits[0], "logits")
    checked = 0
    for layer in detail["layers"]:
        name = layer["name"]
        if name in plain:
            close(tensor(served["layers"][name]), plain[name][0], name)
            checked += 1
    assert checked == 69 - 9  # all but the 8 second calls of a block's ReLU, and the flatten


def test_input_activation_and_weight_gradients_served_equal_autograd(client: TestClient) -> None:
    wanted = ["conv1", "layer2.0.conv1", "layer3.0.downsample.0", "layer4.1.conv2", "layer4.1.bn2", "avgpool", "fc"]
    response = client.post("/api/models/resnet18/backward", params={"encoding": "base64"},
                           json={"sample": "stripes", "target": 3, "loss": "cross_entropy", "layers": wanted})
    assert response.status_code == 200, response.text
    served = response.json()
    assert list(served["layers"]) == wanted

    model = copy.deepcopy(resnet18())
    x = tensor(served["input"]).unsqueeze(0).requires_grad_(True)
    outputs: dict[str, Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, a, out, name=name: outputs.update({name: out}))
               for name in wanted if name != "layer4.1.bn2"]  # bn2's output is overwritten by `out += identity`
    try:
        loss = plain_loss(model(x), 3, "cross_entropy")
    finally:
        for handle in handles:
            handle.remove()
    weights = {(name, key): p for name in wanted for key, p in modules[name].named_parameters()}
    grads = torch.autograd.grad(loss, [x, *outputs.values(), *weights.values()])

    assert served["loss"] == loss.item()  # the same F.cross_entropy on the same logits; JSON keeps a float exactly
    close(tensor(served["input_gradient"]), grads[0][0], "input_gradient")
    for name, grad in zip(outputs, grads[1 : 1 + len(outputs)]):
        close(tensor(served["layers"][name]["activation_gradient"]), grad[0], f"{name} activation_gradient")
    for (name, key), grad in zip(weights, grads[1 + len(outputs) :]):
        close(tensor(served["layers"][name][f"{key}_gradient"]), grad, f"{name} {key}_gradient")
    assert served["layers"]["layer3.0.downsample.0"]["bias_gradient"] is None
