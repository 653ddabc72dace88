"""Grad-CAM: a conv layer's channels weighted by their mean gradient, summed, rectified, upsampled."""

from typing import cast

from captum import attr as captum
from torch import Tensor, nn

from convscope.engine.attribution.base import LAYER, Method, MethodOptions, Result, Subject


def layer_cam(model: nn.Module, layer: nn.Module, x: Tensor, target: int) -> Tensor:
    """Captum's LayerGradCam with the ReLU applied: [1, 1, h, w] at the layer's resolution."""
    return cast(Tensor, captum.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True))


def upsample(cam: Tensor, like: Tensor) -> Tensor:
    """cam [1, 1, h, w] resized bilinearly to the input's [H, W]."""
    return cast(Tensor, captum.LayerAttribution.interpolate(cam, tuple(like.shape[2:]), "bilinear"))


class GradCam(Method):
    """Captum's LayerGradCam (Selvaraju et al., 2017) on one conv layer of the replica."""

    name = "grad_cam"
    summary = ("A layer's feature maps (by default the last conv layer's, after its activation), each weighted "
               "by the mean gradient of the target's score over it, summed and rectified (ReLU): where in that "
               "layer the evidence for the class lies, upsampled bilinearly to the input; the map at the layer's "
               "own resolution is in layer_attribution.")
    options = (LAYER,)

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        name, module = subject.layer(options.layer)
        cam = layer_cam(subject.model, module, x, target)
        return Result(upsample(cam, x), {"layer": name}, name, cam)
