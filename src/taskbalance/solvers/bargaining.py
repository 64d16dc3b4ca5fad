r"""Nash-MTL's bargaining system and FairGrad's α-fair system."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ._backend import Array, SolverError, from_host, host_gramian, to_host

__all__ = ["bargaining_weights"]

#: added to the unit diagonal of the scaled system: a rank-deficient Gramian has no
#: bargaining solution, and its regularised one grows like REG^(-1/2); 1e-8 keeps that
#: (and the cancellation in C·u) within float64's reach
REG = 1e-8
#: the largest backward error a returned solution may have
CERTIFICATE = 1e-9
#: a safety bound, never reached on the property tests' inputs; reaching it raises
_MAX_NEWTON = 500


def bargaining_weights(
    gramian: Tensor, alpha: float = 1.0, init: Tensor | None = None, tol: float = 1e-13
) -> Tensor:
    r"""Solve :math:`M w = w^{-1/\alpha}` for :math:`w > 0` (element-wise power).

    With α = 1 this is Nash-MTL's bargaining system :math:`G G^\top \alpha = 1/\alpha`
    (Navon et al., ICML 2022), whose solution gives every task the utility
    :math:`\alpha_i \langle g_i, d\rangle = 1` and :math:`\|d\|^2 = K`; general α > 0
    is FairGrad's α-fair system (Ban & Ji, ICML 2024). It is the stationarity condition of

    .. math:: \phi(w) = \tfrac12 w^\top M w - \sum_i h(w_i),\quad h'(w) = w^{-1/\alpha},

    strictly convex with compact sublevel sets once :math:`M` is made positive definite
    (+1e-8 on the unit diagonal below), minimised by Newton steps with a backtracking
    line search that keeps w > 0. The system is first scaled to unit diagonal
    (:math:`w = D u`, :math:`D = \operatorname{diag}(M)^{-1/2}`), which makes it
    independent of each task's gradient scale, and the start (``init``, the previous
    solution, or 1) is moved to the minimiser of φ along its ray, which brings it to
    the right overall scale whatever the gradients' magnitude. A task with a zero
    gradient gets weight 0. The loop stops when the backward error of the scaled system,
    :math:`\max_i |(Cu)_i - s_i u_i^{-p}| / ((|C|u)_i + s_i u_i^{-p})`, is below ``tol``
    (it stays meaningful near a Pareto-stationary point, where u is large and Cu cancels
    down to :math:`s u^{-p}`), or when five steps have not lowered it (rounding level);
    the returned solution's backward error is below 1e-9 or
    :class:`~taskbalance.solvers.SolverError` is raised.
    Solved in float64 on the host whatever the Gramian's dtype.

    Example:
        >>> import torch
        >>> m = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> bargaining_weights(m)  # orthogonal gradients: w_i = 1/‖g_i‖
        tensor([0.5000, 1.0000], dtype=torch.float64)
    """
    g = host_gramian(gramian, "bargaining_weights")
    if g.ndim != 2:
        raise ValueError(f"bargaining_weights: expected one (K, K) Gramian, got shape {tuple(gramian.shape)}")
    if not alpha > 0:
        raise ValueError(f"bargaining_weights: alpha must be > 0, got {alpha}")
    p = 1.0 / alpha
    diag = np.diagonal(g).copy()
    out = np.zeros_like(diag)
    live = diag > diag.max() * np.finfo(np.float64).eps ** 2
    if not diag.max() > 0 or not live.any():
        return from_host(out, gramian)
    idx = np.flatnonzero(live)
    d = diag[idx] ** -0.5
    c = d[:, None] * g[np.ix_(idx, idx)] * d[None, :] + REG * np.eye(len(idx))
    s = d ** (1 - p)  # Mw = w^-p with w = Du  <=>  Cu = s·u^-p
    u = np.ones(len(idx))
    if init is not None:
        start = to_host(init).reshape(-1)
        if start.shape[0] != len(diag):
            k = len(diag)
            raise ValueError(f"bargaining_weights: init must have K = {k} entries, got {start.shape[0]}")
        start = start[idx] / d
        if np.isfinite(start).all() and (start > 0).all():
            u = start
    u = u * _ray_scale(c, s, u, p)
    u = _newton(c, s, u, p, tol)
    out[idx] = d * u
    return from_host(out, gramian)


def _ray_scale(c: Array, s: Array, u: Array, p: float) -> float:
    """The t minimising φ(t·u): t^(1+p) = Σ sᵢ uᵢ^(1-p) / uᵀCu."""
    quad = float(u @ c @ u)
    if not quad > 0:
        return 1.0
    ratio = float((s * u ** (1 - p)).sum()) / quad
    return float(np.power(ratio, 1.0 / (1.0 + p)))


def _newton(c: Array, s: Array, u: Array, p: float, tol: float) -> Array:
    def phi(v: Array) -> float:
        h = np.log(v) if p == 1 else v ** (1 - p) / (1 - p)
        return float(0.5 * v @ c @ v - (s * h).sum())

    def relative(v: Array, res: Array) -> float:
        # each residual against the size of the two terms it subtracts, (|C| v)ᵢ and sᵢvᵢ^-p:
        # near a Pareto-stationary point v is large, Cv cancels to about s·v^-p, and only
        # this backward error, not the error relative to s·v^-p, can reach rounding level
        return float((np.abs(res) / (np.abs(c) @ v + s * v**-p)).max())

    def rounding(v: Array) -> float:
        """The rounding level of φ(v): eps times the size of its terms."""
        h = np.log(v) if p == 1 else v ** (1 - p) / (1 - p)
        return 64 * float(np.finfo(np.float64).eps) * float(0.5 * v @ np.abs(c) @ v + np.abs(s * h).sum())

    res = c @ u - s * u**-p
    best, best_err, stalled, last_phi = u, relative(u, res), 0, phi(u)
    for _ in range(_MAX_NEWTON):
        err = relative(u, res)
        if err < tol:
            return u
        now = phi(u)
        # stalled: no smaller backward error, and φ no longer decreasing above its rounding
        if err < best_err:
            best, best_err, stalled = u, err, 0
        elif last_phi - now <= rounding(u):
            stalled += 1
            if stalled >= 5:  # at rounding level: judge the best point reached
                return _certified(best, c @ best - s * best**-p, relative)
        last_phi = now
        hess = c + np.diag(p * s * u ** (-p - 1))
        step = np.linalg.solve(hess, res)
        shrink = step > 0  # coordinates that decrease: stay positive
        t = min(1.0, 0.99 * float((u[shrink] / step[shrink]).min())) if shrink.any() else 1.0
        f0, norm0, slope = phi(u), float(np.linalg.norm(res)), float(res @ step)
        while True:
            cand = u - t * step
            res_c = c @ cand - s * cand**-p
            # Armijo on φ or, where φ's decrease is below its rounding (near a Pareto-
            # stationary point, u large), a smaller residual
            if phi(cand) <= f0 - 1e-4 * t * slope or float(np.linalg.norm(res_c)) < 0.9 * norm0:
                break
            t *= 0.5
            if t < 1e-12:  # no descent left at rounding level: judge the best point reached
                return _certified(best, c @ best - s * best**-p, relative)
        u, res = cand, res_c
    raise SolverError(f"bargaining system: no convergence in {_MAX_NEWTON} Newton steps")


def _certified(u: Array, res: Array, relative: object) -> Array:
    assert callable(relative)
    err = float(relative(u, res))
    if not err < CERTIFICATE:
        raise SolverError(f"bargaining system failed its certificate: backward error {err:.3g}")
    return u
