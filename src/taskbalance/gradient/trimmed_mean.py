"""Coordinate-wise trimmed mean (Yin et al., "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML 2018; TorchJD's ``TrimmedMean``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GradientBalancer

__all__ = ["TrimmedMean"]


@register("trimmed-mean", "trimmed")
class TrimmedMean(GradientBalancer):
    r"""Coordinate-wise trimmed mean of the task gradients.

    In every coordinate n the t largest and the t smallest of the K values
    :math:`g_{1n}, \dots, g_{Kn}` are dropped and the other K − 2t averaged:

    .. math::
        d_n = \frac{1}{K - 2t} \sum_{i:\; t < \operatorname{rank}_n(i) \le K - t} g_{in},

    t = ``trim_number`` (t = 0: the mean; K = 2t + 1: the coordinate-wise median). A
    robust aggregator of federated learning; for multi-task learning, in each coordinate
    the tasks that pull hardest either way are left out. It is not a linear combination
    of the task gradients (the Jacobian itself is needed: no Gramian shortcut); the
    weight reported for task *i* is :math:`\langle d_i, g_i\rangle / \|g_i\|^2`, with
    :math:`d_i` its kept entries over K − 2t, as for ``graddrop``. Given ``features=``,
    the coordinates are those of the feature gradient: one per sample and feature, so
    each sample is trimmed on its own. Same definition as TorchJD's ``TrimmedMean``.

    The declared tasks must number at least 2t + 1; in a call where fewer tasks are
    present, t is lowered to ⌊(K − 1)/2⌋ (two tasks: their mean).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        trim_number: t, the number of values dropped at each end of every coordinate
            (default: 1 when at least three tasks are declared, else 0; TorchJD has no
            default).

    Example:
        >>> import torch, taskbalance as tb
        >>> g = torch.tensor([[1.0, -4.0], [2.0, 0.0], [30.0, 1.0]])
        >>> d, _ = tb.create("trimmed-mean", tasks=3).aggregate(g)
        >>> d  # the coordinate-wise median
        tensor([2., 0.])
    """

    def __init__(self, tasks: TaskSpec, trim_number: int | None = None, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        if trim_number is None:
            trim_number = 1 if self.num_tasks >= 3 else 0
        if isinstance(trim_number, bool) or not isinstance(trim_number, int) or trim_number < 0:
            raise ValueError(f"trimmed-mean: trim_number must be an integer >= 0, got {trim_number!r}")
        if self.num_tasks < 2 * trim_number + 1:
            raise ValueError(
                f"trimmed-mean: trim_number={trim_number} needs at least 2 * trim_number + 1 = "
                f"{2 * trim_number + 1} tasks, got {self.num_tasks}"
            )
        self.trim_number = trim_number

    @override
    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        k = jac.shape[0]
        t = min(self.trim_number, (k - 1) // 2)
        kept = k - 2 * t
        values, order = torch.sort(jac, dim=0)
        direction = values.narrow(0, t, kept).mean(0)
        ranks = torch.empty_like(order)
        ranks.scatter_(0, order, torch.arange(k, device=jac.device).unsqueeze(1).expand_as(order))
        mask = (ranks >= t) & (ranks < k - t)
        # rows divided by their largest entry: squares of 1e30-sized gradients overflow
        top = jac.abs().amax(dim=1, keepdim=True)
        unit = jac / torch.where(top > 0, top, torch.ones_like(top))
        sq = (unit * unit).sum(1)
        share = (unit * unit * mask.to(jac.dtype)).sum(1) / kept
        weights = torch.where(sq > 0, share / sq.clamp(min=torch.finfo(jac.dtype).tiny), torch.zeros_like(sq))
        return direction, weights

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, trim_number={self.trim_number}"
