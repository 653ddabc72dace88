"""Input × gradient: each input value times the gradient of the target's logit with respect to it."""

from typing import cast

from captum import attr as captum
from torch import Tensor

from convscope.engine.attribution.base import Method, MethodOptions, Result, Subject


class InputXGradient(Method):
    """Captum's InputXGradient (Shrikumar et al., 2016)."""

    name = "input_x_gradient"
    summary = ("Each input value times the gradient of the target's score with respect to it: a first-order "
               "estimate of how much that value adds to the score (signed; zero where the input is zero).")

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        found = captum.InputXGradient(subject.model).attribute(x, target=target)
        return Result(cast(Tensor, found), {})
