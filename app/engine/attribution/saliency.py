"""Saliency: the absolute gradient of the target's logit with respect to each input value."""

from typing import cast

from captum import attr as captum
from torch import Tensor

from convscope.engine.attribution.base import Method, MethodOptions, Result, Subject


class Saliency(Method):
    """Captum's Saliency with abs=True (Simonyan et al., 2013)."""

    name = "saliency"
    summary = ("The absolute gradient of the target's score with respect to each input value: how strongly a "
               "tiny change of that pixel would move the score, in either direction.")

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        found = captum.Saliency(subject.model).attribute(x, target=target, abs=True)
        return Result(cast(Tensor, found), {})
