"""GradDrop (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models with
Gradient Sign Dropout", NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import SeededGenerator, Step, TaskSpec
from ..registry import register
from .core import GradientBalancer

__all__ = ["GradDrop"]


@register("graddrop", "gradient-sign-dropout")
class GradDrop(GradientBalancer):
    r"""Gradient sign dropout: per coordinate, keep only the gradients of one sign.

    .. math::
        P = \tfrac12\Big(1 + \frac{\sum_i g_i}{\sum_i |g_i|}\Big),\quad U \sim \mathcal U(0,1),
        \quad m_i = [P > U]\,[g_i > 0] + [P < U]\,[g_i < 0],
        \quad d = \sum_i \big(\ell_i + (1-\ell_i) m_i\big) \odot g_i ,

    element-wise over the N coordinates, one U per coordinate shared by the tasks,
    with leak :math:`\ell_i` (default 0). Same definition as TorchJD's ``GradDrop``.
    The paper applies it to the gradients of the shared activations: pass
    ``features=``. It is not a linear combination of the task gradients; the weight
    reported for task *i* is :math:`\langle d_i, g_i\rangle / \|g_i\|^2`, the share of
    its squared gradient that was kept.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        leak: ℓ, one value in [0, 1] for every task, or a mapping/sequence per task.
        seed: seed of the generator of U.

    Example:
        >>> import torch, taskbalance as tb
        >>> z = torch.ones(3, requires_grad=True)
        >>> b = tb.create("graddrop", tasks=2, seed=0)
        >>> _ = b.backward([z.sum(), -z[0] + z[1:].sum()], features=z)
        >>> z.grad[1:]  # where both tasks agree, both gradients are kept
        tensor([2., 2.])
    """

    leak: Tensor

    def __init__(
        self,
        tasks: TaskSpec,
        leak: float | Mapping[str, float] | list[float] = 0.0,
        seed: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        values = self._per_task(leak, "leak values")
        if not all(0 <= v <= 1 for v in values):
            raise ValueError(f"leak must give one value in [0, 1] per task, got {values}")
        self.add_state("leak", torch.tensor(values))
        self.generator = self.add_state("generator", SeededGenerator(seed))

    @override
    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        purity = 0.5 * (1 + jac.sum(0) / jac.abs().sum(0).clamp(min=torch.finfo(jac.dtype).tiny))
        u = torch.rand(
            jac.shape[1], generator=self.generator.get(jac.device), device=jac.device, dtype=jac.dtype
        )
        keep = (purity > u) & (jac > 0) | (purity < u) & (jac < 0)
        leak = step.get("leak").to(jac.dtype).unsqueeze(1)
        kept = (leak + (1 - leak) * keep.to(jac.dtype)) * jac
        # rows divided by their largest entry: squares of 1e30-sized gradients overflow
        top = jac.abs().amax(dim=1, keepdim=True)
        unit = jac / torch.where(top > 0, top, torch.ones_like(top))
        sq = (unit * unit).sum(1)
        kept_unit = kept / torch.where(top > 0, top, torch.ones_like(top))
        weights = torch.where(
            sq > 0,
            (kept_unit * unit).sum(1) / sq.clamp(min=torch.finfo(jac.dtype).tiny),
            torch.zeros_like(sq),
        )
        return kept.sum(0), weights
