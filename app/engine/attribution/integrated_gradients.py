"""Integrated gradients: the gradient averaged along the straight path from a baseline to the input."""

from typing import cast

from captum import attr as captum
from torch import Tensor

from convscope.engine.attribution.base import BASELINE, STEPS, Method, MethodOptions, Result, Subject


class IntegratedGradients(Method):
    """Captum's IntegratedGradients (Sundararajan et al., 2017), Gauss-Legendre steps."""

    name = "integrated_gradients"
    summary = ("(input − baseline) times the gradient of the target's score averaged along the straight path "
               "from the baseline to the input; the values add up to the score's change from baseline to input.")
    options = (STEPS, BASELINE)

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        found = captum.IntegratedGradients(subject.model).attribute(
            x, baselines=subject.baseline(options.baseline, x), target=target, n_steps=options.steps,
            internal_batch_size=subject.batch(options.steps))
        return Result(cast(Tensor, found), {"steps": options.steps, "baseline": options.baseline})
