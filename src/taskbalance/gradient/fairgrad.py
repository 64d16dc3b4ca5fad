"""FairGrad (Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..base import TaskSpec
from ..registry import register
from ..solvers import bargaining_weights
from .core import GramianBalancer

__all__ = ["FairGrad"]


@register("fairgrad")
class FairGrad(GramianBalancer):
    r"""α-fair resource allocation among tasks.

    .. math:: d = \sum_i w_i g_i,\qquad G G^\top w = w^{-1/\alpha}\ (w > 0),

    the optimality condition of maximising :math:`\sum_i u_i^{1-\alpha}/(1-\alpha)` of
    the utilities :math:`u_i = \langle g_i, d\rangle`: α = 1 is proportional fairness
    (Nash-MTL's system), α → ∞ max-min fairness, α → 0 the average gradient. The
    official code and TorchJD solve it with ``scipy.optimize.least_squares``; we use
    damped Newton on the equivalent convex problem
    (:func:`~taskbalance.solvers.bargaining_weights`). α = 0 gives w = 1/K.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        alpha: α ≥ 0 (default 1).

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("fairgrad", tasks=2, alpha=1.0)
        >>> _ = b.backward([w @ torch.tensor([2.0, 0.0]), w @ torch.tensor([0.0, 1.0])], shared_params=[w])
        >>> w.grad  # α = 1, orthogonal tasks: w_i = 1/‖g_i‖
        tensor([1., 1.])
    """

    def __init__(self, tasks: TaskSpec, alpha: float = 1.0, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def _weights(self, gramian: Tensor, losses: Tensor, idx: Tensor | slice) -> Tensor:
        if self.alpha == 0:
            k = gramian.shape[0]
            return torch.full((k,), 1.0 / k, dtype=gramian.dtype, device=gramian.device)
        return bargaining_weights(gramian, alpha=self.alpha)
