r"""UPGrad's projections onto the dual cone of the task gradients."""

from __future__ import annotations

from torch import Tensor

from ._backend import check_gramian, from_host, regularised, to_host
from .active_set import solve_qp

__all__ = ["dual_cone_weights", "upgrad_weights"]


def dual_cone_weights(gramian: Tensor, u: Tensor, reg: float = 1e-4) -> Tensor:
    r"""Weights :math:`v` of the projection of :math:`G^\top u` onto the dual cone
    :math:`\{x : G x \ge 0\}` of the task gradients (Quinton & Rey 2024, Prop. 1):

    .. math:: v = \arg\min_{v \ge u} v^\top \hat M v,
        \qquad \hat M = M / \operatorname{tr} M + \epsilon I ,

    with ε = ``reg`` (at least 1e-12), as in TorchJD. ``u`` may be a batch of weight
    vectors (..., K): all are solved at once, as the QP :math:`x = v - u \ge 0`,
    :math:`\min \tfrac12 x^\top \hat M x + (\hat M u)^\top x`.

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
        >>> v = dual_cone_weights(g @ g.T, torch.tensor([1.0, 0.0]), reg=0.0)
        >>> bool((g @ (g.T @ v) >= -1e-6).all())
        True
    """
    m, u_h = to_host(gramian), to_host(u)
    check_gramian(m, "dual_cone_weights")
    a = regularised(m, reg)
    b = u_h @ a.T if a.ndim == 2 else (a @ u_h[..., None])[..., 0]
    return from_host(u_h + solve_qp(a, b).x, gramian)


def upgrad_weights(gramian: Tensor, pref: Tensor, reg: float = 1e-4) -> Tensor:
    r"""UPGrad's weights: :math:`\sum_i v_i`, with :math:`v_i` the :func:`dual_cone_weights`
    of the preference-weighted row :math:`p_i e_i` (Quinton & Rey 2024). The K
    projections share one matrix and are solved as one batch.

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> upgrad_weights(g @ g.T, torch.tensor([0.5, 0.5], dtype=torch.float64))  # no conflict
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    m, p = to_host(gramian), to_host(pref)
    check_gramian(m, "upgrad_weights")
    a = regularised(m, reg)
    b = (a * p).T  # row i: b = A (p_i e_i)
    return from_host(p + solve_qp(a, b).x.sum(0), gramian)
