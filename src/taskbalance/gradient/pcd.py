"""PCD (Varam et al., "Not All Objectives Are Born Equal: Priority-Constrained Descent for
Hierarchical Multi-Objective Optimization", TMLR 2026; TorchJD's ``PCD``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import priority_weights
from .core import GramianBalancer

__all__ = ["PCD"]


@register("pcd", "priority-constrained-descent")
class PCD(GramianBalancer):
    r"""Priority-constrained descent: follow the primary task's gradient as closely as
    possible while every secondary task keeps a fraction τ of its own progress.

    With :math:`\tilde g_i = s_i g_i`, :math:`s_i = (\hat v_i + \epsilon)^{-1/2}` and
    :math:`\hat v_i` the bias-corrected moving average (decay β) of :math:`\|g_i\|^2`:

    .. math::
        \tilde d = \arg\min_d \tfrac12 \|d - \tilde g_1\|^2
        \quad\text{s.t.}\quad \tilde g_j^\top d \ge \tau_j \|\tilde g_j\|^2 \quad (j \ne 1),
        \qquad d = \frac{\|g_1\|}{\|\tilde d\|}\,\tilde d ,

    task 1 being ``primary``. :math:`\tilde d = \tilde g_1 + \sum_j \mu_j \tilde g_j` with the
    multipliers μ ≥ 0 of a dual QP (:func:`~taskbalance.solvers.priority_weights`,
    certified). Special cases as in TorchJD: d = 0 when :math:`g_1 = 0` or
    :math:`\tilde d = 0` (up to the Gramian's rounding); when the constraints cannot
    all hold, :math:`d = g_1`. Same definition and defaults as TorchJD's ``PCD``
    (τ = 0.02, β = 0.999, ε = 1e-8), which puts the primary objective in the first row.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        primary: the primary task (name or position; default the first declared). When
            it is absent from a call, the first present task is primary for that call.
        tau: τ, the guaranteed fraction of normalised first-order progress of each
            secondary task, in [0, 1]: one number, or one per task (mapping or sequence;
            the primary's entry is not used).
        beta: decay β ∈ [0, 1) of the moving average of the squared gradient norms.
        eps: ε ≥ 0 added to the average before its inverse square root.

    State: the moving averages ``sq_norm_ema`` and the per-task step counts ``steps``
    (the bias correction), both per task: an absent task's are left alone.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("pcd", tasks=["main", "aux"], tau=0.5)
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
        >>> d, w = b.aggregate(g)
        >>> bool(g[1] @ d >= 0.5 * g[1].norm() * d.norm() - 1e-6)  # aux keeps progress
        True
        >>> round(float(d.norm()), 4)  # the primary gradient's length
        1.0
    """

    sq_norm_ema: Tensor
    steps: Tensor

    def __init__(
        self,
        tasks: TaskSpec,
        primary: str | int | None = None,
        tau: Mapping[str, float] | Sequence[float] | float = 0.02,
        beta: float = 0.999,
        eps: float = 1e-8,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        if primary is None:
            primary = 0
        if isinstance(primary, bool) or not isinstance(primary, (str, int)):
            raise ValueError(f"pcd: primary must be a task name or position, got {primary!r}")
        if isinstance(primary, int):
            if not 0 <= primary < self.num_tasks:
                raise ValueError(f"pcd: primary must be a position in [0, {self.num_tasks}), got {primary}")
            primary = self.task_names[primary]
        if primary not in self.task_names:
            raise ValueError(
                f"pcd: primary must be one of the tasks {list(self.task_names)}, got {primary!r}"
            )
        self.primary = primary
        taus = self._per_task(tau, "tau")
        for name, value in zip(self.task_names, taus):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"pcd: tau of task {name!r} must be in [0, 1], got {value}")
        self.tau = tau if isinstance(tau, (int, float)) else dict(zip(self.task_names, taus))
        self.beta = self._number("beta", beta, low=0, high=1, open_high=True)
        self.eps = self._number("eps", eps, low=0)
        self._taus = torch.tensor(taus, dtype=torch.float64)
        self.add_state("sq_norm_ema", torch.zeros(self.num_tasks, dtype=torch.float64))
        self.add_state("steps", torch.zeros(self.num_tasks, dtype=torch.float64))

    def _scales(self, sq_norms: Tensor, step: Step) -> Tensor:
        """1 / √(v̂ + ε) after this step's update of the moving averages."""
        ema = self.beta * step.get("sq_norm_ema").to(sq_norms) + (1.0 - self.beta) * sq_norms
        steps = step.get("steps").to(sq_norms) + 1
        step.set("sq_norm_ema", ema)
        step.set("steps", steps)
        den = (ema / (1.0 - self.beta**steps) + self.eps).sqrt()
        # a zero average: the gradient was always zero and its scale does not matter
        return torch.where(den > 0, 1.0 / torch.where(den > 0, den, 1.0), 0.0)

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        k = gramian.shape[0]
        first = step.names.index(self.primary) if self.primary in step.names else 0
        order = [first, *(i for i in range(k) if i != first)]
        perm = torch.tensor(order, device=gramian.device)
        scales = self._scales(gramian.diagonal().clamp(min=0), step)[perm]
        g = gramian[perm][:, perm]
        sq_norms = g.diagonal().clamp(min=0)
        present = [self._position[step.names[i]] for i in order]
        taus = self._taus[present[1:]]
        weights = torch.zeros(k, dtype=gramian.dtype, device=gramian.device)
        if float(sq_norms[0]) > 0.0:
            normed = g * torch.outer(scales, scales)
            w = priority_weights(normed, taus).to(gramian)
            dsq = w @ normed @ w
            magnitude = (w.abs() @ normed.diagonal().clamp(min=0).sqrt()) ** 2
            precision = 10.0 * torch.finfo(step.jac_dtype).eps
            if float(dsq) > precision * float(magnitude):
                weights = w * scales * (sq_norms[0] / dsq).sqrt()
        out = torch.empty_like(weights)
        out[perm] = weights
        return out

    def extra_repr(self) -> str:
        hyper = f"primary={self.primary!r}, tau={self.tau!r}, beta={self.beta}, eps={self.eps}"
        return f"{super().extra_repr()}, {hyper}"
