"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

from torch import Tensor

from convscope.engine.attribution.base import LAYER, Method, MethodOptions, Result, Subject
from convscope.engine.attribution.grad_cam import layer_cam, upsample
from convscope.engine.attribution.guided_backprop import GuidedBackprop


class GuidedGradCam(Method):
    """What Captum's GuidedGradCam computes, from the same Captum parts (LayerGradCam with the ReLU,
    LayerAttribution.interpolate, GuidedBackprop), so that the raw layer map comes back too without
    a second Grad-CAM; upsampled bilinearly, like grad_cam's map, where GuidedGradCam's default is nearest."""

    name = "guided_grad_cam"
    summary = ("Guided backpropagation multiplied by the Grad-CAM map of a layer (upsampled bilinearly): "
               "fine input detail, kept only where the layer's evidence for the class lies.")
    options = (LAYER,)

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        name, module = subject.layer(options.layer)
        cam = layer_cam(subject.model, module, x, target)
        guided = GuidedBackprop().attribute(subject, x, target, options).attribution
        return Result(guided * upsample(cam, x), {"layer": name}, name, cam)
