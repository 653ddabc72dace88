"""The training lab over HTTP: start, watch (server-sent events, parsed here), cancel, queue limits,
bad settings, and the trained model answering every model endpoint."""

import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from convscope.config import Settings
from convscope.main import create_app
from convscope.optimizers import OPTIMIZERS
from convscope.schemas import BackwardResponse, ErrorBody, ForwardResponse, ModelDetail
from convscope.training.nets import ACTIVATIONS, ARCHITECTURES, LOSSES, POOLINGS
from convscope.training.schemas import RunDetail, RunList, RunSummary, TrainingOptions
from tests.api.rebuild import tensor
from tests.api.test_openapi import key_problems
from tests.conftest import start_server

R = "/api/training/runs"
TINY = {"train_size": 32, "batch_size": 16, "steps": 2}
SHORT = {"train_size": 480, "batch_size": 32, "epochs": 2}
LONG = {"steps": 15000}  # minutes of training: only ever cancelled


@pytest.fixture(scope="module")
def app_client() -> Iterator[TestClient]:
    settings = Settings(fashion_mnist_dir=None, training_slots=1, training_max_queued=2)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def lab(app_client: TestClient) -> Iterator[TestClient]:
    """The module's app; every run still going when a test ends is cancelled."""
    yield app_client
    for run in app_client.get(R).json()["runs"]:
        if run["status"] in ("queued", "running"):
            assert app_client.delete(f"{R}/{run['id']}").status_code == 200


def sse(client: TestClient, url: str, headers: dict[str, str] | None = None,
        stop_after: int | None = None) -> list[dict[str, Any]]:
    """The server-sent events at url, parsed as a browser's EventSource would: id, event, data."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if fields:
                    events.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
                    fields = {}
                    if stop_after is not None and len(events) >= stop_after:
                        break
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
    return events


def start(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(R, json=body)
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    assert response.headers["location"] == run["urls"]["run"] == f"{R}/{run['id']}"
    return run


def until_started(client: TestClient, run: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """The run once the lab's consumer has taken it off the queue and started it."""
    deadline = time.monotonic() + timeout
    while (now := client.get(run["urls"]["run"]).json())["status"] == "queued":
        assert time.monotonic() < deadline, f"run {run['id']} is still queued"
        time.sleep(0.02)
    return now


def finish(client: TestClient, run: dict[str, Any]) -> dict[str, Any]:
    """Follow the run's events to the end; its final status."""
    events = sse(client, run["urls"]["events"])
    assert events[-1]["event"] == "end"
    detail: dict[str, Any] = client.get(run["urls"]["run"]).json()
    return detail


def test_options_list_every_choice_with_defaults_and_limits(lab: TestClient) -> None:
    options = TrainingOptions.model_validate(lab.get("/api/training/options").json())
    assert [o.id for o in options.optimizers] == list(OPTIMIZERS)
    assert {o.id: o.learning_rate for o in options.optimizers} == {
        "sgd": 0.1, "momentum": 0.01, "adam": 0.001, "rmsprop": 0.001, "adagrad": 0.01}
    assert [a.id for a in options.activations] == list(ACTIVATIONS) == ["relu", "sigmoid", "tanh", "leaky_relu"]
    assert [p.id for p in options.poolings] == list(POOLINGS) and [x.id for x in options.losses] == list(LOSSES)
    assert {a.id: a.parameter_count for a in options.architectures} == {"lenet": 61706, "tinyvgg": 14970}
    assert [(d.id, d.kind, d.train_size, d.test_size) for d in options.datasets] == [
        ("mnist", "subset", 6000, 1000), ("fashion-mnist", "subset", 6000, 1000)]
    assert options.defaults.optimizer == "adam" and options.limits.slots == 1 and options.limits.max_queued == 2


def test_a_short_run_streams_its_events_in_order_learns_and_becomes_a_model_like_the_built_ins(lab: TestClient) -> None:
    run = start(lab, **SHORT)
    assert run["status"] in ("queued", "running") and run["total_steps"] == 30 and run["model"] is None
    events = sse(lab, run["urls"]["events"])
    assert [e["id"] for e in events] == list(range(len(events))) == [e["data"]["seq"] for e in events]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 2 and kinds.count("end") == 1
    steps = [e["data"] for e in events if e["event"] == "step"]
    assert [s["step"] for s in steps] == list(range(1, 31))  # default log_every: 1 for 30 steps
    assert [e["data"]["step"] for e in events if e["event"] == "epoch"] == [15, 30]
    assert kinds.index("epoch") == kinds.index("step") + 15  # epoch 1 ends right after step 15
    assert sum(s["loss"] for s in steps[-5:]) < 0.8 * sum(s["loss"] for s in steps[:5])
    assert [s["progress"] for s in steps][-1] == 1.0 and all(s["eta"] >= 0 for s in steps)
    end = events[-1]["data"]
    assert end["status"] == "done" and end["model"] == f"run-{run['id']}" and end["test_accuracy"] > 0.5

    answer = lab.get(run["urls"]["run"]).json()
    assert answer["history"] == [e["data"] for e in events]
    detail = RunDetail.model_validate(answer)
    assert detail.status == "done" and detail.progress == 1.0 and detail.urls.model == f"/api/models/{end['model']}"
    assert detail.test_accuracy == end["test_accuracy"]

    # the trained model is served like a built-in one: summary, layers, weights, samples, forward, backward
    model = end["model"]
    assert model in [m["id"] for m in lab.get("/api/models").json()["models"]]
    info = ModelDetail.model_validate(lab.get(f"/api/models/{model}").json())
    assert info.test_accuracy == round(end["test_accuracy"], 4) and info.layers[0].name == events[0]["data"]["kernel_layer"]
    weights = lab.get(f"/api/models/{model}/layers/conv1/weights").json()
    assert torch.equal(tensor(weights["weight"]), tensor(steps[-1]["kernels"]))  # the last step event's kernels
    samples = lab.get(f"/api/models/{model}/samples").json()["samples"]
    assert len(samples) == 20
    png = lab.get(samples[0]["url"])
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    forward = lab.post(f"/api/models/{model}/forward", json={"sample": samples[0]["id"]})
    assert forward.status_code == 200, forward.text
    ForwardResponse.model_validate(forward.json())
    backward = lab.post(f"/api/models/{model}/backward", json={"sample": samples[0]["id"], "target": 3, "loss": "mse"})
    assert backward.status_code == 200, backward.text
    assert BackwardResponse.model_validate(backward.json()).layers["conv1"].weight_gradient is not None


CHOICES = [("optimizer", o) for o in OPTIMIZERS] + [("loss", x) for x in LOSSES] + [
    ("activation", a) for a in ACTIVATIONS] + [("pooling", p) for p in POOLINGS] + [
    ("architecture", a) for a in ARCHITECTURES] + [("dataset", "fashion-mnist")]


@pytest.mark.parametrize(("key", "value"), CHOICES)
def test_every_choice_is_accepted_trains_and_serves_its_model(lab: TestClient, key: str, value: str) -> None:
    run = start(lab, **TINY, **{key: value})
    assert run["settings"][key] == value
    detail = finish(lab, run)
    assert detail["status"] == "done", detail["reason"]
    assert detail["step"] == 2 and detail["loss"] is not None and 0 <= detail["test_accuracy"] <= 1
    card = lab.get(f"/api/models/{detail['model']}").json()
    assert card["parameter_count"] > 0
    assert lab.post(f"/api/models/{detail['model']}/forward", json={"sample": "test-00000"}).status_code == 200


def test_the_same_settings_and_seed_give_the_same_curve_and_weights(lab: TestClient) -> None:
    body = {**SHORT, "epochs": 1, "optimizer": "rmsprop", "activation": "tanh", "seed": 42}
    curves, kernels = [], []
    for settings in (body, body, {**body, "seed": 43}):
        run = start(lab, **settings)
        events = sse(lab, run["urls"]["events"])
        curves.append([(e["event"], e["data"].get("loss"), e["data"].get("test_loss"), e["data"].get("accuracy"))
                       for e in events])
        model = events[-1]["data"]["model"]
        kernels.append(tensor(lab.get(f"/api/models/{model}/layers/fc3/weights").json()["weight"]))
    assert curves[0] == curves[1] and torch.equal(kernels[0], kernels[1])
    assert curves[0] != curves[2] and not torch.equal(kernels[0], kernels[2])


def test_cancelling_a_running_and_a_queued_run_and_the_queue_limit(lab: TestClient) -> None:
    running = start(lab, **LONG)
    assert until_started(lab, running)["status"] == "running"  # the one slot is taken
    queued = [start(lab, **TINY), start(lab, **TINY)]
    assert [q["status"] for q in queued] == ["queued", "queued"] and [q["queue_position"] for q in queued] == [1, 2]
    full = lab.post(R, json=TINY)
    assert full.status_code == 429
    assert ErrorBody.model_validate(full.json()).detail.startswith("The training lab is busy: 3 run(s) training or waiting")

    first = sse(lab, running["urls"]["events"], stop_after=2)  # it is training: start and a step
    assert [e["event"] for e in first] == ["start", "step"]
    cancelled = lab.delete(queued[1]["urls"]["run"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["started"] is None and "while queued" in cancelled.json()["reason"]
    stopped = lab.delete(running["urls"]["run"])
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "cancelled" and "Stopped at step" in stopped.json()["reason"]
    assert stopped.json()["model"] is None and stopped.json()["step"] < 15000
    # The steps taken, not the last logged one: the same number the reason gives.
    assert f"Stopped at step {stopped.json()['step']:,} of" in stopped.json()["reason"]
    end = sse(lab, running["urls"]["events"])[-1]
    assert end["event"] == "end" and end["data"]["status"] == "cancelled"
    assert end["data"]["step"] == stopped.json()["step"]
    assert lab.get(f"/api/models/run-{running['id']}").status_code == 404  # a cancelled run serves no model

    assert finish(lab, queued[0])["status"] == "done"  # the slot went to the next in the queue
    again = lab.delete(queued[0]["urls"]["run"])
    assert again.status_code == 200 and again.json()["status"] == "done"  # an ended run is left as it was
    listed = {r.id: r.status for r in RunList.model_validate(lab.get(R).json()).runs}
    assert {running["id"]: "cancelled", queued[0]["id"]: "done", queued[1]["id"]: "cancelled"}.items() <= listed.items()
    only = lab.get(R, params=[("status", "cancelled"), ("status", "failed")]).json()["runs"]
    assert {r["id"] for r in only} == {i for i, status in listed.items() if status in ("cancelled", "failed")}
    wrong = lab.get(R, params={"status": "paused"})
    assert wrong.status_code == 422 and wrong.json()["detail"].startswith("'status.0': Input should be 'queued'")


BAD = [
    ({"optimizer": "adamw"}, "optimizer", "'sgd', 'momentum', 'adam', 'rmsprop' or 'adagrad'"),
    ({"activation": "gelu"}, "activation", "'relu', 'sigmoid', 'tanh' or 'leaky_relu'"),
    ({"pooling": "min"}, "pooling", "'max' or 'avg'"),
    ({"loss": "hinge"}, "loss", "'cross_entropy' or 'mse'"),
    ({"architecture": "resnet"}, "architecture", "'lenet' or 'tinyvgg'"),
    ({"dataset": "cifar10"}, "dataset", "'mnist' or 'fashion-mnist'"),
    ({"learning_rate": 0}, "learning_rate", "greater than 0"),
    ({"learning_rate": "fast"}, "learning_rate", "a valid number"),
    ({"learning_rate": 100}, "learning_rate", "less than or equal to 10"),
    ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
    ({"batch_size": 32.5}, "batch_size", "a valid integer"),
    ({"batch_size": True}, "batch_size", "a valid integer"),
    ({"batch_size": 4096}, "batch_size", "less than or equal to 1024"),
    ({"epochs": 0}, "epochs", "greater than or equal to 1"),
    ({"epochs": 101}, "epochs", "less than or equal to 100"),
    ({"steps": -5}, "steps", "greater than or equal to 1"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"train_size": 0}, "train_size", "greater than or equal to 1"),
    ({"log_every": 0}, "log_every", "greater than or equal to 1"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ({"epochs": 1, "steps": 10}, "steps", "not both"),
    ({"train_size": 60000}, "train_size", "more than the 6,000 training images of MNIST digits"),
    ({"train_size": 20, "batch_size": 32}, "batch_size", "more than the 20 images"),
    ({"steps": 50000}, "steps", "at most 20,000"),
    ({"epochs": 40, "batch_size": 8}, "epochs", "40 epochs of 750 steps are 30,000 steps"),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_settings_get_422_with_a_sentence_naming_the_field(lab: TestClient, body: dict[str, Any], field: str,
                                                               words: str) -> None:
    response = lab.post(R, json=body)
    assert response.status_code == 422, response.text
    error = ErrorBody.model_validate(response.json())
    assert error.detail.startswith(f"'{field}': ") and words in error.detail, error.detail
    assert error.errors and error.errors[0]["loc"][-1] == field


def test_a_body_that_is_not_a_json_object_gets_422(lab: TestClient) -> None:
    for content in (b"not json", b"[1, 2]"):
        response = lab.post(R, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and isinstance(response.json()["detail"], str)


def test_an_unknown_run_is_a_404_sentence_on_every_route(lab: TestClient) -> None:
    for method, path in (("GET", f"{R}/nope"), ("GET", f"{R}/nope/events"), ("DELETE", f"{R}/nope")):
        response = lab.request(method, path)
        assert response.status_code == 404
        assert response.json()["detail"].startswith("There is no training run called 'nope'.")
    assert lab.get(f"{R}/nope", params={"encoding": "hex"}).status_code in (404, 422)


def test_the_stream_resumes_after_last_event_id_and_a_finished_one_answers_204(lab: TestClient) -> None:
    run = start(lab, **TINY)
    events = sse(lab, run["urls"]["events"])
    resumed = sse(lab, run["urls"]["events"], headers={"Last-Event-ID": str(events[1]["id"])})
    assert resumed == events[2:]
    assert sse(lab, run["urls"]["events"] + "?after=0") == events[1:]
    done = lab.get(run["urls"]["events"], headers={"Last-Event-ID": str(events[-1]["id"])})
    assert done.status_code == 204  # an EventSource stops reconnecting
    base64 = sse(lab, run["urls"]["events"] + "?encoding=base64")
    kernels = next(e["data"]["kernels"] for e in base64 if e["event"] == "step")
    assert kernels["encoding"] == "base64" and kernels["shape"] == [6, 1, 5, 5]
    assert lab.get(run["urls"]["events"], params={"encoding": "hex"}).status_code == 422


def test_a_client_that_disconnects_leaves_no_follower_behind(lab: TestClient) -> None:
    run = start(lab, **LONG)
    log = lab.app.state.training.get(run["id"]).log  # type: ignore[attr-defined]
    for _ in range(3):
        assert len(sse(lab, run["urls"]["events"], stop_after=2)) == 2
    deadline = time.monotonic() + 5
    while log.followers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.followers == 0


def test_openapi_declares_the_training_routes_and_real_answers_match_it(lab: TestClient) -> None:
    spec = lab.get("/openapi.json").json()
    paths = spec["paths"]
    declared = {(p, m): set(op["responses"]) for p, item in paths.items() if p.startswith(R) or "training" in p
                for m, op in item.items()}
    assert declared == {
        ("/api/training/options", "get"): {"200", "422"},
        (R, "get"): {"200", "422"}, (R, "post"): {"202", "422", "429"},
        (f"{R}/{{run}}", "get"): {"200", "404", "422"}, (f"{R}/{{run}}", "delete"): {"200", "202", "404", "422"},
        (f"{R}/{{run}}/events", "get"): {"200", "204", "404", "422"}}
    assert "text/event-stream" in paths[f"{R}/{{run}}/events"]["get"]["responses"]["200"]["content"]
    run = start(lab, **TINY)
    RunSummary.model_validate(run)
    finish(lab, run)

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    problems = key_problems(spec, ref("RunList"), [lab.get(R).json()], "runs")
    problems += key_problems(spec, ref("TrainingOptions"), [lab.get("/api/training/options").json()], "options")
    details = [lab.get(run["urls"]["run"], params={"encoding": e}).json() for e in ("json", "base64")]
    history = [event for detail in details for event in detail.pop("history")]
    problems += key_problems(spec, ref("RunSummary"), details, "run")
    # the history is a union told apart by "type": each kind against its own schema
    for kind in ("start", "step", "epoch", "end"):
        name = f"{kind.capitalize()}Event"
        of_kind = [event for event in history if event["type"] == kind]
        assert of_kind, kind
        problems += key_problems(spec, ref(name), of_kind, name)
    assert not problems, "\n".join(problems)


def test_shutdown_with_a_stream_open_cancels_the_run_and_exits_promptly() -> None:
    """On a real uvicorn: SIGTERM while a client watches a long run. The run is cancelled, the stream
    ends with its end event, and the server exits instead of waiting for the run to finish."""
    server, url = start_server()
    try:
        run = httpx.post(f"{url}{R}", json=LONG, timeout=10).json()
        seen: list[str] = []

        def watch() -> None:
            with httpx.stream("GET", f"{url}{run['urls']['events']}", timeout=30) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        seen.append(line)

        watcher = threading.Thread(target=watch)
        watcher.start()
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(seen) >= 3, "no events before the signal"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) is not None
        watcher.join(timeout=5)
        end = json.loads(seen[-1].removeprefix("data:"))
        assert end["type"] == "end" and end["status"] == "cancelled" and "shutting down" in end["reason"]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

