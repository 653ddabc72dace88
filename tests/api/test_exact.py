"""The "Exact" bar: every number the API serves equals plain PyTorch on a model rebuilt from the API.

Each built-in model is rebuilt from `GET /api/models/{id}` and the weights endpoint alone (see
rebuild.py); its feature maps, prediction and gradients must match what forward and backward
serve, to 1e-5.
"""

import io
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from tests.api.rebuild import LOSSES, MODELS, Rebuilt, rebuild, tensor, to_wire

PICKS = ("first-sample", "middle-sample", "last-sample", "drawn-image")


def close(served: torch.Tensor, plain: torch.Tensor, what: str) -> None:
    assert list(served.shape) == list(plain.shape), f"{what}: shape {list(served.shape)} != {list(plain.shape)}"
    # The rebuild runs the same torch ops on the same float32 input (batch of one, same thread count), and the
    # API carries float32 exactly: bit for bit.
    torch.testing.assert_close(served, plain.detach().to(torch.float32), atol=0, rtol=0, msg=lambda m: f"{what}: {m}")


def drawn_png() -> bytes:
    """A 'photo' of a drawing: dark strokes on light paper, RGB, not 28×28, as a user might upload."""
    image = Image.new("RGB", (90, 70), (235, 230, 220))
    draw = ImageDraw.Draw(image)
    draw.ellipse((25, 10, 65, 60), outline=(20, 20, 30), width=7)
    draw.line((45, 5, 45, 65), fill=(20, 20, 30), width=5)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def rebuilt(client: TestClient) -> dict[str, Rebuilt]:
    return {model: rebuild(client, model) for model in MODELS}


@pytest.fixture(scope="module")
def samples(client: TestClient) -> dict[str, list[dict[str, Any]]]:
    return {model: client.get(f"/api/models/{model}/samples").json()["samples"] for model in MODELS}


def request_image(samples: dict[str, list[dict[str, Any]]], model: str, pick: str) -> dict[str, Any]:
    """The image part of a request (kwargs for TestClient.post), and the true label if known."""
    listed = samples[model]
    if pick == "drawn-image":
        return {"files": {"image": ("drawing.png", drawn_png(), "image/png")}}
    index = {"first-sample": 0, "middle-sample": len(listed) // 2, "last-sample": len(listed) - 1}[pick]
    return {"json": {"sample": listed[index]["id"]}}


def post(client: TestClient, model: str, endpoint: str, image: dict[str, Any], **options: Any) -> dict[str, Any]:
    kwargs = dict(image)
    if "json" in kwargs:
        kwargs["json"] = {**kwargs["json"], **options}
    else:
        kwargs["data"] = {k: str(v) for k, v in options.items()}
    response = client.post(f"/api/models/{model}/{endpoint}", **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("pick", PICKS)
@pytest.mark.parametrize("model", MODELS)
def test_forward_layers_and_prediction_equal_the_rebuilt_model(
        client: TestClient, rebuilt: dict[str, Rebuilt], samples: dict[str, list[dict[str, Any]]],
        model: str, pick: str) -> None:
    net = rebuilt[model]
    served = post(client, model, "forward", request_image(samples, model, pick))
    x = tensor(served["input"])
    spec = net.detail["input"]
    assert list(x.shape) == [spec["channels"], spec["height"], spec["width"]]
    plain = net.run(x.unsqueeze(0))

    assert list(served["layers"]) == net.names  # every layer, in execution order
    for layer in net.layers:
        name = layer["name"]
        got = tensor(served["layers"][name])
        assert list(got.shape) == layer["output_shape"], f"{name}: served shape vs layer list"
        close(got, plain[name][0], f"{model} {pick} layer {name}")

    logits = net.logits(plain)[0]
    prediction = served["prediction"]
    close(torch.tensor(prediction["logits"]), logits, "logits")
    close(torch.tensor(prediction["probabilities"]), logits.softmax(0), "probabilities")
    assert len(prediction["probabilities"]) == len(net.classes)
    assert prediction["index"] == int(logits.argmax())
    assert prediction["label"] == net.classes[prediction["index"]]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("pick", PICKS)
@pytest.mark.parametrize("model", MODELS)
def test_backward_loss_and_every_gradient_equal_torch_autograd_on_the_rebuilt_model(
        client: TestClient, rebuilt: dict[str, Rebuilt], samples: dict[str, list[dict[str, Any]]],
        model: str, pick: str, loss: str) -> None:
    net = rebuilt[model]
    image = request_image(samples, model, pick)
    classes = len(net.classes)
    # The default target (the predicted class), and two chosen ones, different for each sample.
    first = post(client, model, "backward", image, loss=loss)
    x = tensor(first["input"]).unsqueeze(0)
    predicted = int(net.logits(net.run(x)).argmax())
    cases: list[tuple[int | None, dict[str, Any]]] = [(None, first)]
    for chosen in ((predicted + 1) % classes, (predicted + 2 + PICKS.index(pick)) % classes):
        # base64 float32 is exact, and much faster than JSON for every-layer answers.
        cases.append((chosen, post(client, model, "backward", image, loss=loss, target=chosen, encoding="base64")))

    for target, served in cases:
        what = f"{model} {pick} {loss} target={target}"
        close(tensor(served["input"]).unsqueeze(0), x, f"{what}: input")  # the same image each time
        plain = net.backward(x, target, loss)
        assert served["target"] == plain["target"] == (predicted if target is None else target)
        assert served["loss_function"] == loss
        assert served["loss"] == plain["loss"], what  # the same loss op on the same logits (see close)
        close(tensor(served["input_gradient"]), plain["input_gradient"], f"{what}: input_gradient")
        assert list(served["layers"]) == net.names
        for layer in net.layers:
            name, grads = layer["name"], served["layers"][layer["name"]]
            close(tensor(grads["activation_gradient"]), plain["activation_gradients"][name],
                  f"{what}: {name} activation_gradient")
            for key in ("weight", "bias"):
                got = grads[f"{key}_gradient"]
                if key in layer["parameters"]:
                    assert got is not None, f"{what}: {name} has a {key} but no {key}_gradient"
                    close(tensor(got), plain["parameter_gradients"][(name, key)], f"{what}: {name} {key}_gradient")
                else:
                    assert got is None, f"{what}: {name} has no {key}, yet a {key}_gradient"


@pytest.mark.parametrize("model", MODELS)
def test_sample_input_is_the_sample_png_scaled_and_normalised_as_the_summary_says(
        client: TestClient, rebuilt: dict[str, Rebuilt], samples: dict[str, list[dict[str, Any]]],
        model: str) -> None:
    """A shipped sample is already in the dataset's form: the input is its pixels / 255, normalised."""
    spec = rebuilt[model].detail["input"]
    for sample in samples[model][:3]:
        png = client.get(sample["url"])
        pixels = np.asarray(Image.open(io.BytesIO(png.content)).convert("L" if spec["channels"] == 1 else "RGB"),
                            dtype=np.float32)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        mean = np.array(spec["mean"], dtype=np.float32)[:, None, None]
        std = np.array(spec["std"], dtype=np.float32)[:, None, None]
        expected = torch.from_numpy((pixels / 255 - mean) / std)
        served = post(client, model, "forward", {"json": {"sample": sample["id"]}}, layers=rebuilt[model].names[:1])
        close(tensor(served["input"]), expected, f"{model} {sample['id']} input")


@pytest.mark.parametrize("model", MODELS)
def test_weights_have_the_shapes_the_layer_list_declares_and_base64_equals_json(
        client: TestClient, rebuilt: dict[str, Rebuilt], model: str) -> None:
    net = rebuilt[model]
    assert net.params, "a built-in model without weights"
    for layer in net.layers:
        declared = {**layer["parameters"], **layer.get("buffers", {})}
        if not declared:
            continue
        got = net.params[layer["name"]]
        assert {k: list(v.shape) for k, v in got.items()} == declared
        b64 = client.get(f"/api/models/{model}/layers/{layer['name']}/weights", params={"encoding": "base64"}).json()
        for key, value in got.items():
            assert b64[key]["encoding"] == "base64" and b64[key]["dtype"] == "float32"
            assert torch.equal(tensor(b64[key]), value), f"{layer['name']}.{key}: base64 differs from JSON"
    total = sum(int(np.prod(shape)) for layer in net.layers for shape in layer["parameters"].values())
    assert net.detail["parameter_count"] == total


def all_tensors(body: Any, path: str = "") -> dict[str, dict[str, Any]]:
    """Every Tensor object in an answer, by its path."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(body, dict):
        if "shape" in body and "data" in body:
            return {path: body}
        for key, value in body.items():
            found |= all_tensors(value, f"{path}/{key}")
    return found


@pytest.mark.parametrize("endpoint", ["forward", "backward"])
@pytest.mark.parametrize("model", MODELS)
def test_base64_float32_decodes_to_exactly_the_json_values_and_float16_to_within_its_precision(
        client: TestClient, samples: dict[str, list[dict[str, Any]]], model: str, endpoint: str) -> None:
    image = request_image(samples, model, "middle-sample")
    extra = {"target": 3, "loss": "mse"} if endpoint == "backward" else {}
    as_json = post(client, model, endpoint, image, **extra)
    as_b64 = post(client, model, endpoint, image, encoding="base64", **extra)
    as_f16 = post(client, model, endpoint, image, encoding="base64", dtype="float16", **extra)
    reference = all_tensors(as_json)
    assert reference and set(all_tensors(as_b64)) == set(reference) == set(all_tensors(as_f16))
    assert as_b64["prediction"] == as_json["prediction"] == as_f16["prediction"]
    for path, obj in reference.items():
        values = np.array(obj["data"], dtype=np.float64)
        b64 = all_tensors(as_b64)[path]
        assert (b64["encoding"], b64["dtype"], b64["shape"]) == ("base64", "float32", obj["shape"])
        assert np.array_equal(tensor(b64).numpy().astype(np.float64).ravel(), values), path
        f16 = all_tensors(as_f16)[path]
        assert (f16["encoding"], f16["dtype"], f16["shape"]) == ("base64", "float16", obj["shape"])
        half = tensor(f16).numpy().astype(np.float64).ravel()
        # Round to nearest float16: relative error at most 2^-11, absolute 2^-25 among subnormals.
        assert np.all(np.abs(half - values) <= np.abs(values) * 2.0**-11 + 2.0**-25), path
        assert len(f16["data"]) * 2 <= len(b64["data"]) + 4  # half the bytes


@pytest.mark.parametrize("model", MODELS)
def test_returned_input_sent_back_as_tensor_gives_the_same_answer(
        client: TestClient, samples: dict[str, list[dict[str, Any]]], model: str) -> None:
    for pick in ("first-sample", "drawn-image"):
        first = post(client, model, "forward", request_image(samples, model, pick))
        again = post(client, model, "forward", {"json": {"tensor": first["input"]}})
        assert again == first, f"{pick}: JSON input tensor sent back"
        as_b64 = post(client, model, "forward", {"json": {"tensor": to_wire(tensor(first["input"]))}})
        assert as_b64 == first, f"{pick}: base64 input tensor sent back"
        back = post(client, model, "backward", request_image(samples, model, pick), target=2, loss="logit")
        back_again = post(client, model, "backward", {"json": {"tensor": back["input"]}}, target=2, loss="logit")
        assert back_again == back, f"{pick}: backward on the input tensor sent back"
