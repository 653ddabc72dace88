"""POST /api/models/{model}/step: the served kernels before and after one optimizer step equal a fresh
torch.optim optimizer stepping a fresh copy of the model (factory + weights, plain autograd), and the
served model never changes."""

from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from convscope.optimizers import OPTIMIZERS
from convscope.schemas import ErrorBody, StepResponse
from tests.api.rebuild import LOSSES, MODELS, tensor
from tests.api.test_errors import PNG, check_error
from tests.api.test_exact import drawn_png
from tests.api.test_openapi import INFERENCE_ERRORS, key_problems
from tests.engine.test_step import TORCH_OPTIMIZERS, fresh_model, torch_step

M = "/api/models/mnist-lenet"


def post(client: TestClient, model: str, image: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """A step for a sample (JSON) by default, or for `image` given as TestClient kwargs (options as form fields)."""
    if image is None:
        response = client.post(f"/api/models/{model}/step", json={"sample": "test-00000", **options})
    else:
        response = client.post(f"/api/models/{model}/step", **image, data={k: str(v) for k, v in options.items()})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def served_input(client: TestClient, model: str, image: dict[str, Any] | None = None) -> torch.Tensor:
    """The [1, C, H, W] input the server made of this image (as forward returns it)."""
    layer = client.get(f"/api/models/{model}").json()["layers"][0]["name"]
    kwargs = image or {"json": {"sample": "test-00000"}}
    response = client.post(f"/api/models/{model}/forward", params={"layers": layer, "encoding": "base64"}, **kwargs)
    assert response.status_code == 200, response.text
    return tensor(response.json()["input"]).unsqueeze(0)


def check(served: dict[str, Any], ref: dict[str, Any], loss: str, optimizer: str, lr: float) -> None:
    assert (served["loss_function"], served["optimizer"], served["target"]) == (loss, optimizer, ref["target"])
    assert served["lr"] == lr
    # The reference (tests/engine/test_step.py) runs the same modules, loss and torch.optim step on the same
    # float32 input at the same thread count, and JSON carries float32 exactly: every number bit for bit.
    assert served["loss"] == ref["loss"]
    assert served["loss_after"] == ref["loss_after"]
    logits_after = ref["logits_after"][0]
    torch.testing.assert_close(torch.tensor(served["prediction_after"]["logits"]), logits_after, atol=0, rtol=0)
    assert served["prediction_after"]["index"] == int(logits_after.argmax())
    assert {(name, key) for name, group in served["layers"].items() for key in group} == set(ref["after"])
    for (name, key), after in ref["after"].items():
        got = {part: tensor(t) for part, t in served["layers"][name][key].items()}
        what = f"{optimizer} {name}.{key}"
        assert set(got) == {"before", "after", "gradient", "update"}
        torch.testing.assert_close(got["before"], ref["before"][(name, key)], atol=0, rtol=0, msg=what)
        torch.testing.assert_close(got["gradient"], ref["gradient"][(name, key)], atol=0, rtol=0, msg=what)
        torch.testing.assert_close(got["after"], after, atol=0, rtol=0, msg=what)
        torch.testing.assert_close(got["update"], got["after"] - got["before"], atol=0, rtol=0, msg=what)


def parameter_layers(client: TestClient, model: str) -> list[str]:
    return [layer["name"] for layer in client.get(f"/api/models/{model}").json()["layers"] if layer["parameters"]]


@pytest.mark.parametrize("optimizer", list(TORCH_OPTIMIZERS))
@pytest.mark.parametrize("model", MODELS)
def test_served_step_equals_a_fresh_torch_optimizer_on_a_fresh_copy(client: TestClient, model: str,
                                                                     optimizer: str) -> None:
    x, names = served_input(client, model), parameter_layers(client, model)
    default = post(client, model, optimizer=optimizer, encoding="base64")
    assert list(default["layers"]) == names  # every layer with parameters, in execution order
    lr = OPTIMIZERS[optimizer].step_lr
    check(default, torch_step(fresh_model(model), x, None, "cross_entropy", optimizer, lr, names),
          "cross_entropy", optimizer, lr)
    target = (default["target"] + 1) % 10
    chosen = post(client, model, optimizer=optimizer, target=target, lr=0.02, encoding="base64")
    check(chosen, torch_step(fresh_model(model), x, target, "cross_entropy", optimizer, 0.02, names),
          "cross_entropy", optimizer, 0.02)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", MODELS)
def test_every_loss_on_an_uploaded_image_and_chosen_layers_equals_torch(client: TestClient, model: str,
                                                                       loss: str) -> None:
    image = {"files": {"image": ("drawing.png", drawn_png(), "image/png")}}
    x, names = served_input(client, model, image), parameter_layers(client, model)
    layers = [names[0], names[-1]]
    served = post(client, model, image, loss=loss, target=4, optimizer="adam", lr=0.01, layers=",".join(layers),
                  encoding="base64")
    assert list(served["layers"]) == layers
    check(served, torch_step(fresh_model(model), x, 4, loss, "adam", 0.01, layers), loss, "adam", 0.01)


def test_options_work_as_query_parameters_and_json_equals_base64(client: TestClient) -> None:
    query = {"optimizer": "momentum", "lr": "0.3", "target": "2", "loss": "mse", "layers": "conv2,fc1"}
    by_query = client.post(f"{M}/step", params=query, json={"sample": "test-00000"})
    assert by_query.status_code == 200, by_query.text
    as_json = by_query.json()
    assert (as_json["optimizer"], as_json["lr"], as_json["target"]) == ("momentum", 0.3, 2)
    assert as_json["loss_function"] == "mse"
    assert as_json["hyperparameters"] == {"momentum": 0.9}
    assert list(as_json["layers"]) == ["conv2", "fc1"]
    as_b64 = post(client, "mnist-lenet", optimizer="momentum", lr=0.3, target=2, loss="mse", layers=["fc1", "conv2"],
                  encoding="base64")
    for name, group in as_json["layers"].items():
        for key, parts in group.items():
            for part, value in parts.items():
                assert "encoding" not in value
                assert torch.equal(tensor(value), tensor(as_b64["layers"][name][key][part])), (name, key, part)
    assert as_b64["loss_after"] == as_json["loss_after"]


def test_the_served_model_is_untouched_by_steps(client: TestClient) -> None:
    names = parameter_layers(client, "mnist-lenet")

    def weights() -> dict[str, Any]:
        return {name: client.get(f"{M}/layers/{name}/weights", params={"encoding": "base64"}).json() for name in names}

    before, forward = weights(), client.post(f"{M}/forward", json={"sample": "test-00000"}).json()
    for optimizer in TORCH_OPTIMIZERS:
        assert post(client, "mnist-lenet", optimizer=optimizer, lr=5, target=3)["loss_after"] is not None
    assert weights() == before
    assert client.post(f"{M}/forward", json={"sample": "test-00000"}).json() == forward
    graph = client.app.state.registry.get("mnist-lenet").graph  # type: ignore[attr-defined]
    assert all(p.grad is None for p in graph.module.parameters())


@pytest.mark.parametrize(("query", "body", "status", "words"), [
    ("optimizer=lbfgs", {}, 422, "'optimizer': Input should be 'sgd', 'momentum', 'adam', 'rmsprop' or 'adagrad'"),
    ("", {"lr": 0}, 422, "'lr': Input should be greater than 0"),
    ("lr=-1", {}, 422, "'lr': Input should be greater than 0"),
    ("lr=nan", {}, 422, "'lr': Input should be a finite number"),
    ("lr=inf", {}, 422, "'lr': Input should be a finite number"),
    ("lr=11", {}, 422, "'lr': Input should be less than or equal to 10"),
    ("lr=fast", {}, 422, "'lr'"),
    ("", {"lr": True}, 422, "'lr'"),
    ("layers=act1", {}, 422, "'layers': layer 'act1' has no parameters to update. The layers with parameters are: "
                             "conv1, conv2, fc1, fc2, fc3"),
    ("layers=", {}, 422, "'layers' is empty"),
    ("layers=conv1,conv99", {}, 404, "no layer called 'conv99'"),
    ("", {"target": 10}, 422, "from 0 to 9; got 10"),
    ("", {"loss": "hinge"}, 422, "'loss'"),
    ("", {"momentum": 0.5}, 422, "'momentum' is not a parameter"),
])
def test_bad_options_get_a_sentence_naming_the_option(client: TestClient, query: str, body: dict[str, Any],
                                                      status: int, words: str) -> None:
    response = client.post(f"{M}/step?{query}", json={"sample": "test-00000", **body})
    check_error(response, status, words)
    ErrorBody.model_validate(response.json())


def test_image_errors_are_those_of_every_inference_route(client: TestClient) -> None:
    check_error(client.post(f"{M}/step", files={"image": ("x.png", PNG[: len(PNG) * 2 // 3], "image/png")}), 422,
                "truncated")
    check_error(client.post("/api/models/resnet-9000/step", json={"sample": "test-00000"}), 404, "no model called")
    check_error(client.post(f"{M}/step", json={}), 422, "no image")
    check_error(client.post(f"{M}/forward?optimizer=adam", json={"sample": "test-00000"}), 422,
                "'optimizer' is not a parameter")


def test_openapi_declares_the_route_its_errors_options_and_every_answer_key(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/models/{model}/step"]["post"]
    assert INFERENCE_ERRORS <= set(op["responses"]) and "200" in op["responses"]
    assert "fresh" in op["description"] and "sign" in op["description"]
    query = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert {"layers", "encoding", "dtype", "target", "loss", "optimizer", "lr", "sample"} <= set(query)
    assert query["optimizer"]["schema"]["enum"] == list(TORCH_OPTIMIZERS)
    body = op["requestBody"]["content"]["application/json"]["schema"]
    for name, lr in ((o.id, o.step_lr) for o in OPTIMIZERS.values()):  # the defaults as documented are the engine's
        assert f"{name} {lr:g}" in query["lr"]["description"]
        assert f"{name} {lr:g}" in body["properties"]["lr"]["description"]
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"image", "optimizer", "lr", "target", "loss", "layers"} <= set(form)
    for example in body["examples"]:
        for model in MODELS:
            assert client.post(f"/api/models/{model}/step", json=example).status_code == 200

    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    answers = [post(client, model, **opts) for model in MODELS
               for opts in ({}, {"optimizer": "adam", "encoding": "base64"},
                            {"optimizer": "momentum", "encoding": "base64", "dtype": "float16",
                             "layers": parameter_layers(client, model)[:1]})]
    for answer in answers:
        StepResponse.model_validate(answer)
    assert not key_problems(spec, schema, answers, "POST /api/models/{model}/step")
    by_form = post(client, "mnist-lenet", {"files": {"image": ("x.png", PNG, "image/png")}}, optimizer="rmsprop",
                   lr="0.001", layers="conv1", encoding="base64", dtype="float16")
    assert (by_form["optimizer"], by_form["lr"], list(by_form["layers"])) == ("rmsprop", 0.001, ["conv1"])
    assert by_form["layers"]["conv1"]["weight"]["after"]["dtype"] == "float16"
