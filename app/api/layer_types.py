"""GET /api/layer-types: the layer types (convscope.layer_types) the engine names layers by, as the page
reads them to pick a layer's lesson and explain its backward pass."""

from fastapi import APIRouter

from convscope.layer_types import LAYER_TYPES
from convscope.schemas import LayerTypeEntry, LayerTypes

router = APIRouter(tags=["layer types"])


@router.get("/layer-types")
def layer_types() -> LayerTypes:
    """Every layer type ConvScope knows: its name, family, what it computes, how the gradient passes
    back through it, the page's lesson for it and the attributes its layers report. A layer of a type
    not listed here is named after its module class or function and shown by the generic view."""
    return LayerTypes(layer_types=[
        LayerTypeEntry(id=t.id, name=t.name, family=t.family, description=t.description, backward=t.backward,
                       view=t.view, attributes=None if t.attributes is None else list(t.attributes),
                       pooling=t.pooling) for t in LAYER_TYPES.values()])
