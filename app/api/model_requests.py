"""What the routers that run a model on one image share (inference.py, attributions.py): the input
tensor from a parsed request, the compute slots the work runs in, and the served prediction."""

from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response
from torch import Tensor

from convscope.api.inputs import Parsed
from convscope.codec import decode
from convscope.config import Settings
from convscope.errors import Busy, InvalidRequest
from convscope.imaging import load_image
from convscope.registry import LoadedModel


def input_tensor(model: LoadedModel, parsed: Parsed[Any], settings: Settings) -> Tensor:
    """The [1, C, H, W] tensor the model consumes, from whichever source the request gave."""
    spec = model.spec
    if parsed.body.tensor is not None:
        x = decode(parsed.body.tensor.model_dump())
        expected = [spec.channels, spec.height, spec.width]
        if list(x.shape) != expected:
            raise InvalidRequest(f"The tensor has shape {list(x.shape)}, but model '{model.id}' takes {expected}.")
        return x.unsqueeze(0)
    if parsed.image is not None:
        return load_image(parsed.image, spec, settings)
    sample = model.sample(parsed.body.sample)
    cached = model.sample_inputs.get(sample.id)
    if cached is None:
        cached = model.sample_inputs[sample.id] = load_image(sample.path.read_bytes(), spec, settings)
    return cached.clone()  # callers may mark it for gradients or change it; the cached one stays as made


def prediction(model: LoadedModel, logits: Tensor, probabilities: Tensor | None = None) -> dict[str, Any]:
    """The served prediction from the real logits [K] and, if the model computes them itself with a
    final softmax layer, its probabilities [K] (else softmax of the logits).

    For a model that ends in a softmax, probe passes that layer's input as `logits` and its output
    as `probabilities`, so that neither is the softmax of probabilities."""
    index = int(logits.argmax())
    probs = logits.softmax(0) if probabilities is None else probabilities
    return {"index": index, "label": model.classes[index], "probabilities": probs.tolist(),
            "logits": logits.tolist()}


async def compute(request: Request, work: Any, *args: Any) -> Response:
    """Run CPU-bound work off the event loop, at most `compute_slots` at a time (no oversubscription)."""
    limiter: anyio.CapacityLimiter = request.app.state.compute_limiter
    settings: Settings = request.app.state.settings
    if limiter.statistics().tasks_waiting >= settings.max_queued:
        raise Busy(f"ConvScope is busy: {settings.max_queued} requests are already waiting. Try again in a moment.")
    response: Response = await anyio.to_thread.run_sync(work, *args, limiter=limiter)
    return response
