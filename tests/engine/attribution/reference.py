"""Independent attributions: Captum called directly on a fresh copy of the model (built from its
factory and weights, or from tests/nets.py: no fx, no replica, no ConvScope code), or plain autograd
for saliency and input × gradient. The engine's and the API's answers are checked against these."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from captum import attr as captum
from torch import Tensor, nn

from convscope.engine.attribution.base import batch_size
from convscope.engine.attribution.occlusion import positions
from convscope.engine.graph import Graph
from convscope.normalisation import black
from tests import ROOT
from tests.api.rebuild import plain_builtin as fresh  # noqa: F401  (the factory and weights alone)


def card_input(model_id: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((ROOT / "models" / f"{model_id}.json").read_text())
    return dict(card["input"])


def input_gradient(model: nn.Module, x: Tensor, target: int) -> Tensor:
    leaf = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf)[0, target], leaf)
    return grad


def reference(method: str, model: nn.Module, x: Tensor, target: int, *, layer: str | None = None,
              steps: int = 50, baseline: Tensor | None = None, samples: int = 20, stdevs: float = 0.5,
              seed: int = 0, window: tuple[int, int] = (4, 4), stride: tuple[int, int] = (2, 2),
              batch: int | None = None) -> tuple[Tensor, Tensor | None]:
    """(attribution [1, C, H, W] or grad_cam's [1, 1, H, W], raw layer map [1, 1, h, w] or None).

    `batch`: how many steps, samples or occlusions Captum runs through the model at once. Give
    ConvScope's own choice (base.batch_size), so that both add up the same float32 numbers in the
    same order and the answers can be compared bit for bit."""
    leaf = x.detach().clone().requires_grad_(True)
    module = model.get_submodule(layer) if layer is not None else None
    if method == "saliency":
        return input_gradient(model, x, target).abs(), None
    if method == "input_x_gradient":
        return x * input_gradient(model, x, target), None
    if method == "integrated_gradients":
        return captum.IntegratedGradients(model).attribute(leaf, baselines=baseline, target=target, n_steps=steps,
                                                          internal_batch_size=batch), None
    if method == "grad_cam":
        cam = captum.LayerGradCam(model, module).attribute(leaf, target=target, relu_attributions=True)
        return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False), cam
    if method == "guided_grad_cam":
        cam = captum.LayerGradCam(model, module).attribute(leaf, target=target, relu_attributions=True)
        found = captum.GuidedGradCam(model, module).attribute(leaf, target=target, interpolate_mode="bilinear")
        return found, cam
    if method == "guided_backprop":
        return captum.GuidedBackprop(model).attribute(leaf, target=target), None
    if method == "deconvolution":
        return captum.Deconvolution(model).attribute(leaf, target=target), None
    if method == "smoothgrad":
        torch.manual_seed(seed)  # ConvScope seeds its own generator; the noise must be the same
        tunnel = captum.NoiseTunnel(captum.Saliency(model))
        return tunnel.attribute(leaf, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=batch,
                                stdevs=stdevs, target=target), None
    if method == "occlusion":
        channels = x.shape[1]
        return captum.Occlusion(model).attribute(
            leaf, sliding_window_shapes=(channels, *window), strides=(channels, *stride),
            baselines=0.0 if baseline is None else baseline, target=target,
            perturbations_per_eval=batch or 1), None
    raise AssertionError(f"no reference for {method!r}")


def arguments(method: str, used: Mapping[str, Any], x: Tensor, mean: Sequence[float], std: Sequence[float],
              graph: Graph, module: Callable[[str], str] = str) -> dict[str, Any]:
    """`reference`'s keyword arguments for the options an answer says it used (defaults filled in),
    with the baseline and batch size made by the product's own definitions (app.normalisation,
    base.batch_size): the comparison is then of the methods, not of two spellings of a constant.
    `module` maps a layer name to its module path in the reference's model."""
    kwargs: dict[str, Any] = {key: used[key] for key in ("steps", "samples", "stdevs", "seed") if key in used}
    if "layer" in used:
        kwargs["layer"] = module(used["layer"])
    if used.get("baseline") == "black":
        kwargs["baseline"] = black(x, mean, std)
    if method == "occlusion":
        kwargs["window"], kwargs["stride"] = tuple(used["window"]), tuple(used["stride"])
        count = positions(tuple(x.shape[2:]), kwargs["window"], kwargs["stride"])
        kwargs["batch"] = batch_size(graph, count, backward=False)
    elif method in ("integrated_gradients", "smoothgrad"):
        kwargs["batch"] = batch_size(graph, used["steps" if method == "integrated_gradients" else "samples"])
    return kwargs


def same(got: Tensor, expected: Tensor, what: str) -> None:
    """Equal bit for bit: the product makes the same Captum or autograd call as the reference, on the
    same float32 input, baseline and batch size, so the same operations run in the same order on
    whatever CPU and thread count this is, and any difference at all is a difference in the method."""
    expected = expected.detach().to(torch.float32)
    assert list(got.shape) == list(expected.shape), f"{what}: shape {list(got.shape)} != {list(expected.shape)}"
    torch.testing.assert_close(got, expected, atol=0, rtol=0, msg=lambda m: f"{what}: {m}")
