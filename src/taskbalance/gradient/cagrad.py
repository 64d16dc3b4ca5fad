"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
NeurIPS 2021)."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import cagrad_weights
from .core import GramianBalancer

__all__ = ["CAGrad"]


@register("cagrad", "conflict-averse")
class CAGrad(GramianBalancer):
    r"""Conflict-averse gradient descent: the best worst-case improvement near the
    average gradient.

    .. math::
        \max_d \min_i \langle g_i, d\rangle \ \text{ s.t. }\ \|d - g_0\| \le c\,\|g_0\|,
        \qquad g_0 = \tfrac1K \sum_i g_i ,

    whose solution is :math:`d = g_0 + \frac{c\|g_0\|}{\|g_w\|} g_w` with w the solution
    of the dual (:func:`~taskbalance.solvers.cagrad_weights`, exact active set, no
    cvxpy or scipy). With ``rescale=True`` (the official code's default) d is divided
    by :math:`1 + c^2`. TorchJD's ``CAGrad`` does not rescale; the directions agree.
    The official NYUv2 trainer also multiplies d by K ("to match the sum loss"); we do
    not (nor does TorchJD): scale the learning rate by K to reproduce its step.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        c: radius c ≥ 0 (default 0.4); c = 0 is the average gradient.
        rescale: divide by 1 + c² (default True).

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("cagrad", tasks=2, rescale=False)
        >>> _ = b.backward([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([0.0, 1.0])], shared_params=[w])
        >>> w.grad  # orthogonal tasks: (1 + c) times the mean gradient
        tensor([0.7000, 0.7000])
    """

    def __init__(self, tasks: TaskSpec, c: float = 0.4, rescale: bool = True, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.c, self.rescale = self._number("c", c, low=0), bool(rescale)

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        w = cagrad_weights(gramian, self.c)
        return w / (1 + self.c**2) if self.rescale else w
