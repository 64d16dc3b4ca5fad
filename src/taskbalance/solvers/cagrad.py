r"""The dual problem of CAGrad (Liu et al., NeurIPS 2021)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ._backend import TOL, Array, Mask, SolverError, from_host, host_gramian, regularised
from .active_set import Face, kkt_residual, primal_active_set, vertex

__all__ = ["cagrad_weights"]


def cagrad_weights(gramian: Tensor, c: float) -> Tensor:
    r"""Weights of CAGrad's update (Liu et al., NeurIPS 2021), in the task-gradient basis.

    The dual problem

    .. math:: w^\star = \arg\min_{w \in \Delta} F(w) = g_w^\top g_0 + c\,\|g_0\|\,\|g_w\|,
        \qquad g_w = G^\top w,\ g_0 = \tfrac1K G^\top \mathbf 1 ,

    gives the update :math:`d = g_0 + \frac{c\|g_0\|}{\|g_w\|} g_w`, returned as the
    weights :math:`\tfrac1K \mathbf 1 + \frac{c\|g_0\|}{\|g_w\|} w^\star` (so
    :math:`d = G^\top \text{weights}`, without the paper's optional 1/(1+c²) rescale).

    F is strictly convex on the simplex (with :math:`M = G G^\top / \operatorname{tr}
    + 10^{-12} I`), and its minimiser on a face S is known in closed form: with
    :math:`\lambda = c\|g_0\|/\|g_w\|`, :math:`w_S = a + b/\lambda`,
    :math:`a = M_S^{-1}\mathbf 1/(\mathbf 1^\top M_S^{-1}\mathbf 1)`,
    :math:`b = a\,\mathbf 1^\top M_S^{-1} q - M_S^{-1} q` (:math:`q = M\mathbf 1/K`) and
    :math:`\lambda^2 = (c^2\|g_0\|^2 - b^\top M_S b)\,\mathbf 1^\top M_S^{-1}\mathbf 1`;
    where that is not positive, F decreases without bound along b on the face's
    affine hull. The primal active set
    (:func:`~taskbalance.solvers.active_set.primal_active_set`) uses these faces and
    terminates by construction; the result is certified by the duality gap
    :math:`F(w) - \\min_i \\langle g_i, d\\rangle`, at most 1e-9 relative to
    :math:`\\max_i M_{ii}` times the conditioning :math:`\\max(1, \\sqrt{\\max_i M_{ii}}/\\|g_w\\|)`.

    Example:
        >>> import torch
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> cagrad_weights(g @ g.T, c=0.4)  # symmetric tasks: d = (1 + c)·g0
        tensor([0.7000, 0.7000], dtype=torch.float64)
    """
    g = host_gramian(gramian, "cagrad_weights")
    if g.ndim != 2:
        raise ValueError(f"cagrad_weights: expected one (K, K) Gramian, got shape {tuple(gramian.shape)}")
    if not c >= 0:
        raise ValueError(f"cagrad_weights: c must be >= 0, got {c}")
    k = g.shape[-1]
    uniform = np.full(k, 1.0 / k)
    if not np.trace(g) > 0:
        return from_host(uniform, gramian)
    m = regularised(g, 0.0)
    q = m.sum(1) / k
    g0_sq = float(q.sum()) / k
    if c == 0 or g0_sq <= 0:
        return from_host(uniform, gramian)
    kappa = c * g0_sq**0.5

    def face(free: Mask) -> Face:
        idx = np.flatnonzero(free)
        out = np.zeros(k)
        if len(idx) == 1:
            out[idx] = 1.0
            return Face(out)
        ms = m[np.ix_(idx, idx)]
        inv = np.linalg.solve(ms, np.stack([np.ones(len(idx)), q[idx]], 1))
        inv1, invq = inv[:, 0], inv[:, 1]
        denom = float(inv1.sum())
        b = inv1 * (float(invq.sum()) / denom) - invq
        lam_sq = (kappa * kappa - float(b @ ms @ b)) * denom
        if lam_sq <= 0:
            out[idx] = b
            return Face(out, ray=True)
        out[idx] = inv1 / denom + b / lam_sq**0.5
        return Face(out)

    def objective(w: Array) -> tuple[float, Array]:
        mw = m @ w
        gw = float(w @ mw) ** 0.5
        return float(w @ q) + kappa * gw, q + (kappa / gw) * mw

    w = primal_active_set(face, objective, vertex(q + kappa * np.sqrt(np.diagonal(m))), simplex=True)
    w = np.maximum(w, 0.0)
    w /= w.sum()
    value, grad = objective(w)
    gw = float(w @ m @ w) ** 0.5
    weights = uniform + (kappa / gw) * w
    # certificate: the duality gap. d = Gᵀweights is primal feasible (‖d - g0‖ = c‖g0‖) and
    # its worst improvement min_i ⟨gᵢ, d⟩ can never exceed F(w); equality is optimality.
    # Where 0 is (nearly) in the hull of the gradients, ‖g_w‖ is tiny, the dual's
    # curvature grows like 1/‖g_w‖ and the primal optimum is not unique: the gap is
    # measured in that conditioning (‖g_w‖ >= 1e-6·√size, by the regularisation).
    gap = value - float((m @ weights).min())
    size = float(np.diagonal(m).max())
    if not gap <= TOL * size * max(1.0, size**0.5 / gw):
        residual = max(float(kkt_residual(grad, w, w > 0, True)), abs(float(w.sum()) - 1.0))
        raise SolverError(
            f"CAGrad's dual failed its certificate: duality gap {gap / size:.3g}, KKT residual {residual:.3g}"
        )
    # a task with a zero gradient contributes nothing to d whatever its weight: report 1/K
    # (the dual may put its mass there, with κ/‖g_w‖ of order 1e6)
    weights = np.where(np.diagonal(g) == 0, 1.0 / k, weights)
    return from_host(weights, gramian)
