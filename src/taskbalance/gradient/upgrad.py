"""UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import upgrad_weights
from .core import GramianBalancer

__all__ = ["UPGrad", "DualConeBalancer"]


class DualConeBalancer(GramianBalancer):
    """The base of the methods that project onto the dual cone of the task gradients
    (UPGrad, DualProj): preference weights ``pref`` (1/K by default, the buffer
    ``pref``) and the regularisation ``reg`` of the normalised Gramian."""

    pref: Tensor

    def __init__(
        self,
        tasks: TaskSpec,
        pref: Mapping[str, float] | Sequence[float] | None = None,
        reg: float = 1e-4,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        self.reg = self._number("reg", reg, low=0)
        values = self._per_task(pref, "preference weights", default=1.0 / self.num_tasks)
        self.add_state("pref", torch.tensor(values, dtype=torch.float64))


@register("upgrad")
class UPGrad(DualConeBalancer):
    r"""Unconflicting projection of gradients.

    Each task gradient is projected onto the dual cone :math:`\{x: Gx \ge 0\}` of all
    task gradients, and the projections are averaged with preference weights u
    (1/K by default):

    .. math::
        d = \sum_i u_i\, \pi_G(g_i) = G^\top \sum_i v_i,\qquad
        v_i = \arg\min_{v \ge u_i e_i} v^\top \hat M v ,

    with :math:`\hat M = M/\operatorname{tr}M + \epsilon I` (ε = ``reg``). Every
    projection has a non-negative inner product with every task gradient, so d
    conflicts with none (exactly so with ``reg=0``). Same definition and defaults as
    TorchJD's ``UPGrad`` with its quadprog projector; the K small QPs are solved
    together by the active-set solver (:func:`~taskbalance.solvers.dual_cone_weights`).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        pref: preference weights u (mapping or sequence; default 1/K).
        reg: ε added to the normalised Gramian's diagonal (default 1e-4, TorchJD's).

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("upgrad", tasks=2, reg=0.0)
        >>> _ = b.backward([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([-1.0, 1.0])], shared_params=[w])
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
        >>> bool((g @ w.grad >= -1e-6).all())
        True
    """

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        return upgrad_weights(gramian, step.get("pref").to(gramian.dtype), reg=self.reg)
