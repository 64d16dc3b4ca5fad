r"""Small exact solvers for gradient balancing: no cvxpy, scipy or quadprog.

Everything here works on a task Gramian :math:`M = G G^\top` (K × K, K tasks). One
algorithm per problem, in float64 on the host whatever the Gramian's device and dtype
(:mod:`~taskbalance.solvers._backend`: one copy of K² numbers to the host, K back),
each terminating by construction and certified by its optimality conditions before it
returns; a failed certificate raises :class:`SolverError`. The non-negative QP runs in
a small compiled kernel when it was built at install time, else in its NumPy reference
implementation (:func:`backend` says which).

* :func:`project_simplex`: Euclidean projection onto the probability simplex.
* :func:`nonneg_qp`: :math:`\min_x \tfrac12 x^\top A x + b^\top x` s.t. :math:`x \ge 0`
  (and optionally :math:`\mathbf 1^\top x = 1`), with :func:`qp_residual` its certificate.
* :func:`min_norm_weights`: the min-norm point of the convex hull of the task gradients.
* :func:`dual_cone_weights`: UPGrad's projection onto the dual cone of the gradients.
* :func:`upgrad_weights`: UPGrad's weights, the sum of those projections.
* :func:`cagrad_weights`: the dual problem of CAGrad.
* :func:`bargaining_weights`: Nash-MTL's :math:`M\alpha = \alpha^{-1}` and FairGrad's
  :math:`M w = w^{-1/\alpha}`.
* :func:`priority_weights`: PCD's primary gradient, projected onto the secondary
  tasks' progress constraints.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ._backend import TOL, SolverError, backend, from_host, to_host
from .active_set import qp_residual as _qp_residual
from .active_set import solve_qp
from .bargaining import bargaining_weights
from .cagrad import cagrad_weights
from .dual_cone import dual_cone_weights, upgrad_weights
from .min_norm import min_norm_weights, project_simplex
from .priority import priority_weights

__all__ = [
    "SolverError",
    "backend",
    "project_simplex",
    "nonneg_qp",
    "qp_residual",
    "min_norm_weights",
    "dual_cone_weights",
    "upgrad_weights",
    "cagrad_weights",
    "bargaining_weights",
    "priority_weights",
]


def nonneg_qp(a: Tensor, b: Tensor, simplex: bool = False, tol: float = TOL) -> Tensor:
    r"""Solve :math:`\min_x \tfrac12 x^\top A x + b^\top x` s.t. :math:`x \ge 0` (and
    :math:`\sum x = 1` if ``simplex``), batched over leading dimensions.

    ``A`` must be symmetric positive definite (add a small multiple of the identity to
    a Gramian). The primal-dual active set settles almost every problem in a few
    iterations; the rest are finished by the primal active set, which cannot cycle
    (:mod:`~taskbalance.solvers.active_set`). The relative KKT residual
    (:func:`qp_residual`) is at most ``tol`` on return, or :class:`SolverError` is raised.

    Example:
        >>> import torch
        >>> a = torch.eye(2, dtype=torch.float64)
        >>> nonneg_qp(a, torch.tensor([-1.0, 1.0], dtype=torch.float64))
        tensor([1., 0.], dtype=torch.float64)
    """
    a_h, b_h = to_host(a), to_host(b)
    shapes = f"A {tuple(a.shape)} and b {tuple(b.shape)}"
    if a_h.ndim < 2 or b_h.ndim < 1 or a_h.shape[-1] != b_h.shape[-1] or a_h.shape[-1] != a_h.shape[-2]:
        raise ValueError(f"nonneg_qp: {shapes} do not match: A is (..., K, K) and b is (..., K)")
    if a_h.ndim > 2 and a_h.shape[:-2] != b_h.shape[:-1]:
        raise ValueError(f"nonneg_qp: {shapes}: a batch of A must have b's batch shape, or pass one A")
    if not (np.isfinite(a_h).all() and np.isfinite(b_h).all()):
        raise ValueError("nonneg_qp: A or b has NaN or inf entries")
    eps = torch.finfo(a.dtype).eps if a.dtype.is_floating_point else 0.0
    if (np.abs(a_h - np.swapaxes(a_h, -1, -2)) > max(1e-12, 64 * eps) * np.abs(a_h).max(initial=0.0)).any():
        raise ValueError("nonneg_qp: A is not symmetric")
    a_h = 0.5 * (a_h + np.swapaxes(a_h, -1, -2))  # to its dtype's rounding
    try:
        np.linalg.cholesky(a_h)
    except np.linalg.LinAlgError:
        raise ValueError(
            "nonneg_qp: A is not positive definite; for a Gramian, add a small multiple of the identity"
        ) from None
    return from_host(solve_qp(a_h, b_h, simplex, tol).x, b)


def qp_residual(a: Tensor, b: Tensor, x: Tensor, simplex: bool = False) -> float:
    """The largest relative KKT residual of ``x`` for :func:`nonneg_qp`'s problem(s).

    Example:
        >>> import torch
        >>> a, b = torch.eye(2, dtype=torch.float64), torch.tensor([-1.0, 1.0], dtype=torch.float64)
        >>> qp_residual(a, b, nonneg_qp(a, b)) < 1e-12
        True
    """
    res = _qp_residual(to_host(a), to_host(b), to_host(x), simplex)
    return float(np.max(res)) if np.size(res) else 0.0
