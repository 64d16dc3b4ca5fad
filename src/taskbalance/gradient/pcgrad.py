"""PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import SeededGenerator, Step, TaskSpec
from ..registry import register
from .core import GramianBalancer

__all__ = ["PCGrad", "pcgrad_coefficients", "random_orders"]


def random_orders(k: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """For each task i, a random order of the other K-1 tasks (K × (K-1))."""
    keys = torch.rand(k, k, generator=generator, device=device)
    keys.fill_diagonal_(2.0)  # each task's own index sorts last and is dropped
    return keys.argsort(dim=1)[:, : k - 1]


def pcgrad_coefficients(gramian: Tensor, orders: Tensor) -> Tensor:
    r"""Coefficients C (K × K) of the projected gradients :math:`g_i^{PC} = \sum_k C_{ik} g_k`.

    Task *i* visits the others in ``orders[i]``; whenever its current gradient conflicts
    with :math:`g_j` (negative inner product), it loses its component along
    :math:`g_j`. All tasks are processed at once, one position of the orders at a
    time, on the Gramian alone.

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
        >>> c = pcgrad_coefficients(g @ g.T, torch.tensor([[1], [0]]))
        >>> (c @ g) @ g.T  # each projected gradient is orthogonal to the other task's
        tensor([[0.5000, 0.0000],
                [0.0000, 1.0000]], dtype=torch.float64)
    """
    k = gramian.shape[0]
    coef = torch.eye(k, dtype=gramian.dtype, device=gramian.device)
    rows = torch.arange(k, device=gramian.device)
    sq = gramian.diagonal().clamp(min=torch.finfo(gramian.dtype).tiny)
    for t in range(orders.shape[1]):
        j = orders[:, t]
        inner = (coef @ gramian)[rows, j]
        coef[rows, j] -= torch.where(inner < 0, inner / sq[j], torch.zeros_like(inner))
    return coef


@register("pcgrad", "gradient-surgery")
class PCGrad(GramianBalancer):
    r"""Project conflicting gradients: each task drops its component along the
    gradients it conflicts with, visited in a random order; the update is the sum.

    .. math::
        g_i \leftarrow g_i - \frac{\min(0,\ g_i^\top g_j)}{\|g_j\|^2} g_j
        \ \text{for } j \text{ in a random order},\qquad d = \sum_i g_i .

    Computed on the Gramian as coefficients (:func:`pcgrad_coefficients`), so the
    weights are the column sums of C. Same definition as TorchJD's ``PCGrad`` (which
    draws its orders from the global generator); ours come from the method's own
    generator, saved in the state. With two tasks there is no randomness.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        seed: seed of the order generator (default: drawn from torch's generator).

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("pcgrad", tasks=2)
        >>> _ = b.backward([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([-1.0, 1.0])], shared_params=[w])
        >>> w.grad
        tensor([0.5000, 1.5000])
    """

    def __init__(self, tasks: TaskSpec, seed: int | None = None, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.generator = self.add_state("generator", SeededGenerator(seed))

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        k = gramian.shape[0]
        orders = random_orders(k, self.generator.get(gramian.device), gramian.device)
        return pcgrad_coefficients(gramian, orders).sum(0)
