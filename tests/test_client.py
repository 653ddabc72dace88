"""`app/client.py` against a real uvicorn server, checked against the same models run in plain PyTorch."""

import io
from collections.abc import Callable, Iterator

import httpx
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from convscope.client import (
    ConvScopeAPIError,
    ConvScopeClient,
    Encoding,
    ForwardResult,
    ImageInput,
    InvalidRequestError,
    NotFoundError,
    Sample,
)
from convscope.layer_types import LAYER_TYPES
from convscope.optimizers import OPTIMIZERS
from tests import ROOT
from tests.api.rebuild import plain_builtin

MODELS = ["mnist-lenet", "fashion-tinyvgg"]
SAMPLE = "test-00000"
SAMPLE_PATH = ROOT / "models" / "samples" / "mnist-lenet" / f"{SAMPLE}.png"


@pytest.fixture(scope="module")
def cs(live_server: str) -> Iterator[ConvScopeClient]:
    with ConvScopeClient(live_server) as client:
        yield client


def plain_model(model_id: str) -> nn.Module:
    """The model rebuilt from its card and safetensors file alone, without ConvScope."""
    return plain_builtin(model_id)


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def first_conv_name(cs: ConvScopeClient, model_id: str) -> str:
    return str(next(layer["name"] for layer in cs.model(model_id)["layers"] if layer["type"] == "conv2d"))


def assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    # The same ops on the same float32 input at the same thread count: bit for bit.
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def test_models_lists_the_builtin_models(cs: ConvScopeClient) -> None:
    assert cs.health() == {"status": "ok"}
    assert sorted(m["id"] for m in cs.models()) == sorted(MODELS)


def test_the_tables_of_optimizers_and_layer_types_are_the_servers(cs: ConvScopeClient) -> None:
    assert [o["id"] for o in cs.optimizers()] == list(OPTIMIZERS)
    assert [t["id"] for t in cs.layer_types()] == list(LAYER_TYPES)


def test_model_has_its_layers_in_order(cs: ConvScopeClient) -> None:
    layers = cs.model("mnist-lenet")["layers"]
    assert [la["name"] for la in layers][:3] == ["conv1", "act1", "pool1"]
    assert layers[0]["output_shape"] == [6, 28, 28]


ENCODINGS: list[Encoding] = ["base64", "json"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_weights_equal_the_safetensors_file(live_server: str, encoding: Encoding) -> None:
    state = load_file(ROOT / "models" / "mnist-lenet.safetensors")
    with ConvScopeClient(live_server, encoding=encoding) as client:
        weights = client.weights("mnist-lenet", "conv1")
    assert set(weights) == {"weight", "bias"}
    assert weights["weight"].shape == (6, 1, 5, 5)
    assert torch.equal(weights["weight"], state["conv1.weight"])
    assert torch.equal(weights["bias"], state["conv1.bias"])


def test_samples_list_ids_and_serve_png(cs: ConvScopeClient) -> None:
    samples = cs.samples("mnist-lenet")
    assert SAMPLE in {s["id"] for s in samples}
    assert cs.sample_image("mnist-lenet", SAMPLE) == SAMPLE_PATH.read_bytes()


@pytest.fixture(scope="module")
def by_sample(cs: ConvScopeClient) -> ForwardResult:
    return cs.forward("mnist-lenet", Sample(SAMPLE))


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "pil", "tensor", "batched_tensor", "sample"])
def test_forward_accepts_every_image_kind(cs: ConvScopeClient, by_sample: ForwardResult, kind: str) -> None:
    images: dict[str, Callable[[], ImageInput]] = {
        "path": lambda: SAMPLE_PATH, "str": lambda: str(SAMPLE_PATH), "bytes": SAMPLE_PATH.read_bytes,
        "pil": lambda: Image.open(SAMPLE_PATH), "tensor": lambda: by_sample.input,
        "batched_tensor": lambda: by_sample.input.unsqueeze(0), "sample": lambda: Sample(SAMPLE)}
    result = cs.forward("mnist-lenet", images[kind]())
    assert result.prediction.index == by_sample.prediction.index
    assert result.prediction.label == by_sample.prediction.label
    assert torch.equal(result.input, by_sample.input)
    assert_same(result.prediction.logits, by_sample.prediction.logits)


def test_forward_of_the_returned_input_gives_the_same_layers(cs: ConvScopeClient, by_sample: ForwardResult) -> None:
    again = cs.forward("mnist-lenet", by_sample.input)
    assert again.layers.keys() == by_sample.layers.keys()
    for name, tensor in by_sample.layers.items():
        assert torch.equal(again.layers[name], tensor), name


def test_forward_layers_narrows_the_answer(cs: ConvScopeClient) -> None:
    result = cs.forward("mnist-lenet", SAMPLE_PATH, layers=["conv1", "fc3"])
    assert list(result.layers) == ["conv1", "fc3"]
    assert result.layers["conv1"].shape == (6, 28, 28)


@pytest.mark.parametrize("model_id", MODELS)
def test_forward_equals_plain_pytorch(cs: ConvScopeClient, model_id: str) -> None:
    result = cs.forward(model_id, Sample(cs.samples(model_id)[0]["id"]))
    plain, x = plain_model(model_id), result.input.unsqueeze(0)
    with torch.no_grad():
        logits, conv = plain(x)[0], first_conv(plain)(x)[0]
    assert_same(result.prediction.logits, logits)
    assert_same(result.layers[list(result.layers)[-1]], logits)
    assert_same(result.layers[first_conv_name(cs, model_id)], conv)
    assert result.prediction.index == int(logits.argmax())
    assert_same(result.prediction.probabilities, logits.softmax(0))


@pytest.mark.parametrize("model_id", MODELS)
def test_backward_input_gradient_equals_autograd(cs: ConvScopeClient, model_id: str) -> None:
    target = 3
    result = cs.backward(model_id, Sample(cs.samples(model_id)[0]["id"]), target=target)
    plain = plain_model(model_id)
    x = result.input.unsqueeze(0).requires_grad_()
    loss = nn.functional.cross_entropy(plain(x), torch.tensor([target]))
    conv = first_conv(plain)
    input_gradient, weight_gradient = torch.autograd.grad(loss, [x, conv.weight])
    assert result.target == target
    assert result.loss == loss.item()  # the same ops on the same float32 input at the same thread count: bit for bit
    assert_same(result.input_gradient, input_gradient[0])
    name = first_conv_name(cs, model_id)
    assert_same(result.weight_gradients[name], weight_gradient)
    assert name in result.bias_gradients and name in result.activation_gradients
    assert "flatten" not in result.weight_gradients  # only layers with parameters have weight gradients


def test_backward_defaults_to_the_predicted_class(cs: ConvScopeClient, by_sample: ForwardResult) -> None:
    result = cs.backward("mnist-lenet", Image.open(SAMPLE_PATH), loss="logit", layers=["conv1"])
    assert result.target == by_sample.prediction.index
    assert result.loss == float(by_sample.prediction.logits[result.target])  # the logit loss is the logit itself
    assert list(result.activation_gradients) == ["conv1"]


def test_unknown_model_raises_not_found_with_the_servers_sentence(cs: ConvScopeClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        cs.model("resnet")
    assert caught.value.status_code == 404
    assert str(caught.value) == "There is no model called 'resnet'. The models here are: fashion-tinyvgg, mnist-lenet."


def test_unknown_layer_raises_not_found(cs: ConvScopeClient) -> None:
    with pytest.raises(NotFoundError, match="This model has no layer called 'nope'. Its layers are: conv1, "):
        cs.weights("mnist-lenet", "nope")
    with pytest.raises(NotFoundError, match="no layer called 'nope'"):
        cs.forward("mnist-lenet", Sample(SAMPLE), layers=["nope"])
    with pytest.raises(NotFoundError, match=r"^Layer 'act1' \(relu\) has no weights"):
        cs.weights("mnist-lenet", "act1")


def test_bad_image_bytes_raise_invalid_request(cs: ConvScopeClient) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        cs.forward("mnist-lenet", b"not an image at all")
    assert caught.value.status_code == 422
    assert caught.value.detail == ("This looks like text, not an image ConvScope can read. "
                                   "ConvScope reads PNG, JPEG, WebP, GIF and BMP.")


def test_wrong_tensor_shape_and_target_raise_invalid_request(cs: ConvScopeClient) -> None:
    with pytest.raises(InvalidRequestError, match=r"shape \[1, 14, 14\], but model 'mnist-lenet' takes \[1, 28, 28\]"):
        cs.forward("mnist-lenet", torch.zeros(1, 14, 14))
    with pytest.raises(ConvScopeAPIError) as caught:
        cs.backward("mnist-lenet", Sample(SAMPLE), target=99)
    assert caught.value.status_code == 422 and isinstance(caught.value, InvalidRequestError)


def test_context_manager_closes_the_connection(live_server: str) -> None:
    with ConvScopeClient(live_server) as client:
        client.health()
    with pytest.raises(RuntimeError):
        client.health()


def test_png_of_a_pil_image_in_memory(cs: ConvScopeClient, by_sample: ForwardResult) -> None:
    buffer = io.BytesIO(SAMPLE_PATH.read_bytes())
    result = cs.forward("mnist-lenet", Image.open(buffer).convert("RGB"))  # colour becomes grayscale
    assert result.prediction.index == by_sample.prediction.index


def test_unreachable_server_raises_httpx_transport_error() -> None:
    with ConvScopeClient("http://127.0.0.1:9", timeout=2) as client, pytest.raises(httpx.TransportError):
        client.health()


@pytest.mark.parametrize("model_id", MODELS)
def test_saliency_equals_the_abs_input_gradient_of_the_logit(cs: ConvScopeClient, model_id: str) -> None:
    result = cs.attribute(model_id, Sample(SAMPLE), "saliency", target=3)
    x = result.input.unsqueeze(0).requires_grad_(True)
    logit = plain_model(model_id)(x)[0, 3]
    (gradient,) = torch.autograd.grad(logit, x)
    assert (result.method, result.target, result.layer, result.layer_attribution) == ("saliency", 3, None, None)
    assert result.score == logit.item()  # the same ops on the same float32 input at the same thread count: bit for bit
    # The same ops on the same float32 input at the same thread count: bit for bit.
    torch.testing.assert_close(result.attribution, gradient[0].abs(), rtol=0, atol=0)


def test_grad_cam_has_its_layer_map_and_options_reach_the_server(cs: ConvScopeClient) -> None:
    methods = {m["name"]: m for m in cs.attribution_methods("mnist-lenet")}
    assert {"saliency", "grad_cam", "integrated_gradients", "occlusion"} <= set(methods)
    cam = cs.attribute("mnist-lenet", Sample(SAMPLE), "grad_cam", layer="conv2")
    assert cam.layer == "conv2" and cam.layer_attribution is not None
    assert list(cam.layer_attribution.shape) == [1, 10, 10] and list(cam.attribution.shape) == [1, 28, 28]
    occlusion = cs.attribute("mnist-lenet", SAMPLE_PATH, "occlusion", window=[4, 6], stride=2)
    assert occlusion.options["window"] == [4, 6] and occlusion.options["stride"] == [2, 2]
    with pytest.raises(InvalidRequestError, match="steps"):
        cs.attribute("mnist-lenet", Sample(SAMPLE), "saliency", steps=10)


def test_one_sgd_step_moves_each_weight_against_its_autograd_gradient(cs: ConvScopeClient) -> None:
    result = cs.step("mnist-lenet", Sample(SAMPLE), "sgd", lr=0.5, target=2, layers=["conv1", "fc3"])
    model = plain_model("mnist-lenet")
    x = cs.forward("mnist-lenet", Sample(SAMPLE), layers=[]).input.unsqueeze(0)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([2]))
    conv1, fc3 = model.get_submodule("conv1"), model.get_submodule("fc3")
    grads = torch.autograd.grad(loss, [conv1.weight, conv1.bias, fc3.weight, fc3.bias])
    assert set(result.layers) == {"conv1", "fc3"} and result.lr == 0.5
    assert result.loss == loss.item()  # the same ops on the same float32 input at the same thread count: bit for bit
    for (layer, key), grad in zip([("conv1", "weight"), ("conv1", "bias"), ("fc3", "weight"), ("fc3", "bias")], grads,
                                  strict=True):
        p = result.layers[layer][key]
        # The same ops on the same float32 input at the same thread count: bit for bit.
        torch.testing.assert_close(p.gradient, grad, rtol=0, atol=0)
        torch.testing.assert_close(p.after, p.before - 0.5 * grad, rtol=0, atol=0)  # SGD's own w − lr·g, one rounding each
        torch.testing.assert_close(p.update, p.after - p.before, rtol=0, atol=0)  # the same subtraction
    assert result.loss_after < result.loss
