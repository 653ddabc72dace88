"""The training lab over HTTP: start, list, watch (server-sent events) and cancel training runs."""

import functools
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import pydantic_core
import torch
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from convscope.api.deps import TrainingDep, TrainingRunDep
from convscope.api.errors import responses
from convscope.api.serialize import json_response
from convscope.codec import Encoding
from convscope.optimizers import OPTIMIZERS
from convscope.training.events import Event
from convscope.training.nets import ACTIVATIONS, ARCHITECTURES, LOSSES, POOLINGS, build_net
from convscope.training.runs import FINAL, RunManager, TrainingRun
from convscope.training.schemas import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_STEP_EVENTS,
    ArchitectureInfo,
    ChoiceInfo,
    DatasetInfoOut,
    Limits,
    OptimizerInfo,
    RunDetail,
    RunList,
    RunSettings,
    RunSummary,
    RunUrls,
    Status,
    TrainingOptions,
)

# 422 on every route, as on the models router: so that FastAPI documents the project's error body,
# not its default validation error list (test_openapi checks that every route declares an error).
router = APIRouter(prefix="/training", tags=["training"], responses=responses(422))
CANCEL_WAIT_SECONDS = 5.0  # DELETE waits this long for a running run to stop before answering 202
EncodingQuery = Annotated[Encoding, Query(description="Tensors (the kernels in events) as JSON lists or base64")]


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


def _choices(table: dict[str, Any]) -> list[ChoiceInfo]:
    return [ChoiceInfo(id=c.id, name=c.name, description=c.description) for c in table.values()]


@functools.cache
def _parameter_count(architecture: str) -> int:
    net = build_net(architecture, "relu", "max", torch.Generator().manual_seed(0))
    return sum(p.numel() for p in net.parameters())


def summary(training: RunManager, run: TrainingRun) -> RunSummary:
    state = run.snapshot()
    base = f"/api/training/runs/{run.id}"
    urls = RunUrls(run=base, events=f"{base}/events",
                   model=f"/api/models/{state['model']}" if state["model"] else None)
    return RunSummary(**state, queue_position=training.queue_position(run), urls=urls)


@router.get("/options")
def options(training: TrainingDep) -> TrainingOptions:
    """Every setting's choices (with descriptions), the default learning rate of each optimizer, the
    datasets this server has (`subset` shipped with ConvScope, or `full` when installed) with their
    sizes, the defaults of every setting, and the limits: what a form needs to start a run."""
    s = training.settings
    return TrainingOptions(
        datasets=[DatasetInfoOut(id=d.id, name=d.name, description=d.description, kind=d.kind,
                                 train_size=d.train_size, test_size=d.test_size, classes=d.classes, licence=d.licence)
                  for d in training.catalogue.infos()],
        architectures=[ArchitectureInfo(id=a.id, name=a.name, description=a.description,
                                        parameter_count=_parameter_count(a.id)) for a in ARCHITECTURES.values()],
        activations=_choices(ACTIVATIONS), poolings=_choices(POOLINGS), losses=_choices(LOSSES),
        optimizers=[OptimizerInfo(id=o.id, name=o.name, description=o.description, learning_rate=o.training_lr)
                    for o in OPTIMIZERS.values()],
        defaults=RunSettings(),
        limits=Limits(max_steps=s.training_max_steps, max_seconds=s.training_max_seconds, max_epochs=MAX_EPOCHS,
                      max_batch_size=MAX_BATCH_SIZE, max_step_events=MAX_STEP_EVENTS, slots=s.training_slots,
                      max_queued=s.training_max_queued, max_runs=s.training_max_runs),
    )


@router.post("/runs", status_code=202, responses=responses(429))
async def start_run(settings: RunSettings, training: TrainingDep, response: Response) -> RunSummary:
    """Start a training run (or queue it while others train): 202 with its id, status and URLs.

    A 422 names the setting that cannot work (a bad value, more steps than the server allows, a
    batch larger than the training set); a 429 means the queue is full. Watch the run at
    `urls.events`; once done, its model is served at `urls.model` like any built-in model."""
    run = training.submit(settings)
    response.headers["Location"] = f"/api/training/runs/{run.id}"
    return summary(training, run)


@router.get("/runs")
def list_runs(training: TrainingDep, status: Annotated[list[Status] | None, Query(
        description="only runs with these statuses (repeat the parameter for several)")] = None) -> RunList:
    """Every run since the server started (at most `limits.max_runs`), oldest first, without history."""
    return RunList(runs=[summary(training, run) for run in training.runs() if status is None or run.status in status])


@router.get("/runs/{run}", response_model=RunDetail, responses=responses(404))
def run_detail(run: TrainingRunDep, training: TrainingDep, encoding: EncodingQuery = "json") -> Response:
    """A run's status, settings, progress, latest metrics and its whole history of events."""
    body = summary(training, run).model_dump(mode="json")
    events, _ = run.log.since(-1)
    return json_response({**body, "history": [event.body(encoding) for event in events]})


def json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """responses() for a route whose own answer is not JSON: FastAPI would document the error body
    under the route's media type (text/event-stream), so the JSON content is spelled out."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}  # in components through the other routes
    return {status: {"description": r["description"], "content": {"application/json": {"schema": schema}}}
            for status, r in responses(*statuses).items()}


def sse(event: Event, encoding: Encoding) -> bytes:
    data = pydantic_core.to_json(event.body(encoding)).decode()
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


@router.get("/runs/{run}/events", response_class=EventStream, responses={
    **json_errors(404, 422),
    200: {"description": "Server-sent events: `id:` the event's seq, `event:` its type (start, step, epoch, "
          "end), `data:` the event as JSON (the schemas StartEvent, StepEvent, EpochEvent, EndEvent); "
          "lines starting with ':' keep the connection alive.",
          "content": {"text/event-stream": {"schema": {"type": "string"}, "example":
                      'id: 3\nevent: step\ndata: {"type":"step","seq":3,"run":"3f9a0c12","step":3,...}\n\n'}}},
    204: {"description": "The run has ended and the client has every event already (Last-Event-ID): "
          "an EventSource stops reconnecting"}})
async def run_events(run: TrainingRunDep, encoding: EncodingQuery = "json",
                     after: Annotated[int, Query(ge=-1, description="only events after this seq")] = -1,
                     last_event_id: Annotated[int | None, Header(ge=-1, description="sent by a reconnecting "
                                                                  "EventSource; wins over `after`")] = None
                     ) -> Response:
    """The run's events as server-sent events: first every event so far, then each new one as it
    happens; the stream closes after the `end` event.

    One `start` event when training begins, one `step` event every `log_every` steps, one `epoch`
    event at each epoch end (with the test loss and accuracy), and one `end` event (done, cancelled
    or failed, with the reason). In a browser: `new EventSource(url)`, then
    `addEventListener("step", ...)`; close it on `end`."""
    start = last_event_id if last_event_id is not None else after
    if run.log.closed and start >= run.log.last_seq():
        return Response(status_code=204)

    async def stream() -> AsyncIterator[bytes]:
        async for event in run.log.follow(start):
            yield b": keep-alive\n\n" if event is None else sse(event, encoding)

    return EventStream(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete("/runs/{run}", responses={**responses(404), 202: {
    "model": RunSummary, "description": "Cancellation asked, but the run had not stopped yet"}})
async def cancel_run(run: TrainingRunDep, training: TrainingDep, response: Response) -> RunSummary:
    """Cancel a queued or running run. A running run stops at its next step: the answer comes once
    it has (200, status `cancelled`), or after 5 s with status still `running` (202). A run that
    has already ended is left as it is (200, with its status). A cancelled run serves no model."""
    training.cancel(run.id)
    with anyio.move_on_after(CANCEL_WAIT_SECONDS):
        await run.log.wait_closed()
    run = await anyio.to_thread.run_sync(training.get, run.id)  # as it is now, wherever it trained
    if run.status not in FINAL:
        response.status_code = 202
    return summary(training, run)
