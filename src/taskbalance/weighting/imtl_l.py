"""The loss part of IMTL (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .uncertainty import LOG_VAR_LIMIT, MIN_VARIANCE, Init, LearnedScales

__all__ = ["IMTLL"]


@register("imtl-l", "imtl-loss")
class IMTLL(LearnedScales):
    r"""IMTL-L: learned loss scales that make every scaled loss equal to 1.

    .. math::
        \mathcal{L} = \sum_i \left(e^{s_i} L_i - s_i\right), \qquad w_i = e^{s_i} ,

    minimised over the shared network and over s. For fixed L the optimum is
    :math:`s_i = -\log L_i`, where every scaled loss :math:`e^{s_i} L_i` equals 1.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        init: ``"auto"`` (default: s = -log L of the task's first loss, where every
            scaled loss starts at 1) or the initial s (a number, mapping or sequence).

    Learnable parameter ``log_scales``; use :meth:`param_groups`.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("imtl-l", tasks=2, init=0.0)
        >>> x = torch.tensor([2.0, 3.0], requires_grad=True)
        >>> b([x[0], x[1]])
        tensor(5., grad_fn=<SumBackward0>)
    """

    sign_rule = "positive"
    sign_reason = "e^s·L - s is unbounded below in s when L <= 0; shift the loss to be positive."

    def __init__(self, tasks: TaskSpec, init: Init = "auto", **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.log_scales = nn.Parameter(torch.tensor(self._init_values(init)))

    def _param(self) -> nn.Parameter:
        return self.log_scales

    @override
    def _optimum(self, loss: float, task: int) -> float:
        return -math.log(max(loss, MIN_VARIANCE))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        self._start(losses, step)
        # e^s·L finite for any float32 loss
        s = step.take(self.log_scales).clamp(-LOG_VAR_LIMIT, LOG_VAR_LIMIT)
        w = torch.exp(s)
        return (w * losses - s).sum(), w
