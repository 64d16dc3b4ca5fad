"""DualProj (Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning",
NeurIPS 2017, Eq. 11; TorchJD's ``DualProj``)."""

from __future__ import annotations

from torch import Tensor
from typing_extensions import override

from ..base import Step
from ..registry import register
from ..solvers import dual_cone_weights
from .upgrad import DualConeBalancer

__all__ = ["DualProj"]


@register("dualproj", "dual-proj")
class DualProj(DualConeBalancer):
    r"""Projection of the preference-weighted mean gradient onto the dual cone of the
    task gradients.

    With :math:`G` the K × N Jacobian, :math:`M = G G^\top` and preference weights u
    (1/K by default), the direction is the projection of :math:`G^\top u` onto the dual
    cone :math:`\{x: Gx \ge 0\}`, computed in the weights (Quinton & Rey 2024, Prop. 1):

    .. math::
        d = \pi_G(G^\top u) = G^\top w,\qquad
        w = \arg\min_{w \ge u} w^\top \hat M w ,

    with :math:`\hat M = M/\operatorname{tr}M + \epsilon I` (ε = ``reg``). This is Eq. 11
    of GEM (Lopez-Paz & Ranzato 2017) with the average gradient as the proposed update.
    d conflicts with no task gradient (exactly so with ``reg=0``). Unlike UPGrad, which
    projects every gradient and averages, one projection is made: one QP
    (:func:`~taskbalance.solvers.dual_cone_weights`). Same definition and defaults as
    TorchJD's ``DualProj`` with its quadprog projector.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        pref: preference weights u (mapping or sequence; default 1/K).
        reg: ε added to the normalised Gramian's diagonal (default 1e-4, TorchJD's).

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("dualproj", tasks=2, reg=0.0)
        >>> _ = b.backward([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([-2.0, 1.0])], shared_params=[w])
        >>> g = torch.tensor([[1.0, 0.0], [-2.0, 1.0]])
        >>> bool((g @ w.grad >= -1e-6).all())  # the mean (-0.5, 0.5) conflicted with task 0
        True
    """

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        return dual_cone_weights(gramian, step.get("pref").to(gramian.dtype), reg=self.reg)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reg={self.reg}"
