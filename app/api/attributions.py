"""Attribution maps over HTTP: which input values (or conv-layer places) a class's score rests on."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from convscope.api.deps import ModelDep, RegistryDep, SettingsDep
from convscope.api.errors import responses
from convscope.api.inputs import Parsed, parse
from convscope.api.model_requests import compute, input_tensor, prediction
from convscope.api.serialize import json_response
from convscope.codec import encode
from convscope.config import Settings
from convscope.engine.attribution.base import ALL_OPTIONS, Option
from convscope.engine.attribution.explain import explain
from convscope.engine.attribution.registry import METHODS, OPTION_NAMES, describe
from convscope.registry import LoadedModel
from convscope.schemas import AttributionMethods, AttributionOption, AttributionRequest, AttributionResponse

router = APIRouter(tags=["attributions"])
PAIR_TEXT = {"type": "string", "pattern": r"^\s*\d+\s*(,\s*\d+\s*)?$"}  # a pair in a query or form field: 5 or 5,7


def _schema(option: Option) -> dict[str, Any]:
    """The JSON schema of an option's value (a pair as JSON: n or [height, width])."""
    bounds = {k: v for k, v in (("minimum", option.minimum), ("maximum", option.maximum)) if v is not None}
    if option.type == "integer_pair":
        item = {"type": "integer", **bounds}
        return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": 2}]}
    if option.type == "string":
        return {"type": "string", **({"enum": list(option.enum)} if option.enum else {})}
    return {"type": option.type, **bounds}


def request_body_doc() -> dict[str, Any]:
    """OpenAPI for the body (JSON, multipart with the file `image`, or raw image bytes) and for the
    options as query parameters, which the route reads itself, so FastAPI cannot see them."""
    options: dict[str, tuple[dict[str, Any], str]] = {
        "method": ({"type": "string", "enum": list(METHODS)}, "the attribution method"),
        "target": ({"type": "integer", "minimum": 0}, "class index (default: the predicted class)")}
    for option in ALL_OPTIONS:
        kind = PAIR_TEXT if option.type == "integer_pair" else _schema(option)
        options[option.name] = (kind, f"{option.description}; see GET /api/attributions/methods")
    options |= {"encoding": ({"type": "string", "enum": ["json", "base64"]}, "Tensors as JSON lists or base64"),
                "dtype": ({"type": "string", "enum": ["float32", "float16"]}, "float16 needs encoding=base64")}
    query = options | {"sample": ({"type": "string"}, "a shipped sample's id, as the image (then no body is needed)")}
    parameters = [{"name": name, "in": "query", "required": False, "schema": kind, "description": text}
                  for name, (kind, text) in query.items()]
    form_fields = {"image": {"type": "string", "format": "binary"}} | {
        name: {**kind, "description": text} for name, (kind, text) in options.items()}
    # Inlined, as inference.request_body_doc does: FastAPI keeps no component for a body it does not parse.
    json_schema = AttributionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    json_schema.pop("$defs", None)
    properties = json_schema["properties"]
    properties["method"]["enum"] = list(METHODS)
    for option in ALL_OPTIONS:
        properties[option.name]["anyOf"] = [_schema(option), {"type": "null"}]
    return {"parameters": parameters, "requestBody": {"required": False, "content": {
        "application/json": {"schema": json_schema},
        "multipart/form-data": {"schema": {"type": "object", "properties": form_fields}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
    }}}


def attribution_body(model: LoadedModel, parsed: Parsed[AttributionRequest], settings: Settings) -> Response:
    opts = parsed.body
    x = input_tensor(model, parsed, settings)
    given = {name: getattr(opts, name) for name in OPTION_NAMES}
    found = explain(model.graph, x, opts.method, opts.target, given, model.spec.mean, model.spec.std)
    cam = found.layer_attribution
    return json_response({
        "model": model.id, "method": found.method, "target": found.target, "label": model.classes[found.target],
        "score": found.score, "prediction": prediction(model, found.logits),
        "input": encode(x[0], opts.encoding, opts.dtype),
        "attribution": encode(found.attribution, opts.encoding, opts.dtype), "layer": found.layer,
        "layer_attribution": None if cam is None else encode(cam, opts.encoding, opts.dtype),
        "options": found.options,
    })


@router.post("/models/{model}/attributions", response_model=AttributionResponse,
             responses=responses(404, 413, 415, 422, 429), openapi_extra=request_body_doc())
async def attributions(request: Request, model: ModelDep, settings: SettingsDep) -> Response:
    """An attribution map: how much each input value (or, for grad_cam, each place in a conv layer)
    contributes to the score of `target` (default: the predicted class), by `method`.

    The score is always the target's logit; for a model that ends in a softmax layer, that layer's
    input, so that every method explains the same number. The image comes as forward's does; `method`,
    `target` and the method's options (`layer`, `steps`, `baseline`, `samples`, `stdevs`, `seed`,
    `window`, `stride`: see GET /api/attributions/methods) as query parameters, form fields or JSON
    keys. Caps keep one request to seconds: at most 256 steps, 64 samples and 1024 occlusions."""
    parsed = await parse(request, AttributionRequest, settings)
    return await compute(request, attribution_body, model, parsed, settings)


@router.get("/attributions/methods", response_model=AttributionMethods, responses=responses(404, 422))
async def methods(served: RegistryDep,
                  model: Annotated[str | None, Query(description="fill in this model's defaults and conv layers")]
                  = None) -> AttributionMethods:
    """Every attribution method: what it computes, whether it needs a layer, and its options (type,
    default, range or choices), so that a page can build its controls from this list."""
    loaded = served.get(model) if model is not None else None
    graph = loaded.graph if loaded is not None else None
    classes = len(loaded.classes) if loaded is not None else None
    common = [
        {"name": "target", "type": "integer", "default": None, "minimum": 0,
         "maximum": None if classes is None else classes - 1, "enum": None,
         "description": "the class whose score is attributed (default: the predicted class)"},
        {"name": "encoding", "type": "string", "default": "json", "minimum": None, "maximum": None,
         "enum": ["json", "base64"], "description": "Tensors as JSON lists or base64"},
        {"name": "dtype", "type": "string", "default": "float32", "minimum": None, "maximum": None,
         "enum": ["float32", "float16"], "description": "float16 needs encoding=base64"}]
    return AttributionMethods.model_validate({
        "model": model, "methods": describe(graph),
        "common": [AttributionOption.model_validate(option) for option in common]})
