"""Krum and Multi-Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine
Tolerant Gradient Descent", NeurIPS 2017; TorchJD's ``Krum``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GramianBalancer

__all__ = ["Krum"]


@register("krum", "multi-krum")
class Krum(GramianBalancer):
    r"""Krum: the mean of the ``n_selected`` gradients closest to their neighbours.

    With f = ``n_byzantine`` and K present tasks, the score of task i is the sum of its
    distances to its K − f − 2 nearest other gradients,

    .. math::
        s_i = \sum_{j \in \mathcal N_i} \|g_i - g_j\|,\qquad
        d = \frac1m \sum_{i \in S} g_i ,

    with S the m = ``n_selected`` tasks of lowest score (Multi-Krum; m = 1 is Krum). The
    distances come from the Gramian: :math:`\|g_i - g_j\|^2 = M_{ii} + M_{jj} - 2M_{ij}`.
    A robust aggregator of federated learning, where up to f of the rows may be
    adversarial; for multi-task learning it follows the majority of the task
    gradients and drops the outliers. Same definition as TorchJD's ``Krum`` (ties go to
    the lower task index, as ``torch.topk`` breaks them).

    Krum needs K ≥ f + 3 and K ≥ m: the declared tasks must meet both (with f = 0,
    two tasks are accepted); in a call where fewer tasks are present, f and m are
    lowered to fit (f = K − 3, m = K), and with fewer than three tasks present d is
    their mean (no majority to follow).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        n_byzantine: f, the number of tasks that may be adversarial (default 0).
        n_selected: m, the number of gradients averaged (default 1, TorchJD's).

    Example:
        >>> import torch, taskbalance as tb
        >>> g = torch.tensor([[1.0, 0.0], [1.2, 0.0], [0.8, 0.0], [-5.0, 8.0]])
        >>> d, w = tb.create("krum", tasks=4).aggregate(g)
        >>> w  # the gradient closest to its two nearest others
        tensor([1., 0., 0., 0.])
    """

    def __init__(self, tasks: TaskSpec, n_byzantine: int = 0, n_selected: int = 1, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        for name, value, low in (("n_byzantine", n_byzantine, 0), ("n_selected", n_selected, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"krum: {name} must be an integer >= {low}, got {value!r}")
        if n_byzantine > 0 and self.num_tasks < n_byzantine + 3:
            raise ValueError(
                f"krum: n_byzantine={n_byzantine} needs at least n_byzantine + 3 = {n_byzantine + 3} "
                f"tasks, got {self.num_tasks}"
            )
        if self.num_tasks < n_selected:
            raise ValueError(f"krum: n_selected={n_selected} exceeds the {self.num_tasks} tasks")
        self.n_byzantine = n_byzantine
        self.n_selected = n_selected

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        k = gramian.shape[0]
        if k < 3:
            return torch.full((k,), 1.0 / k, dtype=gramian.dtype, device=gramian.device)
        f = min(self.n_byzantine, k - 3)
        m = min(self.n_selected, k)
        sq = gramian.diagonal()
        dist = (sq[None, :] + sq[:, None] - 2 * gramian).clamp(min=0).sqrt()
        nearest, _ = torch.topk(dist, k=k - f - 1, largest=False)
        scores = nearest[:, 1:].sum(1)  # without the distance to itself
        _, chosen = torch.topk(scores, k=m, largest=False)
        weights = torch.zeros(k, dtype=gramian.dtype, device=gramian.device)
        weights[chosen] = 1.0 / m
        return weights

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, n_byzantine={self.n_byzantine}, n_selected={self.n_selected}"
