"""POST /api/models/{model}/attributions and GET /api/attributions/methods.

Every method's map, served over HTTP, equals Captum called directly on a fresh copy of the model
(built from its factory and weights) or plain autograd, for both built-in models and a residual
net; bad options get a 422 naming the option; the methods list is complete; concurrent requests
get the answers they get alone, and the modules they share never carry a hook or a `.grad`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from torch import nn

from convscope.config import Settings
from convscope.engine.attribution import replica
from convscope.engine.attribution.registry import METHODS
from convscope.engine.graph import build_graph
from convscope.main import create_app
from tests import ROOT
from tests.api.rebuild import MODELS, tensor, to_wire
from tests.api.test_concurrency import drawn
from tests.api.test_errors import PNG, check_error
from tests.api.test_exact import drawn_png
from tests.engine.attribution.reference import arguments, card_input, fresh, reference, same
from tests.nets import make

# What the API chooses when the request does not say (layers.default_layer, occlusion.default_window).
DEFAULT_LAYER = {"mnist-lenet": "act2", "fashion-tinyvgg": "act2_2", "mini-resnet": "layer1.1.downsample.0"}
FIRST_CONV = {"mnist-lenet": "conv1", "fashion-tinyvgg": "conv1_1", "mini-resnet": "conv1"}
# Non-default options for each method, as JSON sends them.
CHOSEN: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"steps": 16, "baseline": "black"},
    "smoothgrad": {"samples": 8, "stdevs": 0.2, "seed": 7},
    "occlusion": {"window": [3, 5], "stride": [2, 3], "baseline": "black"},
}


@pytest.fixture(scope="module")
def plain() -> dict[str, nn.Module]:
    return {model: fresh(model) for model in MODELS}


@pytest.fixture(scope="module")
def samples(client: TestClient) -> dict[str, list[dict[str, Any]]]:
    return {model: client.get(f"/api/models/{model}/samples").json()["samples"] for model in MODELS}


def chosen(method: str, model: str) -> dict[str, Any]:
    if method in ("grad_cam", "guided_grad_cam"):
        return {"layer": FIRST_CONV[model]}
    return dict(CHOSEN.get(method, {}))


def check_answer(served: dict[str, Any], model: str, method: str, target: int | None, options: dict[str, Any],
                 net: nn.Module, spec: dict[str, Any], classes: list[str]) -> None:
    """The served answer equals the reference computed on the input the API says it used."""
    x = tensor(served["input"]).unsqueeze(0)
    with torch.no_grad():
        logits = net(x)[0]
    expected = int(logits.argmax()) if target is None else target
    what = f"{model} {method} {options} target={target}"
    assert (served["method"], served["target"], served["label"]) == (method, expected, classes[expected]), what
    # The same forward on the same float32 input, and JSON carries a float32 exactly: bit for bit.
    assert served["score"] == float(logits[expected]), what
    assert served["prediction"]["index"] == int(logits.argmax()), what
    for key, value in options.items():
        assert served["options"][key] == value, f"{what}: options.{key}"
    if method == "occlusion" and "window" not in options:  # the documented default: a seventh of the shorter side
        assert served["options"]["window"] == [max(1, round(min(x.shape[2:]) / 7))] * 2, what
    kwargs = arguments(method, served["options"], x, spec["mean"], spec["std"], build_graph(net, list(x.shape[1:])))
    attribution, cam = reference(method, net, x, expected, **kwargs)
    same(tensor(served["attribution"]), attribution[0], what)
    if cam is None:
        assert served["layer"] is None and served["layer_attribution"] is None, what
    else:
        assert served["layer"] == options.get("layer", DEFAULT_LAYER[model]), what
        same(tensor(served["layer_attribution"]), cam[0], f"{what}: layer_attribution")


def post(client: Any, model: str, **kwargs: Any) -> dict[str, Any]:
    response = client.post(f"/api/models/{model}/attributions", **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("variant", ["defaults, JSON sample", "chosen, multipart upload", "chosen, query + tensor"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("model", MODELS)
def test_every_method_over_http_equals_captum_on_a_fresh_copy_of_the_model(
        client: TestClient, plain: dict[str, nn.Module], samples: dict[str, list[dict[str, Any]]], model: str,
        method: str, variant: str) -> None:
    spec, classes = card_input(model), client.get(f"/api/models/{model}").json()["classes"]
    listed = samples[model]
    if variant.startswith("defaults"):
        target, options = None, {}
        served = post(client, model, json={"sample": listed[len(listed) // 2]["id"], "method": method})
    elif variant.startswith("chosen, multipart"):
        target, options = 4, chosen(method, model)
        form = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in options.items()}
        served = post(client, model, files={"image": ("drawing.png", drawn_png(), "image/png")},
                      data={"method": method, "target": str(target), "encoding": "base64", **form})
    else:
        target, options = 7, chosen(method, model)
        x = post(client, model, json={"sample": listed[-1]["id"], "method": "saliency"})["input"]
        query = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in options.items()}
        served = post(client, model, params={"method": method, "target": target, **query}, json={"tensor": x})
    check_answer(served, model, method, target, options, plain[model], spec, classes)


# --- a residual net, served from a model card as a user would add one ----------------------------

@pytest.fixture(scope="module")
def resnet_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app serving tests/nets.py's MiniResNet (torchvision's block layout) from a card and weights."""
    folder: Path = tmp_path_factory.mktemp("models")
    model, shape = make("resnet")
    save_file(model.state_dict(), folder / "mini-resnet.safetensors")
    card = json.loads((ROOT / "models" / "mnist-lenet.json").read_text())
    card |= {"id": "mini-resnet", "name": "MiniResNet", "weights": "mini-resnet.safetensors", "samples": [],
             "architecture": {"factory": "tests.nets:MiniResNet", "kwargs": {}},
             "input": {"channels": 3, "height": shape[1], "width": shape[2], "mean": [0.5, 0.4, 0.3],
                       "std": [0.25, 0.2, 0.3], "framing": "resize-crop"}}
    (folder / "mini-resnet.json").write_text(json.dumps(card))
    with TestClient(create_app(Settings(models_dir=folder))) as test_client:
        yield test_client


@pytest.mark.parametrize("variant", ["defaults", "chosen"])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_on_a_residual_net_equals_captum_on_a_fresh_copy(resnet_client: TestClient, method: str,
                                                                      variant: str) -> None:
    net, shape = make("resnet")  # seeded: the same weights as the served copy, built afresh
    torch.manual_seed(5)
    x = torch.randn(shape)
    target, options = (None, {}) if variant == "defaults" else (2, chosen(method, "mini-resnet"))
    body = {"tensor": to_wire(x), "method": method, "target": target, **options}
    served = post(resnet_client, "mini-resnet", json=body, params={"encoding": "base64"})
    spec = {"mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]}
    check_answer(served, "mini-resnet", method, target, options, net, spec, [str(i) for i in range(10)])


# --- bad requests ---------------------------------------------------------------------------------

M = "/api/models/mnist-lenet/attributions"


def sample(**extra: Any) -> dict[str, Any]:
    return {"json": {"sample": "test-00000", **extra}}


# (case, path, request kwargs, status, words in the detail sentence)
CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("unknown model", "/api/models/resnet-9000/attributions", sample(method="saliency"), 404,
     "no model called 'resnet-9000'"),
    ("no method", M, sample(), 422, "'method': field required"),
    ("unknown method", M, sample(method="lime"), 422,
     "'method': there is no attribution method called 'lime'. The methods are: saliency, input_x_gradient, "
     "integrated_gradients, grad_cam, guided_backprop, guided_grad_cam, smoothgrad, occlusion"),
    ("option of another method", M, sample(method="saliency", steps=10), 422, "'steps' is not an option of saliency"),
    ("unknown JSON key", M, sample(method="saliency", colour="red"), 422, "'colour' is not a parameter"),
    ("steps out of range", M, sample(method="integrated_gradients", steps=10_000), 422,
     "'steps' must be a whole number from 1 to 256; got 10000"),
    ("steps zero in the query", f"{M}?method=integrated_gradients&steps=0", sample(), 422, "'steps' must be"),
    ("steps with a fraction", M, sample(method="integrated_gradients", steps=2.5), 422, "'steps'"),
    ("steps that is true", M, sample(method="integrated_gradients", steps=True), 422, "'steps'"),
    ("unknown baseline", M, sample(method="integrated_gradients", baseline="white"), 422,
     "'baseline' must be one of: zero, black; got 'white'"),
    ("too many samples", M, sample(method="smoothgrad", samples=1000), 422, "'samples' must be a whole number from 1 "
     "to 64"),
    ("NaN stdevs", f"{M}?method=smoothgrad&stdevs=nan", sample(), 422, "'stdevs' must be a finite number"),
    ("negative seed", M, sample(method="smoothgrad", seed=-3), 422, "'seed' must be a whole number from 0"),
    ("layer that is a linear layer", M, sample(method="grad_cam", layer="fc1"), 422,
     "'layer': 'fc1' is a linear layer with output [120], not feature maps"),
    ("unknown layer", f"{M}?method=guided_grad_cam&layer=conv9", sample(), 422,
     "'layer': this model has no layer called 'conv9'. The layers a layer method can use are: conv1, act1, pool1, "
     "conv2, act2, pool2"),
    ("window bigger than the image", M, sample(method="occlusion", window=[40, 4]), 422,
     "'window' [40, 4] is larger than the 28×28 input"),
    ("window of zero", f"{M}?method=occlusion&window=0", sample(), 422, "'window' must be a whole number or [height, "
     "width]"),
    ("window that is not a number", f"{M}?method=occlusion&window=big", sample(), 422, "'window'"),
    ("window with three numbers", M, sample(method="occlusion", window=[2, 2, 2]), 422, "'window' must be"),
    ("stride bigger than the window", M, sample(method="occlusion", window=3, stride=[4, 1]), 422,
     "'stride' [4, 1] is larger than the window [3, 3]"),
    ("target out of range", M, sample(method="grad_cam", target=10), 422, "'target' must be a class index from 0 to "
     "9; got 10"),
    ("target that is a word", M, sample(method="saliency", target="seven"), 422, "'target'"),
    ("NaN in the tensor", M, {"content": ('{"method": "saliency", "tensor": {"shape": [1, 28, 28], "data": [NaN'
                                          + ", 0" * 783 + "]}}").encode(), "headers": {"content-type":
                                                                                       "application/json"}},
     422, "nan"),
    ("tensor of the wrong shape", M, {"json": {"method": "saliency", "tensor": to_wire(torch.zeros(3, 28, 28))}},
     422, "shape"),
    ("float16 without base64", M, sample(method="saliency", dtype="float16"), 422, "needs encoding=base64"),
    ("no image", M, {"json": {"method": "saliency"}}, 422, "no image"),
    ("not an image", M, {"files": {"image": ("a.png", b"Dear ConvScope, hello.", "image/png")},
                         "data": {"method": "saliency"}}, 422, "looks like text"),
    ("unsupported content type", M, {"content": b"method=saliency", "headers": {"content-type": "text/plain"}}, 415,
     "does not read 'text/plain'"),
]


@pytest.mark.parametrize(("path", "kwargs", "status", "words"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_request_gets_its_status_and_a_sentence_naming_the_option(
        client: TestClient, path: str, kwargs: dict[str, Any], status: int, words: str) -> None:
    check_error(client.post(path, **kwargs), status, words)


def test_full_queue_answers_429() -> None:
    with TestClient(create_app(Settings(max_queued=0))) as busy:
        check_error(busy.post(M, json={"sample": "test-00000", "method": "saliency"}), 429, "busy")


# --- the methods endpoint ---------------------------------------------------------------------------

def test_methods_lists_every_method_with_its_sentence_and_typed_options(client: TestClient) -> None:
    answer = client.get("/api/attributions/methods")
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] is None
    listed = {m["name"]: m for m in body["methods"]}
    assert list(listed) == list(METHODS)
    for name, entry in listed.items():
        assert entry["summary"] == METHODS[name].summary and entry["summary"].endswith(".")
        assert entry["needs_layer"] == (name in ("grad_cam", "guided_grad_cam"))
        for option in entry["options"]:
            assert set(option) == {"name", "type", "default", "minimum", "maximum", "enum", "description"}
            assert option["type"] in ("integer", "number", "string", "integer_pair") and option["description"]
    options = {m: {o["name"]: o for o in e["options"]} for m, e in listed.items()}
    assert options["saliency"] == options["guided_backprop"] == {}
    assert options["integrated_gradients"]["steps"] | {"description": ""} == {
        "name": "steps", "type": "integer", "default": 50, "minimum": 1, "maximum": 256, "enum": None,
        "description": ""}
    assert options["integrated_gradients"]["baseline"]["enum"] == ["zero", "black"]
    assert set(options["smoothgrad"]) == {"samples", "stdevs", "seed"}
    assert options["smoothgrad"]["samples"]["maximum"] == 64
    assert set(options["occlusion"]) == {"window", "stride", "baseline"}
    assert options["occlusion"]["window"]["type"] == "integer_pair"
    assert [o["name"] for o in body["common"]] == ["target", "encoding", "dtype"]


def test_methods_for_a_model_fill_in_its_layers_and_defaults(client: TestClient) -> None:
    body = client.get("/api/attributions/methods", params={"model": "fashion-tinyvgg"}).json()
    assert body["model"] == "fashion-tinyvgg"
    options = {m["name"]: {o["name"]: o for o in m["options"]} for m in body["methods"]}
    layer = options["grad_cam"]["layer"]
    assert layer["default"] == "act2_2" and layer["enum"][0] == "conv1_1" and "classifier" not in layer["enum"]
    assert options["occlusion"]["window"]["default"] == [4, 4]
    assert options["occlusion"]["stride"]["default"] == [2, 2]
    assert body["common"][0]["maximum"] == 9
    # The defaults it lists are the ones a request without options gets.
    served = post(client, "fashion-tinyvgg", json={"sample": "test-00000", "method": "occlusion"})
    assert served["options"] == {"window": [4, 4], "stride": [2, 2], "baseline": "zero"}


def test_methods_for_an_unknown_model_is_404(client: TestClient) -> None:
    check_error(client.get("/api/attributions/methods", params={"model": "resnet-9000"}), 404,
                "no model called 'resnet-9000'")


def test_every_documented_query_parameter_and_form_field_works(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/api/models/{model}/attributions"]["post"]
    documented = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    form = set(op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]) - {"image"}
    listed = {o["name"] for m in client.get("/api/attributions/methods").json()["methods"] for o in m["options"]}
    assert documented == listed | {"method", "target", "encoding", "dtype", "sample"}
    assert form == documented - {"sample"}
    values = {"layer": "conv2", "steps": "4", "baseline": "black", "samples": "3", "stdevs": "0.1", "seed": "9",
              "window": "5,3", "stride": "2"}
    for entry in client.get("/api/attributions/methods").json()["methods"]:
        given = {o["name"]: values[o["name"]] for o in entry["options"]}
        common = {"method": entry["name"], "target": "1", "encoding": "base64", "dtype": "float16"}
        by_query = post(client, "mnist-lenet", params={**common, **given, "sample": "test-00000"})
        by_form = post(client, "mnist-lenet", files={"image": ("x.png", PNG, "image/png")}, data={**common, **given})
        for answer in (by_query, by_form):
            assert answer["target"] == 1 and answer["attribution"]["dtype"] == "float16", entry["name"]
            assert set(answer["options"]) == set(given), entry["name"]  # each took effect
            for key, value in given.items():
                assert str(answer["options"][key]).replace(" ", "").strip("[]") in (value, f"{value},{value}")


def test_base64_and_float16_carry_the_same_map_as_json(client: TestClient) -> None:
    body = {"sample": "test-00003", "method": "grad_cam"}
    as_json = post(client, "mnist-lenet", json=body)
    as_b64 = post(client, "mnist-lenet", json=body, params={"encoding": "base64"})
    as_f16 = post(client, "mnist-lenet", json=body, params={"encoding": "base64", "dtype": "float16"})
    for key in ("attribution", "layer_attribution", "input"):
        assert torch.equal(tensor(as_b64[key]), tensor(as_json[key])), key
        # float16 rounds to nearest: within half an ulp, 2⁻¹¹ relative, or 2⁻²⁵ among its subnormals.
        torch.testing.assert_close(tensor(as_f16[key]), tensor(as_json[key]), rtol=2**-11, atol=2**-25)
    assert as_b64["score"] == as_json["score"] and as_b64["options"] == as_json["options"]


# --- many at once -----------------------------------------------------------------------------------

CONCURRENT = 32


def plan(samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """32 different requests: both models, every method, chosen and default options and targets,
    samples, uploads, data URLs and tensors, JSON and base64 answers."""
    names = list(METHODS)
    requests = []
    for i in range(CONCURRENT):
        model, method = MODELS[i % 2], names[i % len(names)]
        options: dict[str, Any] = {"method": method, **(chosen(method, model) if i % 3 else {})}
        if i % 4 == 1:
            options["target"] = (i * 7) % 10
        if i % 5 == 0:
            options["encoding"] = "base64"
        if i % 8 == 7:
            form = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in options.items()}
            kwargs: dict[str, Any] = {"files": {"image": ("d.png", drawn(i), "image/png")}, "data": form}
        elif i % 8 == 3:
            png = base64.b64encode(drawn(i)).decode()
            kwargs = {"json": {"image": f"data:image/png;base64,{png}", **options}}
        else:
            kwargs = {"json": {"sample": samples[model][(i * 3) % len(samples[model])]["id"], **options}}
        requests.append({"url": f"/api/models/{model}/attributions", "kwargs": kwargs})
    return requests


async def send(http: httpx.AsyncClient, request: dict[str, Any]) -> Any:
    response = await http.post(request["url"], **request["kwargs"])
    assert response.status_code == 200, response.text
    return response.json()


async def alone_then_together(http: httpx.AsyncClient, requests: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    alone = [await send(http, r) for r in requests]
    together = await asyncio.gather(*(send(http, r) for r in requests))
    backwards = await asyncio.gather(*(send(http, r) for r in reversed(requests)))
    return alone, [*together, *reversed(backwards)]


def check_same(requests: list[dict[str, Any]], alone: list[Any], concurrent: list[Any]) -> None:
    assert {a["method"] for a in alone} == set(METHODS)
    distinct = {(a["model"], a["method"], a["target"], json.dumps(a["attribution"]["data"])[:2000]) for a in alone}
    assert len(distinct) >= CONCURRENT * 3 // 4, len(distinct)
    for i, answer in enumerate(concurrent):
        assert answer == alone[i % CONCURRENT], f"request {i % CONCURRENT} ({requests[i % CONCURRENT]}) differs"


def test_32_concurrent_mixed_attributions_on_a_real_server_equal_the_same_requests_made_alone(
        live_server: str) -> None:
    samples = {m: httpx.get(f"{live_server}/api/models/{m}/samples", timeout=10).json()["samples"] for m in MODELS}
    requests = plan(samples)

    async def run() -> tuple[list[Any], list[Any]]:
        limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
        async with httpx.AsyncClient(base_url=live_server, timeout=120, limits=limits) as http:
            return await alone_then_together(http, requests)

    check_same(requests, *asyncio.run(run()))


def test_concurrent_attributions_never_hook_or_write_grad_on_the_shared_modules(
        samples: dict[str, list[dict[str, Any]]]) -> None:
    """The same 32 requests in-process (worker threads, as on the server), while a watcher thread keeps
    checking every shared module for hooks and gradients; afterwards the pool holds no more replicas
    than ever ran at once."""
    app = create_app()
    requests = plan(samples)
    seen: list[str] = []
    looks = [0]
    done = threading.Event()

    def watch(graphs: list[Any]) -> None:
        while not done.is_set():
            seen.extend(found for g in graphs if (found := replica.leftovers(g.module)))
            looks[0] += 1
            done.wait(0.0005)

    async def run() -> tuple[list[Any], list[Any]]:
        async with app.router.lifespan_context(app):
            graphs = [m.graph for m in app.state.registry]
            before = [{k: v.clone() for k, v in g.module.state_dict().items()} for g in graphs]
            watcher = threading.Thread(target=watch, args=(graphs,))
            watcher.start()
            try:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://convscope") as http:
                    answers = await alone_then_together(http, requests)
            finally:
                done.set()
                watcher.join()
            for graph, state in zip(graphs, before):
                assert replica.leftovers(graph.module) == ""
                assert all(p.requires_grad and p.grad is None for p in graph.module.parameters())
                assert all(torch.equal(state[k], v) for k, v in graph.module.state_dict().items())
                assert 1 <= replica.idle_count(graph) <= app.state.settings.compute_slots
            return answers

    alone, concurrent = asyncio.run(run())
    assert looks[0] > 50, "the watcher hardly looked"
    assert not seen, f"a shared module carried temporary state during the run: {seen[:3]}"
    check_same(requests, alone, concurrent)
