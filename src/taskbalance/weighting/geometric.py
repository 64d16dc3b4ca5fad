"""Geometric-mean and log losses (Chennupati et al., "MultiNet++: Multi-Stream Feature
Aggregation and Geometric Loss Strategy for Multi-Task Learning", CVPR-W 2019)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Balancer, Step, TaskSpec
from ..registry import register

__all__ = ["Geometric"]


@register("geometric", "gls", "log-loss")
class Geometric(Balancer):
    r"""Geometric loss strategy, or the sum of log losses.

    .. math::
        \text{form="geometric"}:\ \mathcal{L} = \Big(\prod_{i=1}^K L_i\Big)^{1/K},
        \quad w_i = \frac{\mathcal{L}}{K L_i};
        \qquad
        \text{form="log"}:\ \mathcal{L} = \sum_i \log L_i,\quad w_i = \frac{1}{L_i}.

    Both give each task a gradient weight inversely proportional to its loss, so they
    are invariant to a rescaling of any loss; they differ by the positive factor
    :math:`\mathcal{L}/K`. The product is computed as :math:`\exp(\text{mean}\log L)`.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        form: ``"geometric"`` (default) or ``"log"``.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("geometric", tasks=2)
        >>> x = torch.tensor([2.0, 8.0], requires_grad=True)
        >>> b([x[0], x[1]])
        tensor(4., grad_fn=<ExpBackward0>)
    """

    sign_rule = "positive"
    sign_reason = "log L is -inf at L = 0 and undefined below; shift the loss to be positive."

    def __init__(self, tasks: TaskSpec, form: Literal["geometric", "log"] = "geometric", **kw: Any) -> None:
        super().__init__(tasks, **kw)
        if form not in ("geometric", "log"):
            raise ValueError(f"form must be 'geometric' or 'log', got {form!r}")
        self.form = form

    @override
    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        logs = torch.log(losses)
        if self.form == "log":
            return logs.sum(), losses.detach().reciprocal()
        total = torch.exp(logs.mean())
        return total, total.detach() / (losses.numel() * losses.detach())
