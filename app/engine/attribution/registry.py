"""Attribution methods by name, their options checked, and their description for the page."""

from collections.abc import Mapping
from typing import Any

from convscope.engine.attribution.base import ALL_OPTIONS, LAYER, STRIDE, WINDOW, Method, MethodOptions, Option
from convscope.engine.attribution.deconvolution import Deconvolution
from convscope.engine.attribution.grad_cam import GradCam
from convscope.engine.attribution.guided_backprop import GuidedBackprop
from convscope.engine.attribution.guided_grad_cam import GuidedGradCam
from convscope.engine.attribution.input_x_gradient import InputXGradient
from convscope.engine.attribution.integrated_gradients import IntegratedGradients
from convscope.engine.attribution.layers import default_layer, feature_layers
from convscope.engine.attribution.occlusion import Occlusion, default_stride, default_window
from convscope.engine.attribution.saliency import Saliency
from convscope.engine.attribution.smoothgrad import SmoothGrad
from convscope.engine.graph import Graph
from convscope.errors import InvalidRequest

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (
    Saliency, InputXGradient, IntegratedGradients, GradCam, GuidedBackprop, GuidedGradCam, SmoothGrad, Occlusion,
    Deconvolution)}
OPTION_NAMES = tuple(option.name for option in ALL_OPTIONS)


def method(name: object) -> type[Method]:
    """The method called `name`, or InvalidRequest listing the methods there are."""
    found = METHODS.get(name) if isinstance(name, str) else None
    if found is None:
        raise InvalidRequest(f"'method': there is no attribution method called {name!r}. "
                             f"The methods are: {', '.join(METHODS)}.")
    return found


def configure(cls: type[Method], given: Mapping[str, object]) -> MethodOptions:
    """The method's options from `given` (None values mean 'not given'), checked, defaults filled in.

    An option the method does not take is refused, so that no one believes it had an effect."""
    own = {option.name: option for option in cls.options}
    checked: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name not in own:
            takes = f"its options are: {', '.join(own)}" if own else "it takes no options"
            known = "" if name in OPTION_NAMES else " (nor of any method)"
            raise InvalidRequest(f"'{name}' is not an option of {cls.name}{known}; {takes}.")
        checked[name] = own[name].check(value)
    return MethodOptions(**checked)


def describe(graph: Graph | None = None) -> list[dict[str, Any]]:
    """Every method: name, summary, whether it needs a layer, and its options (type, default, range).

    With a model's graph, the defaults that depend on the model are filled in, and `layer` lists the
    layers a layer method can use."""
    layers = [layer.name for layer in feature_layers(graph)] if graph is not None else []
    chosen = default_layer(graph) if graph is not None else None
    default = chosen.name if chosen is not None else None
    return [{"name": cls.name, "summary": cls.summary, "needs_layer": cls.needs_layer(),
             "options": [option_info(option, graph, layers, default) for option in cls.options]}
            for cls in METHODS.values()]


def option_info(option: Option, graph: Graph | None = None, layers: list[str] | None = None,
                layer: str | None = None) -> dict[str, Any]:
    """One option as the methods endpoint lists it."""
    default: Any = option.default
    enum = list(option.enum) if option.enum else None
    if graph is not None:
        window = default_window(*graph.input_shape[1:])
        if option is LAYER:
            enum, default = list(layers or []), layer
        elif option is WINDOW:
            default = list(window)
        elif option is STRIDE:
            default = list(default_stride(window))
    return {"name": option.name, "type": option.type, "default": default, "minimum": option.minimum,
            "maximum": option.maximum, "enum": enum, "description": option.description}
