"""Kept forward runs as a resource: one layer's full output at a time, after a summary forward."""

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path
from fastapi.responses import Response

from convscope.api.deps import ForwardRunCacheDep, ModelDep
from convscope.api.errors import responses
from convscope.api.serialize import json_response
from convscope.codec import Encoding, WireDtype, encode
from convscope.engine.cache import ForwardRun, ForwardRunCache
from convscope.errors import InvalidRequest, NotFound
from convscope.registry import LoadedModel
from convscope.schemas import RunLayer

INPUT = "input"  # the model's input, as layers' `inputs` name it

ERRORS = responses(404, 422)
ERRORS[404]["description"] = "Unknown model or layer, or a run the server no longer keeps"
router = APIRouter(prefix="/models", tags=["runs"], responses=ERRORS)


def budget_text(count: int) -> str:
    """A byte budget as people say it: '256 MiB', '1.5 MiB', '200 KiB'."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.4g} {unit}"
    return f"{count} bytes"


def kept_run(runs: ForwardRunCache, run_id: str, model: LoadedModel, layer: str) -> ForwardRun:
    """The run, if the server still keeps it and it is this model's; else NotFound saying what to do."""
    found = runs.get(run_id)
    if found is None and runs.budget == 0:
        raise NotFound(f"Run '{run_id}' is not kept: this server keeps no forward runs (its run cache is off). "
                       f"Ask forward for this layer with layers={layer}.")
    if found is None:
        raise NotFound(f"Run '{run_id}' is no longer kept: the server keeps the most recent forward runs up to "
                       f"{budget_text(runs.budget)}. Run forward again (or ask for this layer with layers={layer}).")
    if found.model != model.id:
        raise NotFound(f"Run '{run_id}' is a forward run of model '{found.model}', not of '{model.id}'.")
    if not found.made_by(model.id, model.graph):
        raise NotFound(f"Run '{run_id}' was computed by an earlier version of model '{model.id}'. "
                       f"Run forward again (or ask for this layer with layers={layer}).")
    return found


@router.get("/{model}/runs/{run}/layers/{layer}", response_model=RunLayer)
async def run_layer(model: ModelDep, runs: ForwardRunCacheDep,
                    run: Annotated[str, Path(description="the `run` id a forward with summary=true returned")],
                    layer: Annotated[str, Path(description='a layer name, or "input" for the input')],
                    encoding: Encoding = "json", dtype: WireDtype = "float32") -> Response:
    """One layer's full output ([C, H, W] or [N]) from a forward run the server keeps (`layer=input`:
    the input the model consumed), exactly as forward would have sent it.

    A forward with `summary=true` returns the run's id. The server keeps the most recent runs up to a
    byte budget (CONVSCOPE_RUN_CACHE_BYTES): once a run is evicted this answers 404 with a sentence
    saying so, and forward with `layers=name` gives the same tensor."""
    if dtype == "float16" and encoding != "base64":
        raise InvalidRequest("dtype=float16 needs encoding=base64: JSON numbers are not stored as float16.")
    if layer != INPUT:
        model.graph.layer(layer)  # NotFound listing the model's layers
    found = kept_run(runs, run, model, layer)
    tensor = found.input if layer == INPUT else found.layers.get(layer)
    if tensor is None:
        names = ", ".join(found.layers) or "none"
        raise NotFound(f"Run '{run}' holds only the layers its forward was asked for ({names}). "
                       f"Ask forward for this layer with layers={layer}.")
    wire: dict[str, Any] = await anyio.to_thread.run_sync(encode, tensor, encoding, dtype)
    return json_response({"model": model.id, "run": run, "layer": layer, "tensor": wire})
