r"""The quadratic program of priority-constrained descent (PCD)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ._backend import from_host, host_gramian, regularised, to_host
from .active_set import solve_qp

__all__ = ["priority_weights"]

#: a constraint violated by more than this fraction of the largest squared gradient norm
#: at the regularised dual optimum is infeasible
FEASIBILITY_TOL = 1e-6


def priority_weights(gramian: Tensor, taus: Tensor) -> Tensor:
    r"""Weights :math:`w = (1, \mu_2, \dots, \mu_K)` of PCD's direction :math:`d = \sum_i w_i g_i`,
    the solution of

    .. math::
        \min_d \tfrac12 \|d - g_1\|^2 \quad\text{s.t.}\quad g_j^\top d \ge \tau_j \|g_j\|^2,
        \quad j = 2, \dots, K,

    given the Gramian of :math:`g_1, \dots, g_K` (row 1: the primary objective) and
    :math:`\tau_2, \dots, \tau_K`. The multipliers solve the dual QP
    :math:`\min_{\mu \ge 0} \tfrac12 \mu^\top M_s \mu - \beta^\top \mu` with
    :math:`M_s` the secondary tasks' Gramian and :math:`\beta_j = \tau_j M_{jj} - M_{j1}`,
    normalised by the trace and regularised by 1e-12 (:func:`~taskbalance.solvers.nonneg_qp`'s
    certified active set; TorchJD runs Goldfarb-Idnani's dual active set on the same
    problem). When the constraints cannot all hold (the primal violation at the
    regularised optimum exceeds 1e-6 of the largest squared norm), the result is
    :math:`(1, 0, \dots, 0)`: the primary gradient alone, as in TorchJD.

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
        >>> w = priority_weights(g @ g.T, torch.tensor([0.0], dtype=torch.float64))
        >>> d = w @ g  # the primary gradient projected onto the half-space g2ᵀd >= 0
        >>> d
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    m = host_gramian(gramian, "priority_weights")
    if m.ndim != 2:
        raise ValueError(f"priority_weights: expected one (K, K) Gramian, got shape {tuple(gramian.shape)}")
    t = to_host(taus).reshape(-1)
    if not np.isfinite(t).all():
        raise ValueError("priority_weights: taus has NaN or inf entries")
    k = m.shape[0]
    if t.shape[0] != k - 1:
        raise ValueError(f"priority_weights: expected {k - 1} values of tau, got {t.shape[0]}")
    w = np.zeros(k)
    if k == 0:
        return from_host(w, gramian)
    w[0] = 1.0
    secondary = m[1:, 1:]
    beta = t * np.diag(secondary) - m[1:, 0]  # beta_j > 0: g_1 violates constraint j
    top = float(np.diag(m).max(initial=0.0))
    if k == 1 or top <= 0.0 or float(beta.max()) <= 0.0:
        return from_host(w, gramian)  # g_1 meets every constraint (or every gradient is zero)
    trace = float(np.trace(secondary))
    if trace <= 0.0:  # every secondary gradient is zero: 0 >= tau_j·0 holds
        return from_host(w, gramian)
    mu = solve_qp(regularised(secondary, 1e-12), -beta / trace).x
    violation = float((beta - secondary @ mu).max())
    if violation > FEASIBILITY_TOL * top:
        return from_host(w, gramian)  # infeasible constraints: they are dropped
    w[1:] = mu
    return from_host(w, gramian)
