"""MoCo (Fernando et al., "Mitigating Gradient Bias in Multi-objective Learning: A Provably
Convergent Approach", ICLR 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GradientBalancer, _gramian, row_norms

__all__ = ["MoCo"]


@register("moco")
class MoCo(GradientBalancer):
    r"""Tracked gradients and a softmax-projected weight update (multi-objective correction).

    Each task's gradient, normalised and scaled by its loss,
    :math:`\tilde g_i = L_i\, g_i / (\|g_i\| + 10^{-8})`, is tracked by
    :math:`y_i \leftarrow y_i - \beta_t (y_i - \tilde g_i)` (from :math:`y_i = 0`), and the
    weights take one step on :math:`\tfrac12 \lambda^\top (Y Y^\top + \rho I)\lambda`:

    .. math::
        \lambda \leftarrow \operatorname{softmax}\big(\lambda - \gamma_t (Y Y^\top + \rho I)\lambda\big),
        \qquad d = \sum_i \lambda_i y_i ,

    with :math:`\beta_t = \beta / t^{\beta_\sigma}`, :math:`\gamma_t = \gamma / t^{\gamma_\sigma}`
    at step t and :math:`\lambda = 1/K` at first. This is LibMTL's ``MoCo.py`` (from the
    authors' code): its softmax stands for the paper's projection onto the simplex, and
    its normalised, loss-scaled gradients for the paper's raw ones. The tracked
    gradients live in parameter space, so the method refuses ``features=``. The
    reported weights are λ, the weights of the tracked :math:`y_i` (d is not
    :math:`\sum_i \lambda_i g_i`).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        beta, beta_sigma: rate of the tracking and its decay exponent (defaults 0.5, 0.5).
        gamma, gamma_sigma: rate of the weight update and its decay exponent (0.1, 0.5).
        rho: ℓ2 regularisation ρ of the weight update (default 0).

    State: the K × N tracked gradients (in the extra state: K copies of the shared
    parameters' size), the weights and the step count.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("moco", tasks=2)
        >>> d, w = b.aggregate(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), losses=torch.tensor([1.0, 2.0]))
        >>> d  # y = 0.5 * (L_i g_i / |g_i|) = (0.5, 0), (0, 1); λ moved away from the larger y
        tensor([0.2547, 0.4906])
    """

    supports_features = False
    sign_rule = "nonnegative"
    sign_reason = "MoCo scales each normalised gradient by its loss; a negative loss reverses it."
    lambd: Tensor
    step: int
    tracked: Tensor | None

    def __init__(
        self,
        tasks: TaskSpec,
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        self.beta = self._number("beta", beta, low=0, high=1)
        self.beta_sigma = self._number("beta_sigma", beta_sigma, low=0)
        self.gamma = self._number("gamma", gamma, low=0)
        self.gamma_sigma = self._number("gamma_sigma", gamma_sigma, low=0)
        self.rho = self._number("rho", rho, low=0)
        self.add_state("lambd", torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64))
        self.add_state("step", 0)
        # (K, N) tracked gradients y, created at the first step (N unknown before)
        self.add_state("tracked", None)

    def _features_reason(self) -> str:
        return "its tracked gradients need the same coordinates at every step"

    @override
    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        if self.tracked is None or self.tracked.shape[1] != jac.shape[1]:
            self.tracked = torch.zeros(self.num_tasks, jac.shape[1], dtype=jac.dtype, device=jac.device)
        t = self.step + 1
        scale = losses.to(jac.dtype) / (row_norms(jac) + 1e-8)
        target = jac * scale.unsqueeze(1)
        y = step.take(self.tracked).to(jac.dtype)
        y = y - (self.beta / t**self.beta_sigma) * (y - target)
        step.write(self.tracked, y)
        lam = step.get("lambd")
        gram = _gramian(y) + self.rho * torch.eye(lam.numel(), dtype=torch.float64, device=lam.device)
        lam = torch.softmax(lam - (self.gamma / t**self.gamma_sigma) * (gram @ lam), dim=0)
        step.set("lambd", lam)
        if step.updating:
            self.step = t
        weights = lam.to(jac.dtype)
        return weights @ y, weights

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.task_names)}, beta={self.beta}, beta_sigma={self.beta_sigma}, "
            f"gamma={self.gamma}, gamma_sigma={self.gamma_sigma}, rho={self.rho}"
        )
