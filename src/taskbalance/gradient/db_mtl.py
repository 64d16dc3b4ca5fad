"""DB-MTL (Lin et al., "Dual-Balancing for Multi-Task Learning", 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GradientBalancer, row_norms

__all__ = ["DBMTL"]


@register("db-mtl", "dual-balancing")
class DBMTL(GradientBalancer):
    r"""Dual balancing: log losses for scale, equal gradient magnitudes for balance.

    The objectives are :math:`\log(L_i + \epsilon)`; their gradients :math:`g_i` enter
    exponential moving averages :math:`\hat g_i \leftarrow \hat g_i + \beta_t(g_i - \hat g_i)`
    with :math:`\beta_t = 1 - \beta / t^{\beta_\sigma}` (β = 0.9, β_σ = 0: a plain EMA), and
    the update gives every task the largest moving-average norm:

    .. math:: d = \sum_i \frac{\max_j \|\hat g_j\|}{\|\hat g_i\|}\, \hat g_i .

    The averages live in parameter space across steps, so the method refuses
    ``features=`` (per-sample feature gradients of different batches do not average).
    Weights are reported per raw loss (:math:`\alpha_i / (L_i + \epsilon)`), though d is
    built from the averages, not the current gradients.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        beta, beta_sigma: EMA parameters (defaults 0.9 and 0, LibMTL's).
        eps: ε inside the log (default 1e-8).

    State: the K × N moving averages and the step count.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.ones(2, requires_grad=True)
        >>> b = tb.create("db-mtl", tasks=2)
        >>> _ = b.backward([w[0] ** 2, 10 * w[1] ** 2], shared_params=[w])
        >>> w.grad  # log-loss gradients (2, 0) and (0, 2): already balanced, times (1 - β)
        tensor([0.2000, 0.2000])
    """

    step: int
    averages: Tensor | None
    supports_features = False
    sign_rule = "nonnegative"
    sign_reason = "DB-MTL trains on log(L + eps), undefined for L < 0."

    def __init__(
        self, tasks: TaskSpec, beta: float = 0.9, beta_sigma: float = 0.0, eps: float = 1e-8, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        self.beta = self._number("beta", beta, low=0, high=1)
        self.beta_sigma = self._number("beta_sigma", beta_sigma, low=0, high=1)
        self.eps = self._number("eps", eps, low=0, open_low=True)
        self.add_state("step", 0)
        # (K, N) moving averages of the gradients, created at the first step (N unknown before)
        self.add_state("averages", None)

    def _features_reason(self) -> str:
        return "its moving averages of gradients need the same coordinates at every step"

    @override
    def _objectives(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor | None]:
        # The Jacobian is taken of the raw losses and its rows divided by L + ε afterwards
        # (in at least float32): the same gradients of log(L + ε), without pushing the
        # factor 1/(L + ε), up to 1e8, back through a half-precision graph.
        return losses, 1.0 / (losses.detach() + self.eps)

    def _head_objective(self, objectives: Tensor, step: Step) -> Tensor:
        scale = step.grad_scale  # the objectives arrive multiplied by a GradScaler's scale
        return scale * torch.log(objectives / scale + self.eps).sum()

    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        jac = jac / (losses.to(jac.dtype) + self.eps).unsqueeze(1)  # gradients of log(L + ε)
        if self.averages is None or self.averages.shape[1] != jac.shape[1]:
            self.averages = torch.zeros(self.num_tasks, jac.shape[1], dtype=jac.dtype, device=jac.device)
        count = self.step + 1
        rate = self.beta / count**self.beta_sigma
        avg = step.take(self.averages).to(jac.dtype)
        avg = jac + rate * (avg - jac)
        if step.updating:
            self.step = count
        step.write(self.averages, avg)
        norms = row_norms(avg).double()  # 1e30-sized gradients overflow a float32 square
        alpha = torch.where(norms > 0, norms.max() / (norms + 1e-8), torch.zeros_like(norms))
        alpha = alpha.to(avg.dtype)  # a zero-gradient task gets 0: nothing to rescale
        return alpha @ avg, alpha
