r"""UPGrad's projections onto the dual cone of the task gradients."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ._backend import Array, from_host, host_gramian, regularised, to_host
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
    m = host_gramian(gramian, "dual_cone_weights")
    u_h = _weights_like(u, m, "dual_cone_weights", "u")
    a = regularised(m, reg)
    if a.ndim > 2:  # one matrix per problem: broadcast A and the batch of u together
        batch = np.broadcast_shapes(a.shape[:-2], u_h.shape[:-1])
        a, u_h = np.broadcast_to(a, (*batch, *a.shape[-2:])), np.broadcast_to(u_h, (*batch, u_h.shape[-1]))
    b = u_h @ a.T if a.ndim == 2 else (a @ u_h[..., None])[..., 0]
    return from_host(u_h + solve_qp(a, b).x, gramian)


def _weights_like(t: Tensor, m: Array, name: str, arg: str) -> Array:
    """``t`` on the host, refused unless its last dimension is K and it is finite."""
    out = to_host(t)
    k = m.shape[-1]
    if out.ndim == 0 or out.shape[-1] != k:
        got = tuple(t.shape)
        raise ValueError(f"{name}: {arg} must have K = {k} entries in its last dimension, got shape {got}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: {arg} has NaN or inf entries")
    return out


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
    m = host_gramian(gramian, "upgrad_weights")
    p = _weights_like(pref, m, "upgrad_weights", "pref")
    if p.ndim != 1:
        raise ValueError(f"upgrad_weights: pref must be one (K,) vector, got shape {tuple(pref.shape)}")
    a = regularised(m, reg)
    k = a.shape[-1]
    b = p[:, None] * a  # row i: A (p_i e_i), by symmetry (batched: per Gramian)
    if a.ndim > 2:  # a batch of Gramians: K problems each, one matrix per problem
        a = np.broadcast_to(a[..., None, :, :], (*a.shape[:-2], k, k, k))
    return from_host(p + solve_qp(a, b).x.sum(-2), gramian)
