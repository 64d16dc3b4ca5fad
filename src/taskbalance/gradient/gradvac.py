"""Gradient Vaccine (Wang et al., "Gradient Vaccine: Investigating and Improving
Multi-task Optimization in Massively Multilingual Models", ICLR 2021)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import SeededGenerator, Step, TaskSpec
from ..registry import register
from .core import GramianBalancer
from .pcgrad import random_orders

__all__ = ["GradVac"]


@register("gradvac", "gradient-vaccine")
class GradVac(GramianBalancer):
    r"""Gradient Vaccine: pull each pair of gradients towards a target similarity.

    Each task *i* visits the others in a random order. With
    :math:`\phi_{ij} = \cos(g_i, g_j)` (g_i as modified so far) and the target
    :math:`\hat\phi_{ij}` (an exponential moving average of past similarities), when
    :math:`\phi_{ij} < \hat\phi_{ij}`:

    .. math::
        g_i \leftarrow g_i + \frac{\|g_i\|\left(\hat\phi_{ij}\sqrt{1-\phi_{ij}^2}
        - \phi_{ij}\sqrt{1-\hat\phi_{ij}^2}\right)}{\|g_j\|\sqrt{1-\hat\phi_{ij}^2}}\, g_j ,
        \qquad \hat\phi_{ij} \leftarrow (1-\beta)\hat\phi_{ij} + \beta\,\phi_{ij},

    and :math:`d = \sum_i g_i`. All on the Gramian, all tasks at once per position of
    the orders (each row's update only reads its own row, so this equals the
    sequential loop). Same definition and defaults as TorchJD's ``GradVac`` (β = 0.5,
    ε = 1e-8); the first step is PCGrad.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        beta: EMA rate β of the targets (default 0.5).
        eps: ε in the denominators (default 1e-8).
        seed: seed of the order generator.

    State: the K × K targets and the generator.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("gradvac", tasks=2)
        >>> _ = b.backward([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([-1.0, 1.0])], shared_params=[w])
        >>> bool(b.targets[0, 1] < 0)  # the EMA moved towards the observed cosine
        True
    """

    targets: Tensor

    def __init__(
        self, tasks: TaskSpec, beta: float = 0.5, eps: float = 1e-8, seed: int | None = None, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        self.beta = self._number("beta", beta, low=0, high=1)
        self.eps = self._number("eps", eps, low=0, open_low=True)
        self.generator = self.add_state("generator", SeededGenerator(seed))
        self.add_state(
            "targets", torch.zeros(self.num_tasks, self.num_tasks, dtype=torch.float64), task_dims=(0, 1)
        )

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        k = gramian.shape[0]
        orders = random_orders(k, self.generator.get(gramian.device), gramian.device)
        target = step.get("targets").to(gramian.dtype, copy=True)
        coef = torch.eye(k, dtype=gramian.dtype, device=gramian.device)
        rows = torch.arange(k, device=gramian.device)
        norms = gramian.diagonal().clamp(min=0).sqrt()
        for t in range(orders.shape[1]):
            j = orders[:, t]
            cg = coef @ gramian
            norm_i = (cg * coef).sum(1).clamp(min=0).sqrt()
            phi = cg[rows, j] / (norm_i * norms[j] + self.eps)
            phi_hat = target[rows, j]
            root_hat = (1 - phi_hat**2).clamp(min=0).sqrt()
            change = (
                norm_i
                * (phi_hat * (1 - phi**2).clamp(min=0).sqrt() - phi * root_hat)
                / (norms[j] * root_hat + self.eps)
            )
            coef[rows, j] += torch.where(phi < phi_hat, change, torch.zeros_like(change))
            target[rows, j] = (1 - self.beta) * phi_hat + self.beta * phi
        step.set("targets", target)
        return coef.sum(0)
