"""MoDo (Chen et al., "Three-Way Trade-Off in Multi-Objective Learning: Optimization,
Generalization and Conflict-Avoidance", NeurIPS 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import project_simplex
from .core import GramianBalancer

__all__ = ["MoDo"]


@register("modo")
class MoDo(GramianBalancer):
    r"""Multi-objective gradient with double sampling: one projected-gradient step on the
    weights per training step.

    .. math::
        \lambda \leftarrow \Pi_\Delta\big(\lambda - \gamma\,(J J^\top \lambda + \rho\,\lambda)\big),
        \qquad d = \sum_i \lambda_i g_i ,

    from :math:`\lambda = 1/K`, where :math:`\Pi_\Delta` is the Euclidean projection onto
    the simplex. The paper forms the matrix from two independent mini-batches,
    :math:`J_1 J_2^\top`, so that it is an unbiased estimate of the Gramian, and the update
    from a third (or their mean); like TorchJD's ``MoDoWeighting`` given one Jacobian, the
    method here uses the Gramian of the step's one batch, :math:`J J^\top`, whose
    expectation is biased by the gradient noise (the quantity double sampling removes).
    Defaults γ = 0.1, ρ = 0.1 (TorchJD's; LibMTL uses γ = 0.001).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        gamma: step size γ of the weight update (default 0.1).
        rho: ℓ2 regularisation ρ of the weight update (default 0.1).

    State: the weights λ.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("modo", tasks=2)
        >>> d, w = b.aggregate(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        >>> w  # 0.5 - 0.1 (4 * 0.5 + 0.05) = 0.295 and 0.5 - 0.1 (0.5 + 0.05) = 0.445, + 0.13 each
        tensor([0.4250, 0.5750])
    """

    lambd: Tensor

    def __init__(self, tasks: TaskSpec, gamma: float = 0.1, rho: float = 0.1, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.gamma = self._number("gamma", gamma, low=0, open_low=True)
        self.rho = self._number("rho", rho, low=0)
        self.add_state("lambd", torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64))

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        lam = step.get("lambd").to(gramian.dtype)
        lam = project_simplex(lam - self.gamma * (gramian @ lam + self.rho * lam))
        step.set("lambd", lam)
        return lam

    def extra_repr(self) -> str:
        return f"tasks={list(self.task_names)}, gamma={self.gamma}, rho={self.rho}"
