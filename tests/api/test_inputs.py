"""One image, every way of sending it; every option, every place it can go; models and samples."""

import base64
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests import ROOT
from tests.api.rebuild import MODELS, tensor


def card(model: str) -> dict[str, Any]:
    """The model card on disk: the source the API's summary must agree with."""
    found: dict[str, Any] = json.loads((ROOT / "models" / f"{model}.json").read_text())
    return found


@pytest.fixture(scope="module")
def details(client: TestClient) -> dict[str, dict[str, Any]]:
    return {model: client.get(f"/api/models/{model}").json() for model in MODELS}


@pytest.fixture(scope="module")
def samples(client: TestClient) -> dict[str, list[dict[str, Any]]]:
    return {model: client.get(f"/api/models/{model}/samples").json()["samples"] for model in MODELS}


@pytest.fixture(scope="module")
def pngs(client: TestClient, samples: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[str, bytes]]:
    """For each model: one sample id and its PNG bytes, fetched through the sample URL."""
    chosen = {}
    for model in MODELS:
        sample = samples[model][len(samples[model]) // 3]
        response = client.get(sample["url"])
        assert response.status_code == 200
        chosen[model] = (sample["id"], response.content)
    return chosen


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def every_form(client: TestClient, model: str, endpoint: str, sample: str, png: bytes,
               options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The same request as JSON sample id / data URL, multipart file, raw image body, query or form."""
    url = f"/api/models/{model}/{endpoint}"
    as_text = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in options.items()}
    return {
        "json sample id, json keys": ok(client.post(url, json={"sample": sample, **options})),
        "json data url, json keys": ok(client.post(url, json={"image": data_url(png), **options})),
        "json sample id, query params": ok(client.post(url, params=as_text, json={"sample": sample})),
        "sample id as query param, no body": ok(client.post(url, params={"sample": sample, **as_text})),
        "multipart file, form fields": ok(client.post(url, files={"image": ("x.png", png, "image/png")}, data=as_text)),
        "multipart file, query params": ok(client.post(url, params=as_text, files={"image": ("x.png", png, "image/png")})),
        "raw image/png body, query params": ok(client.post(url, params=as_text, content=png,
                                                           headers={"content-type": "image/png"})),
    }


@pytest.mark.parametrize("endpoint", ["forward", "backward"])
@pytest.mark.parametrize("model", MODELS)
def test_same_image_as_file_raw_body_data_url_and_sample_id_gives_identical_answers(
        client: TestClient, pngs: dict[str, tuple[str, bytes]], model: str, endpoint: str) -> None:
    sample, png = pngs[model]
    answers = every_form(client, model, endpoint, sample, png, {})
    reference = answers.pop("json sample id, json keys")
    assert len(reference["layers"]) > 0
    for form, answer in answers.items():
        assert answer == reference, form


@pytest.mark.parametrize("model", MODELS)
def test_a_samples_input_made_once_stays_the_uploaded_pngs_after_requests_that_use_it(
        client: TestClient, pngs: dict[str, tuple[str, bytes]], model: str) -> None:
    """The server keeps each sample's preprocessed input; attribution marks its input for gradients
    and perturbs it (SmoothGrad, occlusion), and the next answer must not notice."""
    sample, png = pngs[model]
    uploaded = ok(client.post(f"/api/models/{model}/forward", files={"image": ("x.png", png, "image/png")}))
    for method in ("saliency", "smoothgrad", "occlusion"):
        ok(client.post(f"/api/models/{model}/attributions", json={"sample": sample, "method": method}))
    for endpoint in ("forward", "backward", "forward"):
        answer = ok(client.post(f"/api/models/{model}/{endpoint}", json={"sample": sample}))
        assert answer["input"] == uploaded["input"], endpoint
    assert ok(client.post(f"/api/models/{model}/forward", json={"sample": sample})) == uploaded


@pytest.mark.parametrize("endpoint", ["forward", "backward"])
@pytest.mark.parametrize("model", MODELS)
def test_options_work_identically_as_query_params_form_fields_and_json_keys(
        client: TestClient, pngs: dict[str, tuple[str, bytes]], details: dict[str, dict[str, Any]],
        model: str, endpoint: str) -> None:
    sample, png = pngs[model]
    names = [layer["name"] for layer in details[model]["layers"]]
    chosen = [names[0], names[-1]]
    options: dict[str, Any] = {"layers": chosen, "encoding": "base64", "dtype": "float16"}
    if endpoint == "backward":
        options |= {"target": 3, "loss": "mse"}
    answers = every_form(client, model, endpoint, sample, png, options)
    reference = answers.pop("json sample id, json keys")
    # The options took effect ...
    assert list(reference["layers"]) == chosen
    tensors = [reference["input"], *reference["layers"].values()] if endpoint == "forward" else \
        [reference["input_gradient"], *(g["activation_gradient"] for g in reference["layers"].values())]
    assert all(t["encoding"] == "base64" and t["dtype"] == "float16" for t in tensors)
    if endpoint == "backward":
        assert (reference["target"], reference["loss_function"]) == (3, "mse")
    # ... and the same way wherever they were given.
    for form, answer in answers.items():
        assert answer == reference, form


def test_layers_as_a_comma_separated_json_string_means_the_same_as_a_list(
        client: TestClient, pngs: dict[str, tuple[str, bytes]], details: dict[str, dict[str, Any]]) -> None:
    model = MODELS[0]
    sample, _ = pngs[model]
    names = [layer["name"] for layer in details[model]["layers"]][:2]
    url = f"/api/models/{model}/forward"
    assert ok(client.post(url, json={"sample": sample, "layers": ",".join(names)})) == \
        ok(client.post(url, json={"sample": sample, "layers": names}))


@pytest.mark.parametrize("model", MODELS)
def test_layers_narrows_forward_to_exactly_those_layers_with_the_same_values(
        client: TestClient, pngs: dict[str, tuple[str, bytes]], details: dict[str, dict[str, Any]],
        model: str) -> None:
    sample, _ = pngs[model]
    names = [layer["name"] for layer in details[model]["layers"]]
    full = ok(client.post(f"/api/models/{model}/forward", json={"sample": sample}))
    assert list(full["layers"]) == names
    wanted = [names[-1], names[1], names[len(names) // 2]]  # asked out of order
    narrow = ok(client.post(f"/api/models/{model}/forward", params={"layers": ",".join(wanted)},
                            json={"sample": sample}))
    assert list(narrow["layers"]) == [n for n in names if n in wanted]  # execution order
    assert narrow["layers"] == {n: full["layers"][n] for n in wanted}
    assert narrow["input"] == full["input"] and narrow["prediction"] == full["prediction"]


@pytest.mark.parametrize("model", MODELS)
def test_layers_narrows_backward_to_exactly_those_layers_with_the_same_gradients(
        client: TestClient, pngs: dict[str, tuple[str, bytes]], details: dict[str, dict[str, Any]],
        model: str) -> None:
    sample, png = pngs[model]
    names = [layer["name"] for layer in details[model]["layers"]]
    options = {"target": 1, "loss": "cross_entropy", "encoding": "base64"}
    full = ok(client.post(f"/api/models/{model}/backward", json={"sample": sample, **options}))
    assert list(full["layers"]) == names
    wanted = [names[0], names[-2]]
    narrow = ok(client.post(f"/api/models/{model}/backward", files={"image": ("x.png", png, "image/png")},
                            data={"layers": ",".join(wanted), **{k: str(v) for k, v in options.items()}}))
    assert list(narrow["layers"]) == wanted
    assert narrow["layers"] == {n: full["layers"][n] for n in wanted}
    for key in ("loss", "target", "input", "input_gradient", "prediction"):
        assert narrow[key] == full[key], key


@pytest.mark.parametrize("model", MODELS)
def test_samples_list_matches_the_card_and_every_sample_png_url_serves_the_image(
        client: TestClient, samples: dict[str, list[dict[str, Any]]], details: dict[str, dict[str, Any]],
        model: str) -> None:
    listed = samples[model]
    assert listed, "a built-in model ships sample images"
    on_card = {s["id"]: s["label"] for s in card(model)["samples"]}
    assert {s["id"]: s["label"] for s in listed} == on_card
    classes = details[model]["classes"]
    spec = details[model]["input"]
    for sample in listed:
        assert set(sample) >= {"id", "label", "url"}
        assert sample["label_name"] == classes[sample["label"]]
        image = client.get(sample["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert Image.open(io.BytesIO(image.content)).size == (spec["width"], spec["height"])
    # The sample's id in a request is the sample's image.
    first = listed[0]
    by_id = ok(client.post(f"/api/models/{model}/forward", json={"sample": first["id"]}))
    by_png = ok(client.post(f"/api/models/{model}/forward", content=client.get(first["url"]).content,
                            headers={"content-type": "image/png"}))
    assert by_id == by_png


def test_model_summaries_have_test_accuracy_as_a_fraction_equal_to_the_cards(
        client: TestClient, details: dict[str, dict[str, Any]]) -> None:
    listed = ok(client.get("/api/models"))["models"]
    assert [m["id"] for m in listed] and set(MODELS) <= {m["id"] for m in listed}
    for summary in listed:
        if summary["id"] not in MODELS:
            continue
        model_card = card(summary["id"])
        assert isinstance(summary["test_accuracy"], float) and 0.5 < summary["test_accuracy"] <= 1.0
        assert summary["test_accuracy"] == model_card["test_accuracy"]
        assert summary["classes"] == model_card["classes"] and len(summary["classes"]) == 10
        assert {k: summary["input"][k] for k in ("channels", "height", "width")} == \
            {k: model_card["input"][k] for k in ("channels", "height", "width")}
        assert isinstance(summary["parameter_count"], int) and summary["parameter_count"] > 0
        for key in ("id", "name", "dataset", "classes", "input", "parameter_count", "test_accuracy"):
            assert key in summary, key
        # The detail is the same summary, plus its layers.
        detail = details[summary["id"]]
        assert {k: v for k, v in detail.items() if k != "layers"} == summary


@pytest.mark.parametrize("model", MODELS)
def test_model_detail_layers_have_no_batch_dimension_and_the_first_layer_reads_input(
        client: TestClient, pngs: dict[str, tuple[str, bytes]], details: dict[str, dict[str, Any]],
        model: str) -> None:
    detail = details[model]
    layers = detail["layers"]
    assert layers[0]["inputs"] == ["input"]
    seen: set[str] = set()
    for layer in layers:
        assert set(layer) >= {"name", "type", "inputs", "output_shape", "attributes", "parameters"}
        assert layer["name"] not in seen and layer["name"] != "input"
        assert layer["inputs"] and all(i == "input" or i in seen for i in layer["inputs"]), layer["name"]
        seen.add(layer["name"])
        for key in ("kernel_size", "stride", "padding", "dilation"):
            if key in layer["attributes"] and not isinstance(layer["attributes"][key], str):
                assert isinstance(layer["attributes"][key], list) and len(layer["attributes"][key]) == 2
        if layer["type"] == "conv2d":
            assert len(layer["output_shape"]) == 3
            assert layer["output_shape"][0] == layer["attributes"]["out_channels"]
            assert layer["parameters"]["weight"][:2] == [layer["attributes"]["out_channels"],
                                                         layer["attributes"]["in_channels"]]
        if layer["type"] == "linear":
            assert layer["output_shape"] == [layer["attributes"]["out_features"]]
    assert layers[-1]["output_shape"] == [len(detail["classes"])]
    spec = detail["input"]
    sample, _ = pngs[model]
    served = ok(client.post(f"/api/models/{model}/forward", json={"sample": sample, "encoding": "base64"}))
    assert served["input"]["shape"] == [spec["channels"], spec["height"], spec["width"]]
    assert {name: t["shape"] for name, t in served["layers"].items()} == \
        {layer["name"]: layer["output_shape"] for layer in layers}
    assert list(tensor(served["input"]).shape) == served["input"]["shape"]
