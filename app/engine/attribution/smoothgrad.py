"""SmoothGrad: saliency averaged over noisy copies of the input, with seeded, per-request noise."""

from typing import Any, cast

import torch
from captum import attr as captum
from torch import Tensor

from convscope.engine.attribution.base import SAMPLES, SEED, STDEVS, Method, MethodOptions, Result, Subject


class _SeededNoiseTunnel(captum.NoiseTunnel):  # type: ignore[misc]  # Captum has no type information
    """Captum's NoiseTunnel drawing its noise from its own generator instead of torch's global one,
    which threads share and which one request cannot seed without racing another.

    With a generator seeded s it draws exactly what NoiseTunnel draws after torch.manual_seed(s)
    (same calls, same order): it overrides `_add_noise_to_inputs`, which captum==0.9.0 calls once per
    batch of samples, and keeps its arithmetic."""

    def __init__(self, method: Any, seed: int) -> None:
        super().__init__(method)
        self.generator = torch.Generator().manual_seed(seed)

    def _add_noise_to_inputs(self, nt_samples_partition: int, inputs: tuple[Tensor, ...],
                             stdevs: float | tuple[float, ...]) -> tuple[Tensor, ...]:
        deviations = stdevs if isinstance(stdevs, tuple) else (stdevs,) * len(inputs)
        noisy = []
        for x, stdev in zip(inputs, deviations):
            size = (x.shape[0] * nt_samples_partition, *x.shape[1:])
            noise = torch.normal(0, torch.tensor(stdev, device=x.device).repeat(size), generator=self.generator)
            sample = x.repeat_interleave(nt_samples_partition, dim=0) + noise
            noisy.append(sample.requires_grad_() if self.is_gradient_method else sample)
        return tuple(noisy)


class SmoothGrad(Method):
    """Captum's NoiseTunnel over Saliency, nt_type "smoothgrad" (Smilkov et al., 2017)."""

    name = "smoothgrad"
    summary = ("Saliency averaged over noisy copies of the input (Gaussian noise of standard deviation stdevs): "
               "the mean |gradient|, which keeps what is stable around the input and averages away the speckle.")
    options = (SAMPLES, STDEVS, SEED)

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        tunnel = _SeededNoiseTunnel(captum.Saliency(subject.model), options.seed)
        found = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=options.samples,
                                 nt_samples_batch_size=subject.batch(options.samples), stdevs=float(options.stdevs),
                                 target=target, abs=True)
        return Result(cast(Tensor, found),
                      {"samples": options.samples, "stdevs": options.stdevs, "seed": options.seed})
