"""Deconvolution: the input gradient with every ReLU applied to the gradient instead of the input."""

from typing import cast

from captum import attr as captum
from torch import Tensor

from convscope.engine.attribution.base import Method, MethodOptions, Result, Subject


class Deconvolution(Method):
    """Captum's Deconvolution (Zeiler and Fergus, 2014): hooks every nn.ReLU module of the replica."""

    name = "deconvolution"
    summary = ("The target's score sent back to the input with every ReLU applied to the gradient itself, "
               "whatever its forward input was: which input patterns the network reconstructs for the class. "
               "Applies to nn.ReLU modules; a functional relu passes its ordinary gradient.")

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        found = captum.Deconvolution(subject.model).attribute(x, target=target)
        return Result(cast(Tensor, found), {})
