"""Summary forwards and kept runs: summaries equal plain PyTorch, fetched layers equal plain forward's
bit for bit, the run cache evicts by bytes and says so, and requests stay correct without it."""

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from torch import Tensor, nn

from convscope.client import ConvScopeClient, NotFoundError, Sample
from convscope.config import Settings
from convscope.main import create_app
from tests import ROOT
from tests.api.rebuild import MODELS, plain_builtin, tensor, to_wire
from tests.nets import make
from tests.tolerance import gamma64

NETS = ("residual", "resnet", "mixed", "inplace")  # tests/nets.py, served from model cards
SAMPLE = "test-00000"


# --- references in plain PyTorch, written here without app/ ------------------------------------

def plain_thumbnail(t: Tensor, size: int) -> Tensor:
    """The documented thumbnail: [C, H, W] channels pooled to at most size × size; [N] up to 1024."""
    if t.dim() == 1:
        return t if t.numel() <= 1024 else F.adaptive_avg_pool1d(t[None, None], 1024)[0, 0]
    return F.adaptive_avg_pool2d(t, (min(t.shape[1], size), min(t.shape[2], size)))


def plain_layers(net: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Layer outputs [no batch dim] by plain PyTorch: the net's hand-written reference if it has one
    (every layer), else forward hooks on its leaf modules (each module's first call, by its path)."""
    net = copy.deepcopy(net)
    with torch.no_grad():
        if hasattr(net, "reference"):
            return {name: t[0] for name, t in net.reference(x.clone()).items()}  # type: ignore[operator]
        outputs: dict[str, Tensor] = {}

        def keep(name: str) -> Any:
            def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
                outputs.setdefault(name, output)
                return output.clone()  # later in-place ops change the clone, not what we keep

            return hook

        leaves = [(name, m) for name, m in net.named_modules() if name and not list(m.children())]
        handles = [m.register_forward_hook(keep(name)) for name, m in leaves]
        try:
            net(x.clone())
        finally:
            for handle in handles:
                handle.remove()
    return {name: t[0] for name, t in outputs.items()}


# --- apps and requests ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nets_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model cards and weights for tests/nets.py's networks, as a user would add them."""
    folder: Path = tmp_path_factory.mktemp("models")
    base = json.loads((ROOT / "models" / "mnist-lenet.json").read_text())
    for name in NETS:
        net, shape = make(name)
        save_file(net.state_dict(), folder / f"{name}.safetensors")
        card = base | {"id": f"net-{name}", "name": name, "weights": f"{name}.safetensors", "samples": [],
                       "architecture": {"factory": f"tests.nets:{type(net).__name__}", "kwargs": {}},
                       "input": {"channels": shape[0], "height": shape[1], "width": shape[2],
                                 "mean": [0.5] * shape[0], "std": [0.25] * shape[0], "framing": "resize-crop"}}
        (folder / f"net-{name}.json").write_text(json.dumps(card))
    return folder


@pytest.fixture(scope="module")
def nets_client(nets_folder: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models_dir=nets_folder))) as test_client:
        yield test_client


def post(client: TestClient, model: str, body: dict[str, Any], **options: Any) -> dict[str, Any]:
    response = client.post(f"/api/models/{model}/forward", json=body | options)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def get_layer(client: TestClient, model: str, run: str, layer: str, **query: str) -> httpx.Response:
    response: httpx.Response = client.get(f"/api/models/{model}/runs/{run}/layers/{layer}", params=query)
    return response


def case(name: str, client: TestClient, nets_client: TestClient) -> tuple[TestClient, str, dict[str, Any], nn.Module]:
    """(app, model id, image part of the request, a fresh plain-PyTorch copy of the model)."""
    if name in MODELS:
        return client, name, {"sample": SAMPLE}, plain_builtin(name)
    net, shape = make(name)
    torch.manual_seed(7)
    return nets_client, f"net-{name}", {"tensor": to_wire(torch.randn(shape))}, net


def layer_names(client: TestClient, model: str) -> list[str]:
    return [layer["name"] for layer in client.get(f"/api/models/{model}").json()["layers"]]


# --- the answers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [None, 3, 32])
@pytest.mark.parametrize("name", [*MODELS, *NETS])
def test_summaries_equal_plain_pytorch_statistics_and_pooled_thumbnails_of_a_fresh_model(
        client: TestClient, nets_client: TestClient, name: str, size: int | None) -> None:
    app, model, image, net = case(name, client, nets_client)
    options: dict[str, Any] = {"summary": True, "encoding": "base64"} | ({} if size is None else {"thumbnail": size})
    served = post(app, model, image, **options)
    detail = app.get(f"/api/models/{model}").json()
    assert served["layers"] == {} and isinstance(served["run"], str)
    assert list(served["summaries"]) == [layer["name"] for layer in detail["layers"]]  # every layer, in order
    plain = plain_layers(net, tensor(served["input"])[None])
    compared = 0
    for layer in detail["layers"]:
        s, ref = served["summaries"][layer["name"]], plain.get(layer["name"])
        assert s["shape"] == layer["output_shape"]
        if ref is None:
            continue
        what = f"{model} {layer['name']}"
        values = ref.double()
        assert s["shape"] == list(ref.shape), what
        assert s["min"] == float(values.min()), what  # a min and a max round nothing
        assert s["max"] == float(values.max()), what
        # numpy's two-pass float64 mean and std against torch's: the same n terms in two orders (test_summary.py).
        n, mean, std = values.numel(), float(values.mean()), float(values.std(correction=0))
        assert abs(s["mean"] - mean) <= 2 * gamma64(n + 1) * float(values.abs().mean()), what
        assert (abs(s["std"] - std) <= gamma64(n + 3) * (1 + mean**2 / std**2) * std) if std else s["std"] == 0, what
        thumb = tensor(s["thumbnail"])
        expected = plain_thumbnail(ref, size or 8)
        assert list(thumb.shape) == list(expected.shape), what
        if ref.dim() == 3:
            assert all(side <= (size or 8) for side in thumb.shape[1:]), what
        # The same ops on the same float32 input at the same thread count: bit for bit.
        torch.testing.assert_close(thumb, expected, atol=0, rtol=0, msg=lambda m: f"{what}: {m}")
        compared += 1
    if hasattr(net, "reference") or name in MODELS:
        assert compared == len(detail["layers"])
    else:  # hooks see module calls only; MiniResNet's residual additions are checked bit-exact below
        assert compared >= len([la for la in detail["layers"] if la["module"] == la["name"]]) > 0


@pytest.mark.parametrize("name", [*MODELS, *NETS])
def test_every_fetched_layer_equals_plain_forwards_output_bit_for_bit(
        client: TestClient, nets_client: TestClient, name: str) -> None:
    app, model, image, _ = case(name, client, nets_client)
    brief = post(app, model, image, summary=True, encoding="base64")
    full = post(app, model, image, encoding="base64")
    assert brief["input"] == full["input"] and brief["prediction"] == full["prediction"]
    for layer, expected in full["layers"].items():
        got = get_layer(app, model, brief["run"], layer, encoding="base64", dtype="float32")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body == {"model": model, "run": brief["run"], "layer": layer, "tensor": expected}  # same bytes
        fetched = tensor(body["tensor"])
        # The thumbnail is exactly the pooling of the very tensor that is served.
        assert torch.equal(tensor(brief["summaries"][layer]["thumbnail"]), plain_thumbnail(fetched, 8)), layer
    got_input = get_layer(app, model, brief["run"], "input", encoding="base64").json()
    assert got_input["tensor"] == full["input"]


def test_plain_forward_is_unchanged_but_for_run_null(client: TestClient) -> None:
    body = post(client, MODELS[0], {"sample": SAMPLE})
    assert list(body) == ["model", "input", "prediction", "run", "layers"]
    assert body["run"] is None and list(body["layers"]) == layer_names(client, MODELS[0])


def test_summary_answer_has_the_documented_keys_and_layers_narrows_summaries_and_run(client: TestClient) -> None:
    model = MODELS[0]
    names = layer_names(client, model)
    body = post(client, model, {"sample": SAMPLE}, summary=True, layers=[names[3], names[0]])
    assert list(body) == ["model", "input", "prediction", "run", "layers", "summaries"]
    assert list(body["summaries"]) == [names[0], names[3]]  # execution order
    assert set(body["summaries"][names[0]]) == {"shape", "min", "max", "mean", "std", "thumbnail"}
    assert get_layer(client, model, body["run"], names[3]).status_code == 200
    missing = get_layer(client, model, body["run"], names[1])
    assert missing.status_code == 404
    assert missing.json()["detail"] == (
        f"Run '{body['run']}' holds only the layers its forward was asked for ({names[0]}, {names[3]}). "
        f"Ask forward for this layer with layers={names[1]}.")


def test_summary_tensors_honour_encoding_and_dtype(client: TestClient) -> None:
    model = MODELS[1]
    as_json = post(client, model, {"sample": SAMPLE}, summary=True)
    as_b64 = post(client, model, {"sample": SAMPLE}, summary=True, encoding="base64")
    as_f16 = post(client, model, {"sample": SAMPLE}, summary=True, encoding="base64", dtype="float16")
    for name, s in as_json["summaries"].items():
        assert isinstance(s["thumbnail"]["data"], list)
        assert {k: v for k, v in s.items() if k != "thumbnail"} == \
               {k: v for k, v in as_b64["summaries"][name].items() if k != "thumbnail"}
        assert torch.equal(tensor(s["thumbnail"]), tensor(as_b64["summaries"][name]["thumbnail"]))
        half = as_f16["summaries"][name]["thumbnail"]
        assert half["dtype"] == "float16"
        # float16 rounds to nearest: within half an ulp, 2⁻¹¹ relative, or 2⁻²⁵ among its subnormals.
        torch.testing.assert_close(tensor(half), tensor(s["thumbnail"]), rtol=2.0**-11, atol=2.0**-25)
    layer = next(iter(as_json["summaries"]))
    full = post(client, model, {"sample": SAMPLE}, layers=[layer])["layers"][layer]
    assert get_layer(client, model, as_json["run"], layer).json()["tensor"] == full  # JSON lists, equal
    f16 = get_layer(client, model, as_json["run"], layer, encoding="base64", dtype="float16").json()["tensor"]
    assert f16["dtype"] == "float16" and f16["shape"] == full["shape"]


def test_summary_and_thumbnail_work_as_query_parameters_and_form_fields(client: TestClient) -> None:
    model = MODELS[0]
    png = (ROOT / "models" / "samples" / model / f"{SAMPLE}.png").read_bytes()
    by_query = client.post(f"/api/models/{model}/forward?summary=true&thumbnail=4&encoding=base64",
                           json={"sample": SAMPLE}).json()
    by_form = client.post(f"/api/models/{model}/forward", files={"image": ("x.png", png, "image/png")},
                          data={"summary": "true", "thumbnail": "4", "encoding": "base64"}).json()
    by_json = post(client, model, {"sample": SAMPLE}, summary=True, thumbnail=4, encoding="base64")
    for body in (by_query, by_form):
        assert body["summaries"] == by_json["summaries"] and body["layers"] == {}
    assert by_json["summaries"]["conv1"]["thumbnail"]["shape"] == [6, 4, 4]


@pytest.mark.parametrize("options, sentence", [
    ({"summary": True, "thumbnail": 0}, "'thumbnail': Input should be greater than or equal to 1."),
    ({"summary": True, "thumbnail": 33}, "'thumbnail': Input should be less than or equal to 32."),
    ({"summary": True, "thumbnail": True}, "'thumbnail': Value error, a thumbnail side is a whole number, "
                                           "not true or false."),
    ({"summary": "maybe"}, "'summary': Input should be a valid boolean, unable to interpret input."),
    ({"thumbnail": 4}, "thumbnail needs summary=true: without it forward sends every full tensor, no thumbnails."),
])
def test_bad_summary_options_are_refused_with_a_sentence(client: TestClient, options: dict[str, Any],
                                                         sentence: str) -> None:
    response = client.post(f"/api/models/{MODELS[0]}/forward", json={"sample": SAMPLE} | options)
    assert response.status_code == 422 and response.json()["detail"] == sentence


def test_other_endpoints_refuse_summary(client: TestClient) -> None:
    for endpoint, body in (("step", {}), ("attributions", {"method": "saliency"})):
        response = client.post(f"/api/models/{MODELS[0]}/{endpoint}?summary=true", json={"sample": SAMPLE, **body})
        assert response.status_code == 422, endpoint
        assert response.json()["detail"] == "'summary' is not a parameter this endpoint knows.", endpoint


# --- the run endpoint's errors -----------------------------------------------------------------

def test_an_unknown_run_is_404_with_the_sentence_that_says_what_to_do(client: TestClient) -> None:
    response = get_layer(client, MODELS[0], "abc123", "conv1")
    assert response.status_code == 404
    assert response.json() == {"detail": "Run 'abc123' is no longer kept: the server keeps the most recent forward "
                                         "runs up to 256 MiB. Run forward again (or ask for this layer with "
                                         "layers=conv1)."}


def test_a_run_of_another_model_unknown_layers_and_bad_queries_are_refused(client: TestClient) -> None:
    run = post(client, MODELS[0], {"sample": SAMPLE}, summary=True)["run"]
    shared = "flatten"  # a layer name both built-in models have
    assert shared in layer_names(client, MODELS[1])
    other = get_layer(client, MODELS[1], run, shared)
    assert other.status_code == 404
    assert other.json()["detail"] == f"Run '{run}' is a forward run of model '{MODELS[0]}', not of '{MODELS[1]}'."
    unknown = get_layer(client, MODELS[0], run, "nope")
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("This model has no layer called 'nope'.")
    no_model = get_layer(client, "resnet", run, "conv1")
    assert no_model.status_code == 404 and no_model.json()["detail"].startswith("There is no model called 'resnet'.")
    half_json = get_layer(client, MODELS[0], run, "conv1", dtype="float16")
    assert half_json.status_code == 422
    assert half_json.json()["detail"] == "dtype=float16 needs encoding=base64: JSON numbers are not stored as float16."
    bad = get_layer(client, MODELS[0], run, "conv1", encoding="xml")
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], str)
    assert get_layer(client, MODELS[0], run, "conv1").status_code == 200  # the run itself is fine


# --- the cache: eviction, budget, off --------------------------------------------------------------

def one_run_bytes() -> int:
    """What one mnist-lenet summary forward of every layer keeps (views of one storage counted once)."""
    with TestClient(create_app(Settings(run_cache_bytes=2**30))) as app:
        post(app, MODELS[0], {"sample": SAMPLE}, summary=True)
        size: int = app.app.state.forward_runs.nbytes  # type: ignore[attr-defined]
    return size


def test_least_recently_used_runs_are_evicted_by_bytes_then_404_and_forward_with_layers_gives_the_tensor(
        client: TestClient) -> None:
    size = one_run_bytes()
    model, layer = MODELS[0], "conv1"
    samples = [s["id"] for s in client.get(f"/api/models/{model}/samples").json()["samples"]]
    with TestClient(create_app(Settings(run_cache_bytes=2 * size + size // 2))) as small:  # two runs fit
        first, second = (post(small, model, {"sample": s}, summary=True)["run"] for s in samples[:2])
        assert first and second
        assert get_layer(small, model, first, layer).status_code == 200  # `second` is now least recently used
        third = post(small, model, {"sample": samples[2]}, summary=True)["run"]
        assert third
        gone = get_layer(small, model, second, layer)
        assert gone.status_code == 404
        detail = gone.json()["detail"]
        assert detail.startswith(f"Run '{second}' is no longer kept: the server keeps the most recent forward runs "
                                 f"up to ") and detail.endswith(" KiB. Run forward again (or ask for this layer "
                                                                f"with layers={layer}).")
        for kept, sample in ((first, samples[0]), (third, samples[2])):
            got = get_layer(small, model, kept, layer, encoding="base64")
            expected = post(small, model, {"sample": sample}, layers=[layer], encoding="base64")["layers"][layer]
            assert got.status_code == 200 and got.json()["tensor"] == expected
        # The page's fallback once a run is gone: forward for just that layer.
        again = post(small, model, {"sample": samples[1]}, layers=[layer], encoding="base64")["layers"][layer]
        full = post(client, model, {"sample": samples[1]}, encoding="base64")["layers"][layer]
        assert again == full
        # A run larger than the whole budget is not kept, and pushes nothing out.
    with TestClient(create_app(Settings(run_cache_bytes=size - 1))) as tiny:
        body = post(tiny, model, {"sample": SAMPLE}, summary=True)
        assert body["run"] is None and list(body["summaries"]) == layer_names(tiny, model)
        narrow = post(tiny, model, {"sample": SAMPLE}, summary=True, layers=[layer])
        assert isinstance(narrow["run"], str)  # one layer fits
        assert get_layer(tiny, model, narrow["run"], layer).status_code == 200


def test_with_the_cache_off_run_is_null_and_forward_with_layers_gives_the_same_tensor(client: TestClient) -> None:
    model = MODELS[1]
    kept = post(client, model, {"sample": SAMPLE}, summary=True, encoding="base64")
    with TestClient(create_app(Settings(run_cache_bytes=0))) as off:
        body = post(off, model, {"sample": SAMPLE}, summary=True, encoding="base64")
        assert body["run"] is None
        assert body["summaries"] == kept["summaries"] and body["prediction"] == kept["prediction"]
        refused = get_layer(off, model, kept["run"], "pool1")
        assert refused.status_code == 404
        assert refused.json()["detail"] == (
            f"Run '{kept['run']}' is not kept: this server keeps no forward runs (its run cache is off). "
            "Ask forward for this layer with layers=pool1.")
        for layer in body["summaries"]:
            fallback = post(off, model, {"sample": SAMPLE}, layers=[layer], encoding="base64")["layers"][layer]
            assert fallback == get_layer(client, model, kept["run"], layer, encoding="base64").json()["tensor"]


def test_the_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVSCOPE_RUN_CACHE_BYTES", raising=False)
    assert Settings().run_cache_bytes == 256 * 1024 * 1024
    monkeypatch.setenv("CONVSCOPE_RUN_CACHE_BYTES", "0")
    assert Settings().run_cache_bytes == 0


# --- many requests at once, on a real server ------------------------------------------------------

CONCURRENT = 32


async def concurrent_runs(base_url: str, requests: list[tuple[str, str]]) -> tuple[list[Any], list[Any], list[Any]]:
    """Alone: plain and summary forward of each request one by one. Together: the summary forwards all
    at once, then every layer of every run fetched all at once."""
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
        async def forward(model: str, sample: str, **options: Any) -> Any:
            response = await http.post(f"/api/models/{model}/forward",
                                       json={"sample": sample, "encoding": "base64"} | options)
            assert response.status_code == 200, response.text
            return response.json()

        async def fetch(model: str, run: str, layer: str) -> Any:
            response = await http.get(f"/api/models/{model}/runs/{run}/layers/{layer}", params={"encoding": "base64"})
            assert response.status_code == 200, response.text
            return response.json()

        alone = [(await forward(m, s), await forward(m, s, summary=True)) for m, s in requests]
        together = await asyncio.gather(*(forward(m, s, summary=True) for m, s in requests))
        wanted = [(i, layer) for i, (plain, _) in enumerate(alone) for layer in plain["layers"]]
        fetched = await asyncio.gather(*(fetch(requests[i][0], together[i]["run"], layer) for i, layer in wanted))
    return alone, together, list(zip(wanted, fetched))


def test_32_concurrent_summary_forwards_each_fetch_their_own_tensors_by_run_id(live_server: str) -> None:
    samples = {m: [s["id"] for s in httpx.get(f"{live_server}/api/models/{m}/samples", timeout=10).json()["samples"]]
               for m in MODELS}
    requests = [(MODELS[i % 2], samples[MODELS[i % 2]][i // 2]) for i in range(CONCURRENT)]
    assert len(set(requests)) == CONCURRENT  # different samples
    alone, together, fetched = asyncio.run(concurrent_runs(live_server, requests))
    assert len({t["run"] for t in together}) == CONCURRENT
    for (plain, brief), body in zip(alone, together):
        assert body["model"] == plain["model"] and body["input"] == plain["input"]
        assert body["prediction"] == plain["prediction"] and body["summaries"] == brief["summaries"]
    for (i, layer), body in fetched:
        assert body["run"] == together[i]["run"] and body["layer"] == layer
        assert body["tensor"] == alone[i][0]["layers"][layer], f"request {i} {requests[i]} layer {layer}"


# --- the Python client --------------------------------------------------------------------------

def test_client_summary_forward_and_layer_fetch(live_server: str) -> None:
    model = MODELS[0]
    with ConvScopeClient(live_server) as cs:
        plain = cs.forward(model, Sample(SAMPLE))
        assert plain.summaries == {} and plain.run is None
        brief = cs.forward(model, Sample(SAMPLE), summary=True)
        assert brief.layers == {} and isinstance(brief.run, str)
        assert list(brief.summaries) == list(plain.layers)
        for name, full in plain.layers.items():
            s = brief.summaries[name]
            assert s.shape == list(full.shape)
            assert s.min == float(full.min()) and s.max == float(full.max())  # float32 values, exactly
            values = full.double()  # numpy's float64 mean and std against torch's: two orders of the same n terms
            n, mean, std = values.numel(), float(values.mean()), float(values.std(correction=0))
            assert abs(s.mean - mean) <= 2 * gamma64(n + 1) * float(values.abs().mean())
            assert (abs(s.std - std) <= gamma64(n + 3) * (1 + mean**2 / std**2) * std) if std else s.std == 0
            assert torch.equal(s.thumbnail, plain_thumbnail(full, 8))
            assert torch.equal(cs.layer(model, brief.run, name), full)
        assert torch.equal(cs.layer(model, brief.run, "input"), plain.input)
        by_file = cs.forward(model, ROOT / "models" / "samples" / model / f"{SAMPLE}.png", summary=True, thumbnail=2)
        assert by_file.summaries["conv1"].thumbnail.shape == (6, 2, 2) and by_file.run is not None
        with pytest.raises(NotFoundError, match="is no longer kept"):
            cs.layer(model, "not-a-run", "conv1")


# --- backward in brief (the page's Backward overview for a large model) --------------------------

def plain_gradients(net: nn.Module, x: Tensor, target: int) -> dict[str, Tensor]:
    """d(cross-entropy for `target`)/d(each layer's output) [no batch dim], by torch.autograd on the
    net's hand-written reference (every layer, the last one the logits)."""
    net = copy.deepcopy(net)
    outputs: dict[str, Tensor] = net.reference(x.clone())  # type: ignore[operator]
    loss = F.cross_entropy(list(outputs.values())[-1], torch.tensor([target]))
    grads = torch.autograd.grad(loss, list(outputs.values()))
    return {name: g[0] for name, g in zip(outputs, grads)}


@pytest.mark.parametrize("name", ["residual", "mixed"])
def test_backward_summaries_equal_autograd_statistics_and_pooled_thumbnails(nets_client: TestClient, name: str) -> None:
    _, model, image, net = case(name, nets_client, nets_client)
    first = layer_names(nets_client, model)[1]
    response = nets_client.post(f"/api/models/{model}/backward",
                                json=image | {"summary": True, "layers": [first], "encoding": "base64", "target": 3})
    assert response.status_code == 200, response.text
    served = response.json()
    assert list(served["layers"]) == [first], "in full: only the layers named"
    assert list(served["summaries"]) == layer_names(nets_client, model), "in brief: every layer, in order"
    plain = plain_gradients(net, tensor(served["input"])[None], 3)
    assert list(plain) == list(served["summaries"])
    for layer, g in plain.items():
        s, values = served["summaries"][layer], g.double()
        assert s["shape"] == list(g.shape), layer
        assert (s["min"], s["max"]) == (float(values.min()), float(values.max())), layer  # nothing rounds
        # numpy's float64 mean and std against torch's: two orders of the same n terms (test_summary.py).
        n, mean, std = values.numel(), float(values.mean()), float(values.std(correction=0))
        assert abs(s["mean"] - mean) <= 2 * gamma64(n + 1) * float(values.abs().mean()), layer
        assert (abs(s["std"] - std) <= gamma64(n + 3) * (1 + mean**2 / std**2) * std) if std else s["std"] == 0, layer
        # The same autograd ops on the same float32 input at the same thread count: bit for bit.
        torch.testing.assert_close(tensor(s["thumbnail"]), plain_thumbnail(g, 8), atol=0, rtol=0)
    torch.testing.assert_close(tensor(served["layers"][first]["activation_gradient"]), plain[first], atol=0, rtol=0)


def test_backward_without_summary_is_unchanged_and_summary_without_layers_sends_none_in_full(client: TestClient) -> None:
    plain = client.post("/api/models/mnist-lenet/backward", json={"sample": SAMPLE}).json()
    assert "summaries" not in plain and len(plain["layers"]) == len(layer_names(client, "mnist-lenet"))
    brief = client.post("/api/models/mnist-lenet/backward?summary=true", json={"sample": SAMPLE}).json()
    assert brief["layers"] == {} and list(brief["summaries"]) == layer_names(client, "mnist-lenet")
    assert brief["loss"] == plain["loss"] and brief["input_gradient"] == plain["input_gradient"]
    bad = client.post("/api/models/mnist-lenet/backward", json={"sample": SAMPLE, "summary": True, "thumbnail": 0})
    assert bad.status_code == 422 and "thumbnail" in bad.json()["detail"]


def test_client_summary_backward(live_server: str) -> None:
    model = MODELS[0]
    with ConvScopeClient(live_server) as cs:
        full = cs.backward(model, Sample(SAMPLE), target=2)
        brief = cs.backward(model, Sample(SAMPLE), target=2, layers=["conv1"], summary=True, thumbnail=4)
        assert list(brief.activation_gradients) == ["conv1"] and brief.loss == full.loss
        assert torch.equal(brief.activation_gradients["conv1"], full.activation_gradients["conv1"])
        assert list(brief.summaries) == list(full.activation_gradients)
        for name, g in full.activation_gradients.items():
            s = brief.summaries[name]
            assert s.min == float(g.min()) and s.max == float(g.max())
            # The same ops on the same float32 input at the same thread count: bit for bit.
            torch.testing.assert_close(s.thumbnail, plain_thumbnail(g, 4), atol=0, rtol=0)
        assert full.summaries == {}
