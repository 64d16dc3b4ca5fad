r"""The min-norm point of the convex hull of the task gradients (MGDA)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._backend import from_host, host_gramian, regularised
from .active_set import solve_qp

__all__ = ["project_simplex", "min_norm_weights"]


def project_simplex(y: Tensor) -> Tensor:
    r"""Euclidean projection of each row of ``y`` onto :math:`\{w \ge 0, \sum w = 1\}`.

    Sort-based, no Python loop (Held, Wolfe & Crowder 1974; Duchi et al. 2008). The
    projection is invariant to adding a constant to every entry, so ``y`` is first shifted
    by its largest entry: a 1 added to entries of 1e31 would otherwise be lost to rounding.

    Example:
        >>> project_simplex(torch.tensor([0.5, 2.0, -1.0]))
        tensor([0., 1., 0.])
    """
    k = y.shape[-1]
    y = y - y.amax(dim=-1, keepdim=True)
    s, _ = torch.sort(y, dim=-1, descending=True)
    css = s.cumsum(-1) - 1
    ind = torch.arange(1, k + 1, device=y.device, dtype=y.dtype)
    cond = s - css / ind > 0
    rho = cond.to(y.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = css.gather(-1, rho) / (rho + 1).to(y.dtype)
    return (y - theta).clamp(min=0)


def min_norm_weights(gramian: Tensor, reg: float = 0.0) -> Tensor:
    r"""Weights of the min-norm point of the convex hull of the task gradients.

    .. math:: w^\star = \arg\min_{w \in \Delta} w^\top \hat M w,
        \qquad \hat M = M / \operatorname{tr} M + \epsilon I ,

    the direction of MGDA (Désidéri 2012; Sener & Koltun 2018), batched over leading
    dimensions. ε is ``reg``, at least 1e-12 so that the problem is strictly convex on
    rank-deficient Gramians. Solved exactly by the certified active set of
    :func:`~taskbalance.solvers.active_set.solve_qp` in float64 on the host; the weights
    come back on the Gramian's device, in its dtype (at least float32).

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> min_norm_weights(g @ g.T)
        tensor([0.8000, 0.2000])
    """
    m = host_gramian(gramian, "min_norm_weights")
    if m.shape[-1] == 1:
        return from_host(np.ones(m.shape[:-1]), gramian)
    # a task with a zero gradient makes 0 the min-norm point: weight 1 on it, exactly
    # (the regularisation would leave ‖d‖ of order 1e-12), and no QP to solve
    diag = np.diagonal(m, axis1=-2, axis2=-1)
    zero = diag == 0
    has_zero = zero.any(-1) & (diag.max(-1) > 0)
    if m.ndim == 2 and has_zero:
        return from_host(np.eye(m.shape[-1])[int(zero.argmax())], gramian)
    # min wᵀAw on the simplex is min ½xᵀAx - 1ᵀx on x >= 0, then w = x / Σx (the KKT
    # conditions match with ν = 1/Σx): no bordered system, and usually one iteration
    x = solve_qp(regularised(m, reg), -np.ones(m.shape[:-1])).x
    w = x / x.sum(-1, keepdims=True)
    w = np.where(has_zero[..., None], np.eye(m.shape[-1])[zero.argmax(-1)], w)
    return from_host(w, gramian)
