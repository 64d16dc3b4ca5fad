r"""Small solvers for gradient balancing: no cvxpy, scipy or quadprog.

Everything here works on a task Gramian :math:`M = G G^\top` (K × K, K tasks), batched
over leading dimensions where that makes sense, on the Gramian's own device and
dtype. On a GPU the work stays in torch. On the CPU, the QPs of up to 64 tasks run
the same iteration in NumPy on the tensors' own memory, and single problems of up to
4 tasks run it with Python floats: at these sizes, a few dozen kernel launches cost
more than the arithmetic. The quadratic programs are solved by a primal-dual active-set method
(exact once the active set is right, usually within a few iterations), with a
projected-gradient fallback when it cycles.

* :func:`project_simplex`: Euclidean projection onto the probability simplex.
* :func:`nonneg_qp`: :math:`\min_x \tfrac12 x^\top A x + b^\top x` s.t. :math:`x \ge 0`
  (and optionally :math:`\mathbf 1^\top x = 1`).
* :func:`min_norm_weights`: the min-norm point of the convex hull of the task gradients.
* :func:`dual_cone_weights`: UPGrad's projection onto the dual cone of the gradients.
* :func:`upgrad_weights`: UPGrad's weights, the sum of those projections.
* :func:`cagrad_weights`: the dual problem of CAGrad.
* :func:`bargaining_weights`: Nash-MTL's :math:`M\alpha = \alpha^{-1}` and FairGrad's
  :math:`M w = w^{-1/\alpha}`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "project_simplex",
    "nonneg_qp",
    "min_norm_weights",
    "dual_cone_weights",
    "upgrad_weights",
    "cagrad_weights",
    "bargaining_weights",
]


def project_simplex(y: Tensor) -> Tensor:
    r"""Euclidean projection of each row of ``y`` onto :math:`\{w \ge 0, \sum w = 1\}`.

    Sort-based, no Python loop (Held, Wolfe & Crowder 1974; Duchi et al. 2008).

    Example:
        >>> project_simplex(torch.tensor([0.5, 2.0, -1.0]))
        tensor([0., 1., 0.])
    """
    k = y.shape[-1]
    s, _ = torch.sort(y, dim=-1, descending=True)
    css = s.cumsum(-1) - 1
    ind = torch.arange(1, k + 1, device=y.device, dtype=y.dtype)
    cond = s - css / ind > 0
    rho = cond.to(y.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = css.gather(-1, rho) / (rho + 1).to(y.dtype)
    return (y - theta).clamp(min=0)


def _solve_masked(a: Tensor, b: Tensor, free: Tensor, simplex: bool) -> Tensor:
    """Solve the KKT system restricted to the ``free`` coordinates (others fixed at 0)."""
    k = a.shape[-1]
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    both = free.unsqueeze(-1) & free.unsqueeze(-2)
    mat = torch.where(both, a, eye)
    rhs = torch.where(free, -b, torch.zeros_like(b))
    if not simplex:
        return torch.where(free, torch.linalg.solve(mat, rhs.unsqueeze(-1)).squeeze(-1), torch.zeros_like(b))
    # bordered system [[A_FF, 1_F], [1_Fᵀ, 0]] [x; ν] = [-b_F; 1]
    ones = free.to(a.dtype)
    top = torch.cat([mat, ones.unsqueeze(-1)], -1)
    bottom = torch.cat([ones, torch.zeros_like(ones[..., :1])], -1).unsqueeze(-2)
    full = torch.cat([top, bottom], -2)
    sol = torch.linalg.solve(full, torch.cat([rhs, torch.ones_like(rhs[..., :1])], -1).unsqueeze(-1))
    return torch.where(free, sol.squeeze(-1)[..., :k], torch.zeros_like(b))


def nonneg_qp(
    a: Tensor,
    b: Tensor,
    simplex: bool = False,
    max_iter: int = 50,
    tol: float | None = None,
) -> Tensor:
    r"""Solve :math:`\min_x \tfrac12 x^\top A x + b^\top x` s.t. :math:`x \ge 0` (and
    :math:`\sum x = 1` if ``simplex``), batched over leading dimensions.

    ``A`` must be positive definite (add a small multiple of the identity to a
    Gramian). Primal-dual active set: guess the free set, solve the equality-constrained
    problem on it, and move the coordinates whose value or multiplier has the wrong
    sign, until the set is stable (one host synchronisation per iteration). If it has
    not settled after ``max_iter`` iterations, projected gradient descent finishes the
    job. The KKT residual is below ``tol`` (default: 1e-6 relative in float32, 1e-10 in
    float64) on return.

    Example:
        >>> a = torch.eye(2, dtype=torch.float64)
        >>> nonneg_qp(a, torch.tensor([-1.0, 1.0], dtype=torch.float64))
        tensor([1., 0.], dtype=torch.float64)
    """
    if tol is None:
        tol = 1e-6 if a.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-10
    if _on_host(a, b):
        found = _host_nonneg_qp(a.detach().numpy(), b.detach().numpy(), simplex, max_iter)
        if found is not None:
            return torch.from_numpy(found)
    k = a.shape[-1]
    scale = a.diagonal(dim1=-2, dim2=-1).abs().amax(-1, keepdim=True).clamp(min=torch.finfo(a.dtype).tiny)
    # start from x = 0: free where the gradient there (b) points into the feasible set
    free = torch.ones(b.shape, dtype=torch.bool, device=b.device) if simplex else b < 0
    x = torch.zeros_like(b)
    converged = False
    for _ in range(max_iter):
        x = _solve_masked(a, b, free, simplex)
        grad = (a @ x.unsqueeze(-1)).squeeze(-1) + b
        if simplex:  # the multiplier of Σx = 1 shifts every gradient coordinate
            nu = (grad * free).sum(-1, keepdim=True) / free.sum(-1, keepdim=True).clamp(min=1)
            grad = grad - nu
        # complementarity function: free where x - c·grad > 0 (c = 1/scale)
        new_free = (x - grad / scale) > 0
        if simplex:
            new_free = new_free | (new_free.sum(-1, keepdim=True) == 0) & (
                grad == grad.amin(-1, keepdim=True)
            )
        if bool(torch.equal(new_free, free)):
            # a stable set satisfies the KKT conditions: x > 0 and zero gradient on it,
            # x = 0 and a non-negative gradient off it (up to rounding)
            converged = True
            break
        free = new_free
    x = x.clamp(min=0)
    if simplex:
        x = x / x.sum(-1, keepdim=True).clamp(min=torch.finfo(x.dtype).tiny)
    if not converged and _kkt_residual(a, b, x, simplex) > tol * max(1.0, float(scale.max())):
        x = _projected_gradient(a, b, x, simplex, scale)
    del k
    return x


_TINY64 = float(torch.finfo(torch.float64).tiny)

#: On the CPU, problems with up to this many tasks are solved in NumPy on the tensors'
#: own memory (no copy): a few dozen torch kernel launches cost more than the solve.
HOST_MAX_TASKS = 64
#: switch for tests: ``False`` runs the torch path on the CPU too
host_solvers = True


_HOST_DTYPES = (torch.float32, torch.float64)


def _on_host(*tensors: Tensor) -> bool:
    """Whether to solve with NumPy: CPU float32/float64 tensors (one dtype) of a small problem."""
    first = tensors[0]
    dtype = first.dtype
    if not host_solvers or dtype not in _HOST_DTYPES or first.shape[-1] > HOST_MAX_TASKS:
        return False
    return all(t.is_cpu and t.dtype is dtype for t in tensors)


def _host_nonneg_qp(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], simplex: bool, max_iter: int
) -> np.ndarray[Any, Any] | None:
    """:func:`nonneg_qp`'s active-set iteration in NumPy; ``None`` if it did not settle.

    ``a`` may be one K × K matrix shared by a batch of ``b`` (UPGrad's K problems).
    """
    k = a.shape[-1]
    shared = a.ndim == 2 and b.ndim == 2
    scale = np.maximum(
        np.abs(np.diagonal(a, axis1=-2, axis2=-1)).max(-1, keepdims=True), np.finfo(a.dtype).tiny
    )
    free = np.ones(b.shape, dtype=bool) if simplex else b < 0
    eye = np.eye(k, dtype=a.dtype)
    zero = a.dtype.type(0)
    for _ in range(max_iter):
        mat = np.where(free[..., :, None] & free[..., None, :], a, eye)
        rhs = np.where(free, -b, zero)
        if simplex:  # bordered system [[A_FF, 1_F], [1_Fᵀ, 0]] [x; ν] = [-b_F; 1]
            ones = free.astype(a.dtype)
            full = np.zeros((*a.shape[:-2], k + 1, k + 1), dtype=a.dtype)
            full[..., :k, :k] = mat
            full[..., :k, k] = ones
            full[..., k, :k] = ones
            rhs = np.concatenate([rhs, np.ones((*rhs.shape[:-1], 1), dtype=a.dtype)], -1)
            x = np.linalg.solve(full, rhs[..., None])[..., :k, 0]
        elif free.any():
            x = np.linalg.solve(mat, rhs[..., None])[..., 0]
        else:  # x = 0 (e.g. no conflict at all)
            x = rhs
        x = np.where(free, x, zero)
        grad = (x @ a.T if shared else (a @ x[..., None])[..., 0]) + b
        if simplex:
            grad = grad - (grad * free).sum(-1, keepdims=True) / np.maximum(free.sum(-1, keepdims=True), 1)
        new_free = (x - grad / scale) > 0
        if simplex:
            new_free |= (new_free.sum(-1, keepdims=True) == 0) & (grad == grad.min(-1, keepdims=True))
        if new_free.tobytes() == free.tobytes():
            out: np.ndarray[Any, Any] = np.maximum(x, zero)
            if simplex:
                out = out / np.maximum(out.sum(-1, keepdims=True), np.finfo(a.dtype).tiny)
            return out
        free = new_free
    return None


#: Up to this many tasks, a single CPU problem is solved with Python floats: at this size
#: a NumPy call costs more than the arithmetic.
PYTHON_MAX_TASKS = 4


def _py_solve(m: list[list[float]], r: list[float]) -> list[float]:
    """Gaussian elimination without pivoting: the systems here are positive definite
    (or bordered by a row of ones, whose last pivot is -1ᵀA⁻¹1 < 0)."""
    n = len(r)
    for i in range(n):
        pivot = m[i][i]
        for j in range(i + 1, n):
            f = m[j][i] / pivot
            if f:
                row_i, row_j = m[i], m[j]
                for c in range(i, n):
                    row_j[c] -= f * row_i[c]
                r[j] -= f * r[i]
    x = [0.0] * n
    for i in range(n - 1, -1, -1):
        row = m[i]
        x[i] = (r[i] - sum(row[c] * x[c] for c in range(i + 1, n))) / row[i]
    return x


def _py_nonneg_qp(
    a: list[list[float]], b: list[float], simplex: bool, max_iter: int, scale: float = 0.0
) -> list[float] | None:
    """:func:`nonneg_qp`'s active-set iteration with Python floats (one small problem);
    ``scale`` is max |Aᵢᵢ| when the caller has it."""
    k = len(b)
    if not scale:
        scale = max(max(abs(a[i][i]) for i in range(k)), _TINY64)
    free = [True] * k if simplex else [v < 0 for v in b]
    for _ in range(max_iter):
        idx = [i for i in range(k) if free[i]]
        x = [0.0] * k
        if idx:
            m = [[a[i][j] for j in idx] for i in idx]
            r = [-b[i] for i in idx]
            if simplex:  # the bordered system of Σx = 1
                for row in m:
                    row.append(1.0)
                m.append([1.0] * len(idx) + [0.0])
                r.append(1.0)
            for i, v in zip(idx, _py_solve(m, r)):
                x[i] = v
        grad = list(b)
        for j in idx:
            x_j = x[j]
            for i in range(k):
                grad[i] += a[i][j] * x_j
        if simplex:
            nu = sum(grad[i] for i in idx) / max(len(idx), 1)
            grad = [g - nu for g in grad]
        new_free = [x[i] - grad[i] / scale > 0 for i in range(k)]
        if simplex and not any(new_free):
            low = min(grad)
            new_free = [g == low for g in grad]
        if new_free == free:
            x = [max(v, 0.0) for v in x]
            if simplex:
                total = max(sum(x), _TINY64)
                x = [v / total for v in x]
            return x
        free = new_free
    return None


def _py_regularised(gramian: list[list[float]], reg: float, float64: bool) -> list[list[float]]:
    """:func:`_regularised` with Python floats."""
    reg = max(reg, 1e-12 if float64 else 1e-7)
    k = len(gramian)
    trace = sum(gramian[i][i] for i in range(k))
    out = (
        [[v / trace for v in row] for row in gramian]
        if trace > 0
        else [[float(i == j) for j in range(k)] for i in range(k)]
    )
    for i in range(k):
        out[i][i] += reg
    return out


def _in_python(gramian: Tensor, *others: Tensor) -> bool:
    """A single small CPU problem: solve it with Python floats."""
    return gramian.ndim == 2 and gramian.shape[-1] <= PYTHON_MAX_TASKS and _on_host(gramian, *others)


def _host_regularised(gramian: np.ndarray[Any, Any], reg: float) -> np.ndarray[Any, Any]:
    """:func:`_regularised` in NumPy."""
    reg = max(reg, 1e-12 if gramian.dtype == np.float64 else 1e-7)
    eye = np.eye(gramian.shape[-1], dtype=gramian.dtype)
    trace = np.trace(gramian, axis1=-2, axis2=-1)[..., None, None]
    normed = np.where(trace > 0, gramian / np.maximum(trace, np.finfo(gramian.dtype).tiny), eye)
    out: np.ndarray[Any, Any] = normed + gramian.dtype.type(reg) * eye
    return out


def _kkt_residual(a: Tensor, b: Tensor, x: Tensor, simplex: bool) -> float:
    grad = (a @ x.unsqueeze(-1)).squeeze(-1) + b
    if simplex:
        support = x > 0
        nu = torch.where(support, grad, torch.full_like(grad, float("inf"))).amin(-1, keepdim=True)
        nu = torch.where(torch.isinf(nu), grad.amin(-1, keepdim=True), nu)
        grad = grad - nu
    # x >= 0, grad >= 0 on x = 0, grad = 0 where x > 0
    res = torch.where(x > 0, grad.abs(), (-grad).clamp(min=0))
    return float(res.max()) if res.numel() else 0.0


def _projected_gradient(a: Tensor, b: Tensor, x: Tensor, simplex: bool, scale: Tensor) -> Tensor:
    """Accelerated projected gradient (FISTA): the slow, sure fallback."""
    lip = torch.linalg.matrix_norm(a, ord=2).unsqueeze(-1).clamp(min=torch.finfo(a.dtype).tiny)
    y, t = x, 1.0
    for _ in range(5000):
        grad = (a @ y.unsqueeze(-1)).squeeze(-1) + b
        z = y - grad / lip
        x_new = project_simplex(z) if simplex else z.clamp(min=0)
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = x_new + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
    del scale
    return x


def _regularised(gramian: Tensor, reg: float) -> Tensor:
    """``M / tr(M) + reg·I``: scale-free and positive definite (``reg`` is at least
    1e-12 in float64, 1e-7 otherwise, so that a zero-gradient task keeps it invertible)."""
    reg = max(reg, 1e-12 if gramian.dtype == torch.float64 else 1e-7)
    k = gramian.shape[-1]
    trace = gramian.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    eye = torch.eye(k, dtype=gramian.dtype, device=gramian.device)
    normed = torch.where(trace > 0, gramian / trace.clamp(min=torch.finfo(gramian.dtype).tiny), eye)
    return normed + reg * eye


def min_norm_weights(gramian: Tensor, reg: float = 0.0) -> Tensor:
    r"""Weights of the min-norm point of the convex hull of the task gradients.

    .. math:: w^\star = \arg\min_{w \in \Delta} w^\top M w ,

    the direction of MGDA (Désidéri 2012; Sener & Koltun 2018). Closed form for two
    tasks; the active-set QP otherwise. ``reg`` adds ``reg·I`` to the trace-normalised
    Gramian (default 0; a tiny value is used when the Gramian is singular).

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> min_norm_weights(g @ g.T)
        tensor([0.8000, 0.2000])
    """
    k = gramian.shape[-1]
    if k == 1:
        return torch.ones(gramian.shape[:-1], dtype=gramian.dtype, device=gramian.device)
    if k == 2:
        m11, m22, m12 = gramian[..., 0, 0], gramian[..., 1, 1], gramian[..., 0, 1]
        denom = (m11 + m22 - 2 * m12).clamp(min=torch.finfo(gramian.dtype).tiny)
        w0 = ((m22 - m12) / denom).clamp(0, 1)
        return torch.stack([w0, 1 - w0], -1)
    if _in_python(gramian):
        a_py = _py_regularised(gramian.tolist(), reg, gramian.dtype == torch.float64)
        w = _py_nonneg_qp(a_py, [0.0] * k, True, 50)
        if w is not None:
            return torch.tensor(w, dtype=gramian.dtype)
    if _on_host(gramian):
        a_host = _host_regularised(gramian.detach().numpy(), reg)
        found = _host_nonneg_qp(a_host, np.zeros(a_host.shape[:-1], dtype=a_host.dtype), True, 50)
        if found is not None:
            return torch.from_numpy(found)
    a = _regularised(gramian, reg)
    return nonneg_qp(a, torch.zeros(gramian.shape[:-1], dtype=a.dtype, device=a.device), simplex=True)


def dual_cone_weights(gramian: Tensor, u: Tensor, reg: float = 1e-4) -> Tensor:
    r"""Weights :math:`v` of the projection of :math:`G^\top u` onto the dual cone
    :math:`\{x : G x \ge 0\}` of the task gradients (Quinton & Rey 2024, Prop. 1):

    .. math:: v = \arg\min_{v \ge u} v^\top M v ,

    with :math:`M` trace-normalised plus ``reg·I`` as in TorchJD. ``u`` may be a
    batch of weight vectors (..., K): all are solved at once.

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
        >>> v = dual_cone_weights(g @ g.T, torch.tensor([1.0, 0.0]), reg=0.0)
        >>> bool((g @ (g.T @ v) >= -1e-6).all())
        True
    """
    if _in_python(gramian, u) and u.ndim <= 2:
        a_py = _py_regularised(gramian.tolist(), reg, gramian.dtype == torch.float64)
        rows = u.tolist() if u.ndim == 2 else [u.tolist()]
        solved = []
        for row in rows:
            b = [sum(ai * ui for ai, ui in zip(a_row, row)) for a_row in a_py]
            x_py = _py_nonneg_qp(a_py, b, False, 50)
            if x_py is None:
                break
            solved.append([ui + xi for ui, xi in zip(row, x_py)])
        else:
            out = torch.tensor(solved, dtype=gramian.dtype)
            return out if u.ndim == 2 else out[0]
    if _on_host(gramian, u):
        u_host = u.detach().numpy()
        a_host = _host_regularised(gramian.detach().numpy(), reg)
        a_host = np.broadcast_to(a_host, (*u_host.shape[:-1], *a_host.shape[-2:]))
        found = _host_nonneg_qp(a_host, (a_host @ u_host[..., None])[..., 0], False, 50)
        if found is not None:
            return torch.from_numpy(u_host + found)
    a = _regularised(gramian, reg)
    a_b = a.expand(*u.shape[:-1], *a.shape[-2:])
    x = nonneg_qp(a_b, (a_b @ u.unsqueeze(-1)).squeeze(-1))
    return u + x


def upgrad_weights(gramian: Tensor, pref: Tensor, reg: float = 1e-4) -> Tensor:
    r"""UPGrad's weights: :math:`\sum_i v_i`, with :math:`v_i` the :func:`dual_cone_weights`
    of the preference-weighted row :math:`p_i e_i` (Quinton & Rey 2024).

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> upgrad_weights(g @ g.T, torch.tensor([0.5, 0.5], dtype=torch.float64))  # no conflict
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    if _in_python(gramian, pref):
        a = _py_regularised(gramian.tolist(), reg, gramian.dtype == torch.float64)
        p = pref.tolist()
        total = list(p)
        scale = max(max(abs(a[i][i]) for i in range(len(p))), _TINY64)
        for i, p_i in enumerate(p):  # row i: u = p_i e_i, b = A u
            x = _py_nonneg_qp(a, [row[i] * p_i for row in a], False, 50, scale)
            if x is None:
                break
            total = [t + v for t, v in zip(total, x)]
        else:
            return torch.tensor(total, dtype=gramian.dtype)
    if _on_host(gramian, pref) and gramian.ndim == 2:
        a_host = _host_regularised(gramian.detach().numpy(), reg)
        p_host = pref.detach().numpy()
        found = _host_nonneg_qp(a_host, (a_host * p_host).T, False, 50)  # row i: b = p_i A e_i
        if found is not None:
            return torch.from_numpy(p_host + found.sum(0))
    return dual_cone_weights(gramian, torch.diag(pref), reg=reg).sum(0)


def cagrad_weights(gramian: Tensor, c: float, max_iter: int = 50) -> Tensor:
    r"""Weights of CAGrad's update (Liu et al., NeurIPS 2021), in the task-gradient basis.

    The dual problem

    .. math:: w^\star = \arg\min_{w \in \Delta} g_w^\top g_0 + c\,\|g_0\|\,\|g_w\|,
        \qquad g_w = G^\top w,\ g_0 = \tfrac1K G^\top \mathbf 1 ,

    gives the update :math:`d = g_0 + \frac{c\|g_0\|}{\|g_w\|} g_w`, returned as the
    weights :math:`\tfrac1K \mathbf 1 + \frac{c\|g_0\|}{\|g_w\|} w^\star` (so
    :math:`d = G^\top \text{weights}`, without the paper's optional 1/(1+c²) rescale).

    Solved exactly by an active-set iteration: on a support S, the optimality
    conditions with :math:`\lambda = c\|g_0\|/\|g_w\|` give
    :math:`w_S = a + b/\lambda` with :math:`a = M_S^{-1}\mathbf 1/(\mathbf 1^\top M_S^{-1}\mathbf 1)`
    and :math:`\mathbf 1^\top b = 0`, hence :math:`\lambda^2 = (c^2\|g_0\|^2 - b^\top M b)\,
    \mathbf 1^\top M_S^{-1}\mathbf 1` in closed form; the support is then corrected by the
    signs of w and of the multipliers until it is stable.

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> cagrad_weights(g @ g.T, c=0.4)  # symmetric tasks: d = (1 + c)·g0
        tensor([0.7000, 0.7000], dtype=torch.float64)
    """
    k = gramian.shape[-1]
    dtype, device = gramian.dtype, gramian.device
    trace = gramian.diagonal().sum().clamp(min=torch.finfo(dtype).tiny)
    eye = torch.eye(k, dtype=dtype, device=device)
    m = gramian / trace + (1e-12 if dtype == torch.float64 else 1e-7) * eye
    ones = torch.ones(k, dtype=dtype, device=device)
    q = m @ ones / k
    g0_sq = float(ones @ q) / k
    uniform = ones / k
    if c == 0 or g0_sq <= 0:
        return uniform
    target_sq = c * c * g0_sq
    support = torch.ones(k, dtype=torch.bool, device=device)
    w = uniform
    for _ in range(max_iter):
        both = support.unsqueeze(0) & support.unsqueeze(1)
        ms = torch.where(both, m, eye)
        s1 = torch.where(support, ones, torch.zeros_like(ones))
        qs = torch.where(support, q, torch.zeros_like(q))
        inv1 = torch.linalg.solve(ms, s1)
        invq = torch.linalg.solve(ms, qs)
        denom = s1 @ inv1
        a = inv1 / denom
        b = inv1 * ((s1 @ invq) / denom) - invq
        lam_sq = (target_sq - b @ m @ b) * denom
        lam = lam_sq.clamp(min=torch.finfo(dtype).eps).sqrt()
        w = a + b / lam
        grad = q + lam * (m @ w)  # ∇(wᵀq + (λ/2) wᵀMw) at the fixed point
        nu = (grad * s1).sum() / s1.sum()
        new_support = (w - (grad - nu) / m.diagonal().max()) > 0
        if not bool(new_support.any()):
            new_support = grad == grad.min()
        if bool(torch.equal(new_support, support)) and bool((w >= -1e-9).all()):
            break
        support = new_support
    w = w.clamp(min=0)
    w = w / w.sum()
    gw = (w @ m @ w).clamp(min=torch.finfo(dtype).tiny).sqrt()
    out: Tensor = uniform + (c * g0_sq**0.5 / gw) * w
    return out


def bargaining_weights(
    gramian: Tensor,
    alpha: float = 1.0,
    init: Tensor | None = None,
    max_iter: int = 100,
    tol: float | None = None,
) -> Tensor:
    r"""Solve :math:`M w = w^{-1/\alpha}` for :math:`w > 0` (element-wise power).

    With α = 1 this is Nash-MTL's bargaining system :math:`G G^\top \alpha = 1/\alpha`
    (Navon et al., ICML 2022); general α > 0 is FairGrad's α-fair system (Ban & Ji,
    ICML 2024). It is the stationarity condition of the strictly convex

    .. math:: \phi(w) = \tfrac12 w^\top M w - \sum_i h(w_i),\quad h'(w) = w^{-1/\alpha},

    minimised by damped Newton steps that keep w > 0, warm-started from ``init``.
    The system is first scaled to unit diagonal (:math:`w = D u`,
    :math:`D = \operatorname{diag}(M)^{-1/2}`), which makes it independent of the scale of
    each task's gradient; a task with a zero gradient gets weight 0. The relative
    residual :math:`\max_i |w_i (Mw)_i w_i^{1/\alpha - 1} - 1|` is below ``tol``
    (default 1e-10 in float64, 1e-5 in float32) unless the Gramian is singular.

    Example:
        >>> m = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> bargaining_weights(m)  # orthogonal gradients: w_i = 1/‖g_i‖
        tensor([0.5000, 1.0000], dtype=torch.float64)
    """
    dtype, device = gramian.dtype, gramian.device
    if tol is None:
        tol = 1e-10 if dtype == torch.float64 else 1e-5
    p = 1.0 / alpha
    diag = gramian.diagonal()
    live = diag > diag.max() * torch.finfo(dtype).eps ** 2
    out = torch.zeros_like(diag)
    if not bool(live.any()):
        return out
    idx = live.nonzero().squeeze(1)
    m = gramian[idx][:, idx]
    d = m.diagonal().rsqrt()
    k = len(idx)
    reg = (1e-12 if dtype == torch.float64 else 1e-6) * torch.eye(k, dtype=dtype, device=device)
    c = d[:, None] * m * d[None, :] + reg
    s = d.pow(1 - p)  # Mw = w^-p with w = Du  <=>  Cu = s·u^-p
    u = torch.ones(k, dtype=dtype, device=device)
    if init is not None and bool((init[idx] > 0).all()):
        u = init[idx].to(dtype) / d

    def phi(v: Tensor) -> Tensor:
        h = torch.log(v) if p == 1 else v.pow(1 - p) / (1 - p)
        return 0.5 * v @ c @ v - (s * h).sum()

    def residual(v: Tensor) -> Tensor:
        return c @ v - s * v.pow(-p)

    res = residual(u)
    for _ in range(max_iter):
        if float((res * u / (s * u.pow(-p) * u)).abs().max()) < tol:
            break
        hess = c + torch.diag(p * s * u.pow(-p - 1))
        step = torch.linalg.solve(hess, res)
        shrink = step > 0  # coordinates that decrease: stay positive
        t = min(1.0, 0.99 * float((u[shrink] / step[shrink]).min())) if bool(shrink.any()) else 1.0
        f0, norm0 = float(phi(u)), float(res.norm())
        slope = float(res @ step)
        while True:
            cand = u - t * step
            res_c = residual(cand)
            # Armijo on φ, or (where φ's decrease is below rounding) a smaller residual
            if float(phi(cand)) <= f0 - 1e-4 * t * slope or float(res_c.norm()) < 0.9 * norm0 or t < 1e-12:
                break
            t *= 0.5
        u, res = cand, res_c
    out[idx] = d * u
    return out
