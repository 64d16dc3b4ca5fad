r"""Active-set methods for the small convex problems of gradient balancing.

Two problems, both over :math:`x \ge 0` (optionally on the simplex
:math:`\mathbf 1^\top x = 1`):

* the strictly convex QP :math:`\min_x \tfrac12 x^\top A x + b^\top x`
  (:func:`solve_qp`), batched;
* any smooth strictly convex objective whose minimiser on a face is known in closed
  form (:func:`primal_active_set`; CAGrad's dual uses it).

:func:`solve_qp` first runs the primal-dual active-set iteration (Hintermüller, Ito &
Kunisch 2002) on the whole batch: exact in a few iterations on almost every problem,
but it may cycle when A is not an M-matrix. The problems it has not settled within
``min(K + 5, 10)`` iterations go to the primal active-set method, started from the
primal-dual iterate (Lawson & Hanson 1974, for a
general strictly convex objective), which terminates by construction: the objective
strictly decreases from one face's minimiser to the next, so no face is visited twice
and there are finitely many faces. Every solution is then certified by its KKT
residual; a failed certificate raises :class:`SolverError`, it is never returned.

This module is the NumPy reference implementation. Without the simplex, :func:`solve_qp`
hands the batch to the compiled kernel (``_qpkernel.c``: the same two methods, one
problem at a time, each face system by Gaussian elimination with partial pivoting) when
:mod:`~taskbalance.solvers._backend` has one, and certifies its answer here the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import numpy as np

from . import _backend
from ._backend import TOL, Array, Mask, SolverError

__all__ = ["QPResult", "solve_qp", "qp_residual", "primal_active_set", "Face", "vertex"]

#: primal-dual iterations before the primal active set takes over: the primal-dual
#: method settles almost every problem in under 8, and a problem it has not settled by
#: then is usually cycling
PDAS_ITERATIONS = 10
#: the compiled kernel takes problems of up to this many tasks (it bounds its sizes)
KERNEL_MAX_TASKS = 4096
#: up to this many tasks, a batch's face systems are solved K × K (masked to identity off
#: the face): fewer NumPy calls than gathering the smaller systems
DENSE_MAX_TASKS = 16


class QPResult(NamedTuple):
    """A certified solution: ``x`` and its relative KKT residual."""

    x: Array
    residual: float


class Face(NamedTuple):
    """The minimiser of the objective on a face (the coordinates in ``free``, the rest
    at 0), or, when the objective is unbounded below on the face's affine hull, a
    direction along which it decreases (``ray=True``)."""

    point: Array
    ray: bool = False


def _reduced_gradient(grad: Array, free: Mask, simplex: bool) -> Array:
    """The gradient minus the simplex multiplier ν (the mean of the gradient on ``free``)."""
    if not simplex:
        return grad
    count = np.maximum(free.sum(-1, keepdims=True), 1)
    out: Array = grad - (grad * free).sum(-1, keepdims=True) / count
    return out


def kkt_residual(grad: Array, x: Array, free: Mask, simplex: bool) -> Array:
    r"""Unscaled KKT residual of :math:`\min f(x)` s.t. :math:`x \ge 0` (and
    :math:`\mathbf 1^\top x = 1`), given :math:`\nabla f(x)` and the support ``free``:
    zero reduced gradient on the support, a non-negative one off it, x ≥ 0 and
    x = 0 off the support (batched over leading dimensions). The simplex's own
    feasibility, :math:`|\mathbf 1^\top x - 1|`, is the caller's to add: it has other
    units."""
    reduced = _reduced_gradient(grad, free, simplex)
    on = np.where(free, np.abs(reduced), 0.0).max(-1)
    off = np.where(free, 0.0, np.maximum(-reduced, 0.0)).max(-1)
    primal = np.maximum(np.maximum(-x, 0.0).max(-1), np.where(free, 0.0, np.abs(x)).max(-1))
    res: Array = np.maximum(np.maximum(on, off), primal)
    return res


def _qp_scale(a: Array, b: Array, x: Array) -> Array:
    """The size of the QP's terms, against which its residual is measured."""
    amax = np.abs(a).max((-2, -1))
    xmax = np.maximum(np.abs(x).max(-1), 1.0)
    out: Array = np.maximum(np.maximum(amax * xmax, np.abs(b).max(-1)), np.finfo(np.float64).tiny)
    return out


def qp_residual(a: Array, b: Array, x: Array, simplex: bool = False) -> Array:
    """Relative KKT residual of ``x`` for the QP ``min ½xᵀAx + bᵀx`` s.t. ``x ≥ 0``
    (and ``Σx = 1``); the support is where ``x > 0``. The stationarity and sign
    conditions are measured against the size of the QP's terms; ``|Σx − 1|`` has no units
    and is taken as it is, whatever the scale of A and b."""
    grad = (a @ x[..., None])[..., 0] + b
    res: Array = kkt_residual(grad, x, x > 0, simplex) / _qp_scale(a, b, x)
    if simplex:
        res = np.maximum(res, np.abs(x.sum(-1) - 1.0))
    return res


# --------------------------------------------------------------------- the QP's faces
def _qp_face(a: Array, b: Array, free: Mask, simplex: bool) -> Array:
    """The QP's minimiser on the affine hull of a face (batched over leading dims)."""
    k = a.shape[-1]
    mat = np.where(free[..., :, None] & free[..., None, :], a, np.eye(k))
    rhs = np.where(free, -b, 0.0)
    if simplex:  # bordered system [[A_FF, 1_F], [1_Fᵀ, 0]] [x; -ν] = [-b_F; 1]
        ones = free.astype(np.float64)
        full = np.zeros((*mat.shape[:-2], k + 1, k + 1))
        full[..., :k, :k] = mat
        full[..., :k, k] = ones
        full[..., k, :k] = ones
        rhs = np.concatenate([rhs, np.ones((*rhs.shape[:-1], 1))], -1)
        x = np.linalg.solve(full, rhs[..., None])[..., :k, 0]
    else:
        x = np.linalg.solve(mat, rhs[..., None])[..., 0]
    out: Array = np.where(free, x, 0.0)
    return out


def _masked_solve(mat: Array, rhs: Array, mask: Mask) -> Array:
    """For each row of ``mask`` (B, K): the solution y of ``mat[F, F] y = rhs[F]`` on the
    row's True entries F, scattered back into (B, K) with 0 elsewhere. The systems are
    padded to the largest |F| with identity rows: gathered from ``mat`` bordered by an
    identity block, so that the padding costs no masking pass."""
    bsz, k = rhs.shape
    sizes = mask.sum(-1)
    m = int(sizes.max())
    out = np.zeros((bsz, k))
    if m == 0:
        return out
    order = np.argsort(~mask, axis=-1, kind="stable")[:, :m]
    slot = np.arange(m)
    padded = slot >= sizes[:, None]
    order = np.where(padded, k + slot, order)  # padding rows point into the identity block
    big = np.zeros((k + m, k + m))
    big[:k, :k] = mat
    big[k:, k:] = np.eye(m)
    sub = big.ravel()[order[:, :, None] * (k + m) + order[:, None, :]]
    wide = np.zeros((bsz, k + m))
    wide[:, :k] = rhs
    sol = np.linalg.solve(sub, np.take_along_axis(wide, order, -1)[..., None])[..., 0]
    np.put_along_axis(wide, order, np.where(padded, 0.0, sol), -1)
    result: Array = wide[:, :k] * mask
    return result


def _qp_face_shared(a: Array, ainv: Array | None, b: Array, free: Mask) -> Array:
    """:func:`_qp_face` without the simplex for a batch (B, K) sharing one A (K × K),
    with systems only as large as the largest free set (padded with identity rows) or,
    given ``ainv`` = A⁻¹, the largest fixed set C: x = A⁻¹(μ - b) with
    (A⁻¹)_CC μ_C = (A⁻¹b)_C. Either is what makes UPGrad's K problems cheap: few tasks
    conflict (small free sets) or almost all do (small fixed sets)."""
    m_free, m_fixed = int(free.sum(-1).max()), int((~free).sum(-1).max())
    if ainv is not None and m_fixed < m_free:
        z = b @ ainv  # A⁻¹ is symmetric
        mu = _masked_solve(ainv, z, ~free)
        out: Array = np.where(free, mu @ ainv - z, 0.0)
        return out
    return _masked_solve(a, -b, free)


def _pdas_one(a: Array, b: Array, iters: int) -> tuple[Array, bool]:
    """:func:`_pdas` for one problem without the simplex, with as few NumPy calls as the
    iteration allows (at K = 3 the calls, not the arithmetic, are the cost)."""
    free = b < 0
    x = np.zeros(b.shape)
    for _ in range(iters):
        f = np.flatnonzero(free)
        x = np.zeros(b.shape)
        if f.size:
            x[f] = np.linalg.solve(a[np.ix_(f, f)], -b[f])
        grad = a @ x + b
        new = np.where(free, x > 0, grad < 0)
        if (new == free).all():
            return x, True
        free = new
    return x, False


def _pdas(
    a: Array, b: Array, simplex: bool, iters: int, ainv: Array | None = None
) -> tuple[Array, Mask, Mask]:
    """Primal-dual active set on a batch: ``(x, free, settled)``; ``settled`` marks the
    problems whose free set stopped changing (their x meets the KKT conditions)."""
    shared = a.ndim == 2 and b.ndim > 1
    diag = np.abs(np.diagonal(a, axis1=-2, axis2=-1)).max(-1, keepdims=True)
    scale = np.maximum(diag, np.finfo(np.float64).tiny)
    free = np.ones(b.shape, dtype=bool) if simplex else b < 0
    x = np.zeros(b.shape)
    settled = np.zeros(b.shape[:-1], dtype=bool)
    todo = np.ones(b.shape[:-1], dtype=bool)
    for _ in range(iters):
        idx = np.nonzero(todo)
        a_t = a if shared or a.ndim == 2 else a[idx]
        b_t, f_t = b[idx], free[idx]
        if a_t.ndim == 2 and not simplex and a_t.shape[-1] > DENSE_MAX_TASKS:
            x_t = _qp_face_shared(a_t, ainv, b_t, f_t)
        else:
            x_t = _qp_face(a_t, b_t, f_t, simplex)
        grad = (x_t @ a_t.T if a_t.ndim == 2 else (a_t @ x_t[..., None])[..., 0]) + b_t
        grad = _reduced_gradient(grad, f_t, simplex)
        s_t = scale if a.ndim == 2 else scale[idx]
        new = (x_t - grad / s_t) > 0
        if simplex:  # an empty face is not a point of the simplex: keep the best vertex
            new |= (new.sum(-1, keepdims=True) == 0) & (grad == grad.min(-1, keepdims=True))
        same = (new == f_t).all(-1)
        x[idx] = x_t
        done = tuple(i[same] for i in idx)
        settled[done] = True
        todo[done] = False
        free[idx] = new
        if not todo.any():
            break
    return x, free, settled


def solve_qp(a: Array, b: Array, simplex: bool = False, tol: float = TOL) -> QPResult:
    r"""Solve :math:`\min_x \tfrac12 x^\top A x + b^\top x` s.t. :math:`x \ge 0` (and
    :math:`\mathbf 1^\top x = 1`), batched over the leading dimensions of ``b``.

    ``A`` (K × K, or batched like ``b``) must be symmetric positive definite. Raises
    :class:`SolverError` if the relative KKT residual exceeds ``tol``.
    """
    k = b.shape[-1]
    iters = min(k + 5, PDAS_ITERATIONS)
    kernel = _backend.qp_kernel()
    if kernel is not None and not simplex and k <= KERNEL_MAX_TASKS:
        return _certified(a, b, _kernel_solve(kernel, a, b, iters), simplex, tol)
    if simplex:  # the minimiser on the simplex does not depend on a common scale of A and b:
        # solve at unit scale (the bordered systems mix A's units with the constraint's)
        size = float(max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0)))
        if size != 1.0 and 0.0 < size < np.inf:
            return _certified(a, b, solve_qp(a / size, b / size, simplex, np.inf).x, simplex, tol)
    try:
        return _reference(a, b, simplex, tol, iters)
    except np.linalg.LinAlgError as err:  # a singular face system: A is not positive definite
        raise SolverError(f"QP solve failed: {err} (A must be symmetric positive definite)") from None


def _reference(a: Array, b: Array, simplex: bool, tol: float, iters: int) -> QPResult:
    """:func:`solve_qp` by the NumPy reference implementation."""
    k = b.shape[-1]
    if b.ndim == 1 and a.ndim == 2 and not simplex:
        x1, settled1 = _pdas_one(a, b, iters)
        if not settled1:
            x1 = _qp_primal(a, b, simplex, x1)
        # qp_residual's arithmetic with fewer NumPy calls: at K = 3 the calls are the cost
        x1 = np.maximum(x1, 0.0)
        grad1 = a @ x1 + b
        on = x1 > 0
        res1 = max(float(np.abs(grad1[on]).max(initial=0.0)), float((-grad1[~on]).max(initial=0.0)))
        worst = res1 / max(
            float(np.abs(a).max()) * max(1.0, float(x1.max(initial=0.0))), float(np.abs(b).max()), 1e-300
        )
        if not np.isfinite(x1).all():  # max() above passes NaN over: refuse it here
            worst = np.nan
        return _checked(x1, worst, tol)
    if b.ndim == 1:
        res = solve_qp(a if a.ndim == 2 else a[None], b[None], simplex, tol)
        return QPResult(res.x[0], res.residual)
    ainv = None
    if a.ndim == 2 and not simplex and b.shape[0] > 1 and k > DENSE_MAX_TASKS:
        ainv = np.asarray(np.linalg.inv(a), dtype=np.float64)
        if np.abs(a).sum(0).max() * np.abs(ainv).sum(0).max() > 1e4:  # too ill-conditioned for it
            ainv = None
    x, _, settled = _pdas(a, b, simplex, iters, ainv)
    for i in zip(*np.nonzero(~settled)):
        x[i] = _qp_primal(a if a.ndim == 2 else a[i], b[i], simplex, x[i])
    return _certified(a, b, x, simplex, tol)


def _kernel_solve(kernel: ModuleType, a: Array, b: Array, iters: int) -> Array:
    """The compiled kernel's solution of the batch (the same algorithm as the NumPy
    path above, one problem at a time); a problem it could not solve is NaN."""
    k = b.shape[-1]
    shared = a.ndim == 2
    b2 = np.ascontiguousarray(b, dtype=np.float64).reshape(-1, k)
    a2 = np.ascontiguousarray(a if shared else np.broadcast_to(a, (*b.shape[:-1], k, k)), dtype=np.float64)
    x = np.zeros(b2.shape)
    kernel.solve(a2, b2, x, b2.shape[0], k, iters, shared)
    out: Array = x.reshape(b.shape)
    return out


def _certified(a: Array, b: Array, x: Array, simplex: bool, tol: float) -> QPResult:
    """``x`` clipped at 0 (and scaled onto the simplex) and its relative KKT residual, or
    :class:`SolverError`."""
    x = np.maximum(x, 0.0)
    if simplex:
        with np.errstate(invalid="ignore", divide="ignore"):
            x = x / x.sum(-1, keepdims=True)
    residual = qp_residual(a, b, x, simplex)
    return _checked(x, float(residual.max()) if residual.size else 0.0, tol)


def _checked(x: Array, worst: float, tol: float) -> QPResult:
    if not worst <= tol:
        raise SolverError(f"QP solve failed its certificate: relative KKT residual {worst:.3g} > {tol:.0e}")
    return QPResult(x, worst)


def _qp_primal(a: Array, b: Array, simplex: bool, guess: Array) -> Array:
    """One QP by the primal active set, started from the feasible point nearest ``guess``
    (the primal-dual iterate: its support is usually almost right)."""

    def face(free: Mask) -> Face:
        return Face(_qp_face(a, b, free, simplex))

    def objective(v: Array) -> tuple[float, Array]:
        return float(0.5 * v @ a @ v + b @ v), a @ v + b

    start = np.maximum(guess, 0.0)
    if simplex:
        total = start.sum()
        start = start / total if total > 0 else vertex(np.diagonal(a) * 0.5 + b)
    return primal_active_set(face, objective, start, simplex)


def vertex(values: Array) -> Array:
    """The vertex of the simplex with the smallest value: the primal active set's start."""
    x = np.zeros(values.shape[-1])
    x[int(np.argmin(values))] = 1.0
    return x


# ------------------------------------------------------------- the primal active set
def primal_active_set(
    face: Callable[[Mask], Face],
    objective: Callable[[Array], tuple[float, Array]],
    x: Array,
    simplex: bool,
) -> Array:
    r"""Minimise a smooth strictly convex f over :math:`x \ge 0` (and the simplex).

    Args:
        face: the minimiser of f on the affine hull of a face given by its free
            coordinates (a boolean mask), or a descent ray if f is unbounded below there.
        objective: ``x -> (f(x), ∇f(x))``.
        x: a feasible start (0, or a vertex of the simplex).

    Each outer iteration frees the coordinate with the most negative reduced gradient,
    then moves towards the new face's minimiser, stepping to the boundary and fixing
    the coordinates that reach 0 until the minimiser is feasible. f decreases strictly
    between two visited face minimisers (a freed coordinate is a strict descent
    direction), so no face is visited twice: the method terminates by construction.
    When rounding makes that decrease vanish, the point reached is returned and the
    caller's certificate judges it.
    """
    free = x > 0
    best = np.inf
    k = x.shape[-1]
    while True:
        # inner loop: from feasible x, reach the minimiser of the current face
        for _ in range(k + 1):  # each pass fixes at least one coordinate, or ends
            target = face(free)
            step = target.point - x if not target.ray else target.point
            if not target.ray and (target.point[free] > 0).all():
                x = np.where(free, target.point, 0.0)
                break
            # a free coordinate whose target is not > 0 blocks the step (at once if x is
            # already 0 there: a coordinate freed at rounding level whose target is 0); on
            # a ray, the coordinates it decreases
            shrink = free & ((step < 0) if target.ray else ~(target.point > 0))
            if not shrink.any():  # an unbounded ray with no blocking bound cannot occur on x >= 0
                raise SolverError("active set: a descent ray meets no bound")
            down = shrink & (step < 0)
            ratios = np.where(shrink, np.where(down, x / np.where(down, -step, 1.0), 0.0), np.inf)
            t = float(ratios.min())
            if not target.ray:
                t = min(t, 1.0)
            x = np.maximum(np.where(free, x + t * step, 0.0), 0.0)
            hit = shrink & (ratios <= t)
            x[hit] = 0.0
            free = free & ~hit
            if simplex:
                if not free.any():  # cannot happen: Σx = 1 is kept along every step
                    raise SolverError("active set: every coordinate of the simplex was fixed at 0")
                x = x / x.sum()
        else:  # cannot happen: each pass frees nothing and fixes at least one coordinate
            raise SolverError("active set: the inner loop did not reach a face minimiser")
        value, grad = objective(x)
        if not value < best:  # no strict decrease left: rounding level
            return x
        best = value
        reduced = _reduced_gradient(grad, free, simplex)
        candidates = np.where(free, np.inf, reduced)
        j = int(np.argmin(candidates))
        if free.all() or candidates[j] >= 0:
            return x
        free = free.copy()
        free[j] = True
