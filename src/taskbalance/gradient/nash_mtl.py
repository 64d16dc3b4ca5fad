"""Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import bargaining_weights
from .core import GramianBalancer, capped

__all__ = ["NashMTL"]


@register("nash-mtl", "nash")
class NashMTL(GramianBalancer):
    r"""Nash-MTL: the Nash bargaining solution of the tasks.

    .. math::
        d = \sum_i \alpha_i g_i,\qquad \hat M \alpha = 1/\alpha\ (\alpha > 0),
        \qquad \hat M = \frac{G G^\top}{\|G G^\top\|_F} ,

    so every task's utility :math:`\langle g_i, d\rangle` is :math:`1/\alpha_i` (in the
    normalised scale). The official code normalises the Gramian by its Frobenius norm
    and approximately solves the system with cvxpy (20 convex-concave iterations);
    we solve it exactly with damped Newton (:func:`~taskbalance.solvers.bargaining_weights`),
    warm-started from the previous α. Like the official code and TorchJD, the update's
    norm is capped at ``max_norm`` (by scaling α; ``None`` disables it), and α can be
    recomputed only every ``update_weights_every`` steps. TorchJD's ``NashMTL`` has the
    same definition with the official solver; where that solver stops short of the
    system (2 of the 60 random Jacobians of our cross-check), the directions differ.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        max_norm: cap on ‖d‖ (default 1.0).
        update_weights_every: recompute α every this many steps (default 1).

    State: the previous α (warm start) and the step count.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("nash-mtl", tasks=2, max_norm=None)
        >>> _ = b.backward([w @ torch.tensor([2.0, 0.0]), w @ torch.tensor([0.0, 1.0])], shared_params=[w])
        >>> w.grad / w.grad.norm()  # orthogonal tasks: α_i = 1/‖g_i‖, d ∝ g1/‖g1‖ + g2/‖g2‖
        tensor([0.7071, 0.7071])
    """

    alpha: Tensor
    step: int

    def __init__(
        self, tasks: TaskSpec, max_norm: float | None = 1.0, update_weights_every: int = 1, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        if update_weights_every < 1:
            raise ValueError(f"update_weights_every must be >= 1, got {update_weights_every}")
        self.max_norm = None if max_norm is None else self._number("max_norm", max_norm, low=0, open_low=True)
        self.update_weights_every = int(update_weights_every)
        self.add_state("step", 0)
        self.add_state("alpha", torch.ones(self.num_tasks, dtype=torch.float64))

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        prev = step.get("alpha").to(gramian.dtype)
        due = self.step % self.update_weights_every == 0
        alpha = bargaining_weights(gramian, init=prev) if due else prev
        if step.updating:
            self.step += 1
        step.set("alpha", alpha)
        return capped(alpha, gramian, self.max_norm)
