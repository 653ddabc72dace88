"""A model that ends in a softmax layer: the API serves its real logits (the softmax's input) and
its own probabilities, never a softmax of probabilities; backward's losses read the real logits.

The model is the built-in LeNet with `nn.Softmax(dim=1)` appended, loaded from a model card and
the shipped weights written into a temporary folder, as a user would register one.
"""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file
from torch import Tensor, nn

from convscope.codec import decode
from convscope.config import Settings
from convscope.main import create_app
from convscope.models.lenet import LeNet
from tests import ROOT
from tests.api.rebuild import plain_loss
from tests.tolerance import gamma

MODEL = "softmax-lenet"
M = f"/api/models/{MODEL}"
close = torch.testing.assert_close


class SoftmaxLeNet(LeNet):
    """LeNet whose forward returns probabilities (the card's factory points here)."""

    def __init__(self) -> None:
        super().__init__()
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.softmax(super().forward(x))
        return out


@pytest.fixture(scope="module")
def card_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding only softmax-lenet: mnist-lenet's card, weights and two samples."""
    folder = tmp_path_factory.mktemp("models")
    card = json.loads((ROOT / "models" / "mnist-lenet.json").read_text())
    shutil.copy(ROOT / "models" / card["weights"], folder / "weights.safetensors")
    samples = card["samples"][:2]
    for sample in samples:
        (folder / sample["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "models" / sample["file"], folder / sample["file"])
    card |= {"id": MODEL, "name": "LeNet-5 ending in a softmax", "weights": "weights.safetensors", "samples": samples,
             "architecture": {"factory": f"{__name__}:SoftmaxLeNet", "kwargs": {}}}
    (folder / f"{MODEL}.json").write_text(json.dumps(card))
    return folder


@pytest.fixture(scope="module")
def client(card_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models_dir=card_dir))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def plain(card_dir: Path) -> LeNet:
    """The same network without its softmax, in plain PyTorch: the real logits' reference."""
    model = LeNet()
    model.load_state_dict(load_file(card_dir / "weights.safetensors"))
    return model.eval()


def sample_ids(client: TestClient) -> list[str]:
    return [s["id"] for s in client.get(f"{M}/samples").json()["samples"]]


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_the_model_is_served_with_its_softmax_as_last_layer(client: TestClient) -> None:
    layers = client.get(M).json()["layers"]
    assert [layers[-1]["name"], layers[-1]["type"], layers[-1]["inputs"]] == ["softmax", "softmax", ["fc3"]]


@pytest.mark.parametrize("layers", [None, ["conv1"], ["softmax"], ["fc3", "softmax"]])
def test_forward_serves_the_real_logits_and_the_models_probabilities(
        client: TestClient, plain: LeNet, layers: list[str] | None) -> None:
    for sample in sample_ids(client):
        body = post(client, f"{M}/forward", {"sample": sample} | ({"layers": layers} if layers else {}))
        x = decode(body["input"]).unsqueeze(0)
        with torch.no_grad():
            z = plain(x)[0]
        served = body["prediction"]
        logits, probabilities = torch.tensor(served["logits"]), torch.tensor(served["probabilities"])
        # The same modules and softmax on the same float32 input at the same thread count: bit for bit.
        close(logits, z, rtol=0, atol=0)  # the softmax's input, not its output
        close(probabilities, z.softmax(0), rtol=0, atol=0)  # one softmax, not two
        close(probabilities, logits.softmax(0), rtol=0, atol=0)
        # Each probability is within γ(K + 2) of exact (exp, K-term sum, division); the sum adds K roundings.
        assert abs(probabilities.double().sum().item() - 1.0) <= gamma(2 * len(probabilities) + 2)
        assert probabilities.max().item() > 0.5  # a double softmax of 10 classes stays below 0.24
        assert served["index"] == int(z.argmax()) and served["label"] == str(served["index"])
        # The response's layers are the ones asked for, however the logits were found.
        assert list(body["layers"]) == (layers or [layer["name"] for layer in client.get(M).json()["layers"]])
        if "softmax" in body["layers"]:
            close(decode(body["layers"]["softmax"]), probabilities, rtol=0, atol=0)
        if "fc3" in body["layers"]:
            close(decode(body["layers"]["fc3"]), logits, rtol=0, atol=0)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "logit"])
def test_backward_takes_its_loss_on_the_real_logits(client: TestClient, plain: LeNet, loss: str) -> None:
    sample = sample_ids(client)[0]
    forward = post(client, f"{M}/forward", {"sample": sample, "layers": ["conv1"]})
    body = post(client, f"{M}/backward", {"sample": sample, "target": 3, "loss": loss,
                                          "layers": ["conv1", "fc3", "softmax"]})
    assert body["prediction"] == forward["prediction"]
    x = decode(body["input"]).unsqueeze(0).requires_grad_(True)
    z = plain(x)
    value = plain_loss(z, 3, loss)
    d_x, d_z = torch.autograd.grad(value, [x, z])
    # PyTorch's own losses (tests/api/rebuild.py) on the same logits, and autograd through the same modules at the
    # same thread count, as the server: bit for bit.
    assert body["loss"] == value.item()
    close(decode(body["input_gradient"]), d_x[0], rtol=0, atol=0)
    close(decode(body["layers"]["fc3"]["activation_gradient"]), d_z[0], rtol=0, atol=0)
    softmax_gradient = decode(body["layers"]["softmax"]["activation_gradient"])
    if loss == "mse":  # mse reads the probabilities from the softmax layer itself
        p = z.detach().softmax(1)[0]
        # autograd's mse gradient and this formula round the same numbers up to 3 times each: γ(3) relative each.
        close(softmax_gradient, 2 * (p - torch.eye(10)[3]) / 10, rtol=2 * gamma(3), atol=0)
    else:  # the loss is a function of the logits: it does not pass through the final softmax
        assert torch.count_nonzero(softmax_gradient) == 0
