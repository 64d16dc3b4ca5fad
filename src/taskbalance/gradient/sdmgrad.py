"""SDMGrad (Xiao et al., "Direction-oriented Multi-objective Learning: Simple and Provable
Stochastic Algorithms", NeurIPS 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import project_simplex
from .core import GramianBalancer

__all__ = ["SDMGrad"]


@register("sdmgrad")
class SDMGrad(GramianBalancer):
    r"""Stochastic direction-oriented multi-objective gradient: MGDA pulled towards a
    preferred direction, its weights refined by a few projected SGD steps per training step.

    With the Gramian normalised by its mean gradient norm,
    :math:`A = JJ^\top / \big(\operatorname{mean}_i \sqrt{(JJ^\top)_{ii}}^{\,2} + 10^{-8}\big)`,
    and the preference :math:`\tilde w` (uniform by default), ``n_iter`` steps of projected
    SGD with momentum from the last step's weights,

    .. math::
        v \leftarrow \mu v + A (w + \lambda \tilde w),\qquad w \leftarrow \Pi_\Delta(w - \eta v),

    (:math:`v = 0` at the start of each step) and

    .. math:: d = \sum_i \frac{w_i + \lambda \tilde w_i}{1 + \lambda}\, g_i .

    The paper forms the matrix from two independent mini-batches, :math:`J_1 J_2^\top`
    (an unbiased estimate of the Gramian), and the update from a third; like TorchJD's
    ``SDMGradWeighting`` given one Jacobian, the method here uses the Gramian of the
    step's one batch, biased by the gradient noise. The ``n_iter`` inner steps are the
    algorithm's definition (a fixed budget of SGD steps), not a solver run to a tolerance.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        lr: step size η of the inner SGD (default 10, TorchJD's; LibMTL uses 5).
        momentum: momentum μ of the inner SGD, in [0, 1) (default 0.5).
        n_iter: inner SGD steps per training step (default 20).
        lambda_: pull λ ≥ 0 towards the preferred direction (default 0.3, the authors'
            experiments).
        preference: the preference :math:`\tilde w` per task (non-negative, renormalised to
            sum 1 over the tasks present; default uniform).

    State: the weights w.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("sdmgrad", tasks=2, lambda_=0.0)
        >>> d, w = b.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        >>> w  # orthogonal gradients of equal norm: MGDA's equal weights
        tensor([0.5000, 0.5000])
    """

    w: Tensor

    def __init__(
        self,
        tasks: TaskSpec,
        lr: float = 10.0,
        momentum: float = 0.5,
        n_iter: int = 20,
        lambda_: float = 0.3,
        preference: Mapping[str, float] | Sequence[float] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        self.lr = self._number("lr", lr, low=0, open_low=True)
        self.momentum = self._number("momentum", momentum, low=0, high=1, open_high=True)
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
            raise ValueError(f"sdmgrad: n_iter must be an integer >= 1, got {n_iter!r}")
        self.n_iter = n_iter
        self.lambda_ = self._number("lambda_", lambda_, low=0)
        pref = self._per_task(preference, "preference", default=1.0)
        if any(p < 0 for p in pref) or sum(pref) <= 0:
            raise ValueError(f"sdmgrad: preference must be >= 0 with a positive sum, got {pref}")
        self.preference = torch.tensor(pref, dtype=torch.float64)
        self.add_state("w", torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64))

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        pref = step.take(self.preference.to(gramian.device, gramian.dtype))
        total = pref.sum()
        # tasks present whose preferences are all 0: the uniform preference over them
        pref = torch.where(
            total > 0, pref / total.clamp(min=torch.finfo(pref.dtype).tiny), 1.0 / pref.numel()
        )
        scale = gramian.diagonal().clamp(min=0).sqrt().mean()
        a = gramian / (scale * scale + 1e-8)
        w = step.get("w").to(gramian.dtype)
        velocity = torch.zeros_like(w)
        for _ in range(self.n_iter):
            velocity = self.momentum * velocity + a @ (w + self.lambda_ * pref)
            w = project_simplex(w - self.lr * velocity)
        step.set("w", w)
        return (w + self.lambda_ * pref) / (1 + self.lambda_)

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.task_names)}, lr={self.lr}, momentum={self.momentum}, "
            f"n_iter={self.n_iter}, lambda_={self.lambda_}"
        )
