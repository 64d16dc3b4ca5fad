"""FairGrad (Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import bargaining_weights
from .core import GramianBalancer, capped

__all__ = ["FairGrad"]


@register("fairgrad")
class FairGrad(GramianBalancer):
    r"""α-fair resource allocation among tasks.

    .. math:: d = K \sum_i w_i g_i,\qquad G G^\top w = w^{-1/\alpha}\ (w > 0),

    the optimality condition of maximising :math:`\sum_i u_i^{1-\alpha}/(1-\alpha)` of
    the utilities :math:`u_i = \langle g_i, d\rangle`: α = 1 is proportional fairness
    (Nash-MTL's system), α → ∞ max-min fairness, α → 0 the average gradient. The
    official code and TorchJD solve it with ``scipy.optimize.least_squares``; we use
    damped Newton on the equivalent convex problem
    (:func:`~taskbalance.solvers.bargaining_weights`). α = 0 gives w = 1/K.

    As in the authors' code (OptMN-Lab/fairgrad), the direction is multiplied by K
    ("to match the sum loss") and its norm is then capped at ``max_norm`` (their
    ``clip_grad_norm_(shared_parameters, 1.0)``; we scale the weights, which is the same
    step without clip_grad_norm_'s +1e-6). TorchJD's ``FairGrad`` does neither; the
    directions agree. Pass ``max_norm=None`` for the uncapped K·Σ wᵢ gᵢ.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        alpha: α ≥ 0 (default 1; the authors' experiment scripts use 2).
        max_norm: cap on ‖d‖ (default 1.0, the authors'); ``None`` disables it.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("fairgrad", tasks=2, alpha=1.0, max_norm=None)
        >>> _ = b.backward([w @ torch.tensor([2.0, 0.0]), w @ torch.tensor([0.0, 1.0])], shared_params=[w])
        >>> w.grad  # α = 1, orthogonal tasks: w_i = 1/‖g_i‖, d = K·Σ wᵢ gᵢ
        tensor([2., 2.])
    """

    def __init__(self, tasks: TaskSpec, alpha: float = 1.0, max_norm: float | None = 1.0, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.alpha = self._number("alpha", alpha, low=0)
        self.max_norm = None if max_norm is None else self._number("max_norm", max_norm, low=0, open_low=True)

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        k = gramian.shape[0]
        if self.alpha == 0:
            w = torch.full((k,), 1.0 / k, dtype=gramian.dtype, device=gramian.device)
        else:
            w = bargaining_weights(gramian, alpha=self.alpha).to(gramian.dtype)
        w = k * w
        return capped(w, gramian, self.max_norm)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}, max_norm={self.max_norm}"
