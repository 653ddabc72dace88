"""Forward and backward passes over HTTP: every layer's output, every gradient."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from torch import Tensor

from convscope.api.deps import ModelDep, SettingsDep
from convscope.api.errors import responses
from convscope.api.inputs import Parsed, parse
from convscope.api.model_requests import compute, input_tensor, prediction
from convscope.api.serialize import json_response
from convscope.codec import encode
from convscope.config import Settings
from convscope.engine import probe
from convscope.engine.cache import ForwardRunCache
from convscope.engine.step import take_step
from convscope.engine.summary import MAX_THUMBNAIL, THUMBNAIL, summarize
from convscope.optimizers import MAX_LR, OPTIMIZERS, rates
from convscope.registry import LoadedModel
from convscope.schemas import (
    BackwardRequest,
    BackwardResponse,
    ForwardRequest,
    ForwardResponse,
    ImageSource,
    StepRequest,
    StepResponse,
)

router = APIRouter(prefix="/models", tags=["inference"], responses=responses(404, 413, 415, 422, 429))


def request_body_doc(schema: type[ImageSource]) -> dict[str, Any]:
    """OpenAPI for a body that is JSON, multipart (file `image` + option fields) or raw image bytes,
    and for the options as query parameters (read from the request, so FastAPI cannot see them)."""
    options: dict[str, tuple[dict[str, Any], str]] = {
        "layers": ({"type": "string"}, "comma-separated layer names (default: all)"),
        "encoding": ({"type": "string", "enum": ["json", "base64"]}, "Tensors as JSON lists or base64"),
        "dtype": ({"type": "string", "enum": ["float32", "float16"]}, "float16 needs encoding=base64")}
    if schema in (ForwardRequest, BackwardRequest):
        options |= {"summary": ({"type": "boolean", "default": False},
                                "per-layer summaries and thumbnails instead of every tensor"),
                    "thumbnail": ({"type": "integer", "minimum": 1, "maximum": MAX_THUMBNAIL, "default": THUMBNAIL},
                                  "with summary: thumbnail side (each channel pooled to at most this × this)")}
    if schema in (BackwardRequest, StepRequest):
        options |= {"target": ({"type": "integer", "minimum": 0}, "class index (default: the predicted class)"),
                    "loss": ({"type": "string", "enum": ["cross_entropy", "mse", "logit"]}, "the loss to differentiate")}
    if schema is StepRequest:
        options |= {"layers": ({"type": "string"}, "comma-separated layers to update (default: all with parameters)"),
                    "optimizer": ({"type": "string", "enum": list(OPTIMIZERS)}, "a fresh torch.optim optimizer"),
                    "lr": ({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_LR},
                           f"learning rate (default: {rates('step_lr')})")}
    query = options | {"sample": ({"type": "string"}, "a shipped sample's id, as the image (then no body is needed)")}
    parameters = [{"name": name, "in": "query", "required": False, "schema": kind, "description": text}
                  for name, (kind, text) in query.items()]
    form_fields = {"image": {"type": "string", "format": "binary"}} | {
        name: {**kind, "description": text} for name, (kind, text) in options.items()}
    # Inlined: FastAPI puts no schema in components for a body it does not parse itself, so a
    # $ref to it would dangle. Nested models (Tensor) are components already, via the responses.
    json_schema = schema.model_json_schema(ref_template="#/components/schemas/{model}")
    json_schema.pop("$defs", None)
    return {"parameters": parameters, "requestBody": {"required": False, "content": {
        "application/json": {"schema": json_schema},
        "multipart/form-data": {"schema": {"type": "object", "properties": form_fields}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
    }}}


def forward_body(model: LoadedModel, parsed: Parsed[ForwardRequest], settings: Settings,
                 runs: ForwardRunCache | None = None) -> Response:
    """The forward answer; with summary=true, the outputs are kept in `runs` (if given) under the new `run` id."""
    opts = parsed.body
    x = input_tensor(model, parsed, settings)
    result = probe.forward(model.graph, x, opts.layers)
    answer: dict[str, Any] = {"model": model.id, "input": encode(x[0], opts.encoding, opts.dtype),
                              "prediction": prediction(model, result.logits[0], result.probabilities[0])}
    if not opts.summary:
        return json_response(answer | {"run": None, "layers": {
            name: encode(t[0], opts.encoding, opts.dtype) for name, t in result.activations.items()}})
    outputs = {name: t[0] for name, t in result.activations.items()}
    run = runs.put(model.id, model.graph, x[0], outputs) if runs is not None else None
    return json_response(answer | {"run": run, "layers": {}, "summaries": summaries(outputs, opts)})


def backward_body(model: LoadedModel, parsed: Parsed[BackwardRequest], settings: Settings) -> Response:
    """The backward answer; with summary=true, every layer's activation gradient in brief, and in
    full only the layers named (the page's overview and its current layer, for a large model)."""
    opts = parsed.body
    x = input_tensor(model, parsed, settings)
    result = probe.backward(model.graph, x, opts.target, opts.loss, None if opts.summary else opts.layers)

    def maybe(grads: dict[str, Tensor], key: str) -> dict[str, Any] | None:
        return encode(grads[key], opts.encoding, opts.dtype) if key in grads else None

    full = set(opts.layers or ()) if opts.summary else set(result.activation_gradients)
    layers = {}
    for name, gradient in result.activation_gradients.items():
        if name not in full:
            continue
        params = result.parameter_gradients.get(name, {})
        layers[name] = {"activation_gradient": encode(gradient[0], opts.encoding, opts.dtype),
                        "weight_gradient": maybe(params, "weight"), "bias_gradient": maybe(params, "bias")}
    answer = {
        "model": model.id, "loss": result.loss, "loss_function": opts.loss, "target": result.target,
        "prediction": prediction(model, result.logits[0], result.probabilities[0]),
        "input": encode(x[0], opts.encoding, opts.dtype),
        "input_gradient": encode(result.input_gradient[0], opts.encoding, opts.dtype), "layers": layers,
    }
    if opts.summary:
        answer["summaries"] = summaries({name: g[0] for name, g in result.activation_gradients.items()}, opts)
    return json_response(answer)


def summaries(tensors: dict[str, Tensor], opts: ForwardRequest | BackwardRequest) -> dict[str, dict[str, Any]]:
    """Each tensor in brief: shape, min, max, mean, std and a thumbnail."""
    out: dict[str, dict[str, Any]] = {}
    for name, t in tensors.items():
        s = summarize(t, opts.thumbnail)
        out[name] = {"shape": s.shape, "min": s.min, "max": s.max, "mean": s.mean, "std": s.std,
                     "thumbnail": encode(s.thumbnail, opts.encoding, opts.dtype)}
    return out


@router.post("/{model}/forward", response_model=ForwardResponse, openapi_extra=request_body_doc(ForwardRequest))
async def forward(request: Request, model: ModelDep, settings: SettingsDep) -> Response:
    """Every layer's output for one image, the preprocessed input, and the prediction.

    Query parameters (or form fields, or JSON keys): `layers=a,b` narrows the layers;
    `encoding=base64` sends Tensors as base64 little-endian float32, `&dtype=float16` halves that.

    For large models, `summary=true` sends no layer tensors (`layers` is empty) but `summaries`: each
    layer's shape, min, max, mean, std and a thumbnail (a [C, H, W] output's channels average-pooled
    to at most `thumbnail` × `thumbnail`, default 8, at most 32; a [N] output as is up to 1024 values,
    else pooled to 1024). The server keeps the full outputs for a while under the id `run`:
    GET /api/models/{model}/runs/{run}/layers/{layer} serves each one. `run` is null when the server
    keeps no runs (or this one alone is over its budget); forward with `layers=name` always works."""
    parsed = await parse(request, ForwardRequest, settings)
    return await compute(request, forward_body, model, parsed, settings, request.app.state.forward_runs)


@router.post("/{model}/backward", response_model=BackwardResponse, openapi_extra=request_body_doc(BackwardRequest))
async def backward(request: Request, model: ModelDep, settings: SettingsDep) -> Response:
    """The loss for a target class, and its gradient for the input, every layer output and every weight.

    `target` (default: the predicted class) and `loss` (`cross_entropy`, `mse` of softmax against the
    one-hot target, or `logit`: the target's raw score) come as query parameters, form fields or JSON keys.

    For a model whose last layer is a softmax, "logits" means that layer's input: cross-entropy is
    taken on it (not on the probabilities the model outputs), `logit` is its target entry, and
    `mse` uses the model's own probabilities. The final softmax layer's activation gradient is then
    zero for `cross_entropy` and `logit`, whose loss does not pass through it."""
    parsed = await parse(request, BackwardRequest, settings)
    return await compute(request, backward_body, model, parsed, settings)


def step_body(model: LoadedModel, parsed: Parsed[StepRequest], settings: Settings) -> Response:
    opts = parsed.body
    x = input_tensor(model, parsed, settings)
    result = take_step(model.graph, x, opts.target, opts.loss, opts.optimizer, opts.lr, opts.layers)

    def wire(t: Tensor) -> dict[str, Any]:
        return encode(t, opts.encoding, opts.dtype)

    layers = {name: {key: {"before": wire(p.before), "after": wire(p.after), "gradient": wire(p.gradient),
                           "update": wire(p.update)} for key, p in params.items()}
              for name, params in result.layers.items()}
    return json_response({
        "model": model.id, "loss_function": opts.loss, "target": result.target, "optimizer": result.optimizer,
        "lr": result.lr, "hyperparameters": result.hyperparameters, "loss": result.loss,
        "loss_after": result.loss_after,
        "prediction": prediction(model, result.before.logits[0], result.before.probabilities[0]),
        "prediction_after": prediction(model, result.after.logits[0], result.after.probabilities[0]),
        "layers": layers,
    })


@router.post("/{model}/step", response_model=StepResponse, openapi_extra=request_body_doc(StepRequest))
async def step(request: Request, model: ModelDep, settings: SettingsDep) -> Response:
    """The chosen layers' parameters before and after one optimizer step on this image, and the loss
    before and after it.

    The gradients are backward's (same `target` and `loss`); the step is taken by a freshly built
    torch.optim optimizer (`sgd`; `momentum`: SGD with momentum 0.9; `adam`; `rmsprop`; `adagrad`,
    with PyTorch's other defaults) on a private copy of the parameters of `layers` (default: every
    layer with parameters), at learning rate `lr` (0 < lr <= 10). The served model never changes.
    `loss_after` is the same loss re-evaluated with every updated parameter.

    This is the *first* step of a fresh optimizer, with no history: momentum's first step equals
    SGD's, and Adam's and Adagrad's are about lr·sign(gradient) for every weight (RMSprop's about
    10·lr·sign(gradient)), whatever the gradient's size."""
    parsed = await parse(request, StepRequest, settings)
    return await compute(request, step_body, model, parsed, settings)
