"""ExcessMTL (He et al., "Robust Multi-Task Learning with Excess Risks", ICML 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GradientBalancer

__all__ = ["ExcessMTL"]


@register("excess-mtl", "excessmtl")
class ExcessMTL(GradientBalancer):
    r"""Weights that grow with each task's estimated excess risk (distance to its optimum).

    Each task accumulates the squares of its gradients, :math:`S_i \leftarrow S_i + g_i^2`
    (element-wise, an AdaGrad-style diagonal Hessian estimate, Equation 7), and its excess
    risk is estimated by the second-order Taylor expansion (Equation 6)

    .. math:: \hat E_i = g_i^\top \operatorname{diag}\big(\sqrt{S_i + 10^{-7}}\big)^{-1} g_i .

    During the first ``warmup_steps`` steps the weights stay equal and the estimates are
    averaged into a baseline :math:`\hat E_i^0`; afterwards every step makes an
    exponentiated-gradient update with the scaled estimates (Equation 9, Section 3.2)

    .. math::
        \alpha_i \leftarrow K\,\frac{\alpha_i \exp(\eta\, r_i)}{\sum_j \alpha_j \exp(\eta\, r_j)},
        \qquad r_i = \frac{\hat E_i}{\hat E_i^0 + 10^{-7}},
        \qquad d = \sum_i \alpha_i g_i ,

    from :math:`\alpha_i = 1`. As the authors' code (and LibMTL's ``ExcessMTL.py``) the
    weights sum to K and the first step's estimate is the baseline (``warmup_steps=1``);
    TorchJD's ``ExcessMTLWeighting(n_warmup_steps=n)`` computes the same weights divided
    by K for every ``n >= 1`` (its ``n = 0`` also updates on the first step with the
    unscaled estimates, which the authors' code does not). The sums of squares live in
    parameter space, so the method refuses ``features=``.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        robust_step_size: step size η of the exponentiated update (default 1.0, TorchJD's).
        warmup_steps: steps whose mean estimate is the baseline, with equal weights
            (default 1, the authors' code; the paper's appendix C.1 uses 3 epochs).

    State: the K × N sums of squared gradients (in the extra state: K copies of the
    shared parameters' size), the weights, the baselines and the steps each task was
    present.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("excess-mtl", tasks=2)
        >>> _ = b.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # baseline: equal weights
        >>> d, w = b.aggregate(torch.tensor([[4.0, 0.0], [0.0, 1.0]]))
        >>> w  # task 0's excess risk grew more than task 1's: it gets more weight
        tensor([1.9196, 0.0804])
    """

    supports_features = False
    alpha: Tensor
    baseline: Tensor
    seen: Tensor
    squares: Tensor | None

    def __init__(
        self, tasks: TaskSpec, robust_step_size: float = 1.0, warmup_steps: int = 1, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        self.robust_step_size = self._number("robust_step_size", robust_step_size, low=0, open_low=True)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"excess-mtl: warmup_steps must be an integer >= 1, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        k = self.num_tasks
        self.add_state("alpha", torch.ones(k, dtype=torch.float64))
        # the sum of the estimates during warm-up, then kept: the baseline is it / warmup_steps
        self.add_state("baseline", torch.zeros(k, dtype=torch.float64))
        self.add_state("seen", torch.zeros(k, dtype=torch.float64))  # steps each task was present
        # (K, N) sums of squared gradients, created at the first step (N unknown before)
        self.add_state("squares", None)

    def _features_reason(self) -> str:
        return "its sums of squared gradients need the same coordinates at every step"

    @override
    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        if self.squares is None or self.squares.shape[1] != jac.shape[1]:
            self.squares = torch.zeros(self.num_tasks, jac.shape[1], dtype=jac.dtype, device=jac.device)
        sq = jac * jac
        total = step.take(self.squares).to(jac.dtype) + sq
        step.write(self.squares, total)
        excess = (sq / torch.sqrt(total + 1e-7)).sum(1, dtype=torch.float64)  # Equation 6
        seen = step.get("seen") + 1
        warm = seen <= self.warmup_steps
        base = step.get("baseline")
        base = torch.where(warm, base + excess, base)
        step.set("seen", seen)
        step.set("baseline", base)
        alpha = step.get("alpha")
        ratio = excess / (base / self.warmup_steps + 1e-7)
        updated = torch.softmax(torch.log(alpha) + self.robust_step_size * ratio, dim=0) * alpha.numel()
        # Equation 9 once every present task has its baseline (no host synchronisation)
        alpha = torch.where(warm.any(), alpha, updated)
        step.set("alpha", alpha)
        weights = alpha.to(jac.dtype)
        return weights @ jac, weights

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.task_names)}, robust_step_size={self.robust_step_size}, "
            f"warmup_steps={self.warmup_steps}"
        )
