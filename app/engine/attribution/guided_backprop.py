"""Guided backpropagation: the input gradient with every ReLU passing back only positive gradient."""

from typing import cast

from captum import attr as captum
from torch import Tensor

from convscope.engine.attribution.base import Method, MethodOptions, Result, Subject


class GuidedBackprop(Method):
    """Captum's GuidedBackprop (Springenberg et al., 2014): hooks every nn.ReLU module of the replica."""

    name = "guided_backprop"
    summary = ("The gradient of the target's score with respect to the input, where every ReLU passes back only "
               "positive gradients (and only where its input was positive): sharp, edge-like maps. Applies to "
               "nn.ReLU modules; a functional relu passes its ordinary gradient.")

    def attribute(self, subject: Subject, x: Tensor, target: int, options: MethodOptions) -> Result:
        found = captum.GuidedBackprop(subject.model).attribute(x, target=target)
        return Result(cast(Tensor, found), {})
