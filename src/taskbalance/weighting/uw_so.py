"""Soft optimal uncertainty weighting (Kirchdorfer et al., "Analytical Uncertainty-Based
Loss Weighting in Multi-Task Learning", GCPR 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Balancer, Step, TaskSpec
from ..registry import register

__all__ = ["UWSO"]


@register("uw-so", "soft-optimal-uncertainty")
class UWSO(Balancer):
    r"""UW-SO: the analytical optimum of uncertainty weighting, softened.

    Uncertainty weighting's optimal weight for a fixed loss is proportional to 1/L;
    UW-SO uses it directly, detached, normalised by a softmax with temperature T:

    .. math::
        w_i = \frac{\exp\!\big(1 / (T\,L_i)\big)}{\sum_j \exp\!\big(1 / (T\,L_j)\big)},
        \qquad \mathcal{L} = \sum_i w_i L_i ,

    over the tasks present (weights sum to 1). No learned parameters, no state.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        temperature: T (default 1). Large T tends to equal weights, small T to the
            task with the smallest loss.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("uw-so", tasks=2)
        >>> x = torch.tensor([1.0, 1.0], requires_grad=True)
        >>> _ = b([x[0], x[1]])
        >>> [round(float(w), 3) for w in b.weights.values()]
        [0.5, 0.5]
    """

    sign_rule = "positive"
    sign_reason = "UW-SO weights by 1/L, undefined for L <= 0; shift the loss to be positive."

    def __init__(self, tasks: TaskSpec, temperature: float = 1.0, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.temperature = self._number("temperature", temperature, low=0, open_low=True)

    @override
    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        w = torch.softmax(losses.detach().reciprocal() / self.temperature, dim=0)
        return (w * losses).sum(), w
