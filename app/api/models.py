"""Models as a resource: summaries, layer graphs, weights and shipped samples."""

from typing import Any

import torch
from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from convscope.api.deps import ModelDep, RegistryDep
from convscope.api.errors import responses
from convscope.api.serialize import json_response
from convscope.codec import Encoding, WireDtype, encode
from convscope.errors import InvalidRequest, NotFound
from convscope.registry import LoadedModel
from convscope.schemas import (
    InputInfo,
    LayerInfo,
    LayerScope,
    ModelDetail,
    ModelList,
    ModelSummary,
    SampleInfo,
    SampleList,
    Weights,
)

# 422 declared so that FastAPI does not document its default HTTPValidationError list instead.
router = APIRouter(prefix="/models", tags=["models"], responses=responses(404, 422))


def summary(model: LoadedModel) -> ModelSummary:
    card, spec = model.card, model.spec
    return ModelSummary(
        id=model.id, name=card.get("name", model.id), description=card.get("description", ""),
        dataset=card.get("dataset", {}).get("name", ""), classes=model.classes,
        input=InputInfo(channels=spec.channels, height=spec.height, width=spec.width,
                        mean=list(spec.mean), std=list(spec.std)),
        parameter_count=sum(p.numel() for p in model.graph.module.parameters()),
        test_accuracy=card.get("test_accuracy"),
    )


@router.get("")
def list_models(registry: RegistryDep) -> ModelList:
    """Every model served here."""
    return ModelList(models=[summary(m) for m in registry])


@router.get("/{model}")
def model_detail(model: ModelDep) -> ModelDetail:
    """A model's summary and its layers in execution order: enough to re-run it from its weights."""
    layers = [LayerInfo(name=la.name, type=la.type, inputs=la.inputs, output_shape=la.output_shape,
                        attributes=la.attributes, parameters=la.parameters, buffers=la.buffers, module=la.module,
                        scope=[LayerScope(module=path, type=cls) for path, cls in la.scope])
              for la in model.graph.layers]
    return ModelDetail(**summary(model).model_dump(), layers=layers)


@router.get("/{model}/layers/{layer}/weights", response_model=Weights, responses=responses(422))
def layer_weights(model: ModelDep, layer: str, encoding: Encoding = "json", dtype: WireDtype = "float32") -> Response:
    """A layer's weight and bias in PyTorch's layout ([out, in, kh, kw] for a conv), plus its buffers."""
    if dtype == "float16" and encoding != "base64":
        raise InvalidRequest("dtype=float16 needs encoding=base64: JSON numbers are not stored as float16.")
    found = model.graph.layer(layer)
    if not found.parameters and not found.buffers:
        raise NotFound(f"Layer '{layer}' ({found.type}) has no weights: it computes from its input alone.")
    module = model.graph.module
    tensors: dict[str, torch.Tensor] = {key: module.get_parameter(path) for key, path in model.graph.parameter_paths.get(layer, {}).items()}
    if found.module is not None:
        owner = module.get_submodule(found.module)
        tensors |= {key: value for key, value in owner.named_buffers(recurse=False) if key in found.buffers}
    body: dict[str, Any] = {"layer": layer, "weight": None, "bias": None}
    body |= {key: encode(value, encoding, dtype) for key, value in tensors.items()}
    return json_response(body)


@router.get("/{model}/samples")
def list_samples(model: ModelDep) -> SampleList:
    """The images shipped with a model, from its held-out data, with their true labels."""
    return SampleList(samples=[
        SampleInfo(id=s.id, label=s.label, label_name=None if s.label is None else model.classes[s.label],
                   url=f"/api/models/{model.id}/samples/{s.id}.png")
        for s in model.samples.values()])


# A models file's samples may be any image ConvScope reads; the built-ins' are PNG.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".gif": "image/gif", ".bmp": "image/bmp"}


@router.get("/{model}/samples/{sample}.png", response_class=FileResponse,
            responses={200: {"content": {t: {} for t in IMAGE_TYPES.values()},
                             "description": "The sample image: PNG for the built-in models, else as its file is"}})
def sample_image(model: ModelDep, sample: str) -> FileResponse:
    """One shipped sample image, PNG for the built-in models."""
    path = model.sample(sample).path
    return FileResponse(path, media_type=IMAGE_TYPES.get(path.suffix.lower(), "image/png"))
