"""Mathematical properties of the gradient methods on random and adversarial Jacobians."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

import taskbalance as tb
from taskbalance.gradient.pcgrad import pcgrad_coefficients
from taskbalance.solvers import (
    min_norm_weights,
    nonneg_qp,
    project_simplex,
)


def cases(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = 30

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    base = rnd(2, n)
    out = {
        "two-conflicting": torch.stack([base[0], -0.8 * base[0] + 0.3 * base[1]]),
        "ten-tasks": rnd(10, n),
        "rank-deficient": rnd(3, 2) @ rnd(2, n),  # 5... rows in a 2-d span
        "zero-task": torch.cat([rnd(3, n), torch.zeros(1, n)]),
        "scales-1e6": rnd(4, n) * torch.tensor([[1e-3], [1.0], [1e2], [1e3]], dtype=torch.float64),
        "random-5": rnd(5, n),
    }
    return {k: v.to(dtype) for k, v in out.items()}


DTYPES = [torch.float32, torch.float64]
ALL_CASES = [(d, c) for d in DTYPES for c in cases(d)]


def run(name: str, jac: torch.Tensor, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    b = tb.create(name, tasks=jac.shape[0], **kw)
    return b.aggregate(jac)  # type: ignore[attr-defined, no-any-return]


def brute_force_min_norm(jac: np.ndarray) -> float:
    """Min over every support of the equality-constrained min-norm problem (exact)."""
    m = jac @ jac.T
    k = m.shape[0]
    best = np.inf
    for size in range(1, k + 1):
        for s in itertools.combinations(range(k), size):
            ms = m[np.ix_(s, s)]
            kkt = np.block([[ms, np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            rhs = np.concatenate([np.zeros(size), [1.0]])
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if (sol >= -1e-12).all():
                w = np.zeros(k)
                w[list(s)] = sol
                best = min(best, float(np.linalg.norm(w @ jac) ** 2))
    return best


def tol(dtype: torch.dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 1e-8


@pytest.mark.parametrize(("dtype", "case"), ALL_CASES)
def test_mgda_is_the_min_norm_point_and_a_common_descent_direction(dtype: torch.dtype, case: str) -> None:
    jac = cases(dtype)[case]
    d, w = run("mgda", jac)
    assert w.min() >= -tol(dtype) and float(w.sum()) == pytest.approx(1.0, abs=1e-5)
    scale = float((jac * jac).sum(1).max())
    best = brute_force_min_norm(jac.double().numpy())
    assert float(d.double().norm() ** 2) <= best + 1e-4 * scale + 1e-12
    assert float((jac @ d).min()) >= -1e-4 * scale


@pytest.mark.parametrize(("dtype", "case"), ALL_CASES)
def test_upgrad_is_non_conflicting(dtype: torch.dtype, case: str) -> None:
    jac = cases(dtype)[case]
    d, _ = run("upgrad", jac, reg=0.0)
    scale = float((jac * jac).sum(1).max())
    assert float((jac.double() @ d.double()).min()) >= -1e-4 * scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_pcgrad_removes_the_negative_cosine_for_two_tasks(dtype: torch.dtype) -> None:
    jac = cases(dtype)["two-conflicting"]
    assert float(jac[0] @ jac[1]) < 0
    coef = pcgrad_coefficients((jac @ jac.T).double(), torch.tensor([[1], [0]]))
    projected = coef.to(dtype) @ jac
    assert float(projected[0] @ jac[1]) == pytest.approx(0.0, abs=1e-4 * float(jac.norm() ** 2))
    assert float(projected[1] @ jac[0]) == pytest.approx(0.0, abs=1e-4 * float(jac.norm() ** 2))
    d, _ = run("pcgrad", jac)
    torch.testing.assert_close(d, projected.sum(0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("dtype", "case"), [(d, c) for d, c in ALL_CASES if c not in ("zero-task", "rank-deficient")]
)
def test_imtl_g_gives_equal_projections_on_unit_gradients(dtype: torch.dtype, case: str) -> None:
    jac = cases(dtype)[case].double()
    d, w = run("imtl-g", jac)
    proj = (jac @ d) / jac.norm(dim=1)
    assert float(w.sum()) == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(proj, proj.mean().expand_as(proj), rtol=1e-5, atol=1e-8)


def test_imtl_g_rank_deficient_falls_back_to_least_squares() -> None:
    """3 gradients in a 2-d span: equal projections have no exact solution in general;
    the pseudo-inverse gives the least-squares weights, finite and summing to 1."""
    jac = cases(torch.float64)["rank-deficient"]
    d, w = run("imtl-g", jac)
    assert bool(torch.isfinite(d).all()) and float(w.sum()) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize(("dtype", "case"), ALL_CASES)
def test_aligned_mtl_gramian_has_equal_eigenvalues(dtype: torch.dtype, case: str) -> None:
    from taskbalance.gradient.aligned_mtl import aligned_matrix

    jac = cases(dtype)[case].double()
    m = jac @ jac.T
    b = aligned_matrix(m, eps=torch.finfo(dtype).eps)
    lam = torch.linalg.eigvalsh(b @ m @ b)
    kept = lam[lam > lam.max() * 1e-6]
    torch.testing.assert_close(kept, kept.max().expand_as(kept), rtol=1e-6, atol=0)
    assert len(kept) == int(torch.linalg.matrix_rank(cases(dtype)[case]))


@pytest.mark.parametrize(
    ("dtype", "case"), [(d, c) for d, c in ALL_CASES if c not in ("zero-task", "rank-deficient")]
)
def test_nash_mtl_meets_its_optimality_condition(dtype: torch.dtype, case: str) -> None:
    jac = cases(dtype)[case]
    _, alpha = run("nash-mtl", jac, max_norm=None)
    m = (jac @ jac.T).double()  # the authors' system is unnormalised: αᵢ (G Gᵀ α)ᵢ = 1
    a = alpha.double()
    assert bool((a > 0).all())
    torch.testing.assert_close(a * (m @ a), torch.ones_like(a), rtol=0, atol=1e-4)


def test_nash_mtl_zero_task_gets_no_weight_and_max_norm_caps() -> None:
    jac = cases(torch.float64)["zero-task"]
    _, alpha = run("nash-mtl", jac, max_norm=None)
    assert float(alpha[-1]) == 0.0
    d, _ = run("nash-mtl", jac * 1e3, max_norm=1.0)
    assert float(d.norm()) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize(("dtype", "case"), ALL_CASES)
def test_cagrad_meets_its_constraint_and_beats_the_mean(dtype: torch.dtype, case: str) -> None:
    jac = cases(dtype)[case].double()
    c = 0.4
    d, _ = run("cagrad", jac, c=c, rescale=False)
    g0 = jac.mean(0)
    assert float((d - g0).norm()) <= c * float(g0.norm()) * (1 + 1e-6) + 1e-12
    # the worst task improves at least as much as with the mean gradient
    assert float((jac @ d).min()) >= float((jac @ g0).min()) - 1e-6 * float(jac.norm() ** 2)


@pytest.mark.parametrize(
    "name", ["mgda", "upgrad", "imtl-g", "aligned-mtl", "nash-mtl", "cagrad", "fairgrad"]
)
@pytest.mark.parametrize("case", ["ten-tasks", "random-5", "scales-1e6"])
def test_order_invariant_methods_ignore_task_order(name: str, case: str) -> None:
    jac = cases(torch.float64)[case]
    perm = torch.randperm(jac.shape[0], generator=torch.Generator().manual_seed(3))
    d1, w1 = run(name, jac)
    d2, w2 = run(name, jac[perm])
    torch.testing.assert_close(d1, d2, rtol=1e-5, atol=1e-8 * float(jac.abs().max()))
    torch.testing.assert_close(w1[perm], w2, rtol=1e-5, atol=1e-10)


def test_fairgrad_interpolates_between_mean_and_nash() -> None:
    jac = cases(torch.float64)["random-5"]
    _, w0 = run("fairgrad", jac, alpha=0.0, max_norm=None)
    torch.testing.assert_close(w0, torch.ones(5, dtype=torch.float64))  # K · 1/K
    _, w1 = run("fairgrad", jac, alpha=1.0, max_norm=None)
    w1 = w1 / 5  # the authors' direction is K·Σ wᵢ gᵢ
    m = jac @ jac.T
    torch.testing.assert_close(m @ w1, 1 / w1, rtol=1e-6, atol=0)
    _, w2 = run("fairgrad", jac, alpha=2.0, max_norm=None)
    w2 = w2 / 5
    torch.testing.assert_close(m @ w2, w2.pow(-0.5), rtol=1e-6, atol=0)
    d, _ = run("fairgrad", jac, alpha=2.0)  # the default cap, as in the authors' trainer
    assert float(d.norm()) == pytest.approx(1.0, rel=1e-9)


def test_graddrop_keeps_one_sign_per_coordinate() -> None:
    jac = cases(torch.float64)["random-5"]
    d, w = run("graddrop", jac, seed=1)
    pos, neg = jac.clamp(min=0).sum(0), jac.clamp(max=0).sum(0)
    assert bool((((d - pos).abs() < 1e-12) | ((d - neg).abs() < 1e-12)).all())
    assert bool(((w >= 0) & (w <= 1)).all())
    full, _ = run("graddrop", jac, leak=1.0)
    torch.testing.assert_close(full, jac.sum(0))


def test_gradvac_first_step_is_pcgrad_and_targets_move() -> None:
    jac = cases(torch.float64)["two-conflicting"]
    b = tb.create("gradvac", tasks=2)
    d, _ = b.aggregate(jac)  # type: ignore[attr-defined]
    p, _ = run("pcgrad", jac)
    torch.testing.assert_close(d, p, rtol=1e-6, atol=1e-8)
    cos = float(jac[0] @ jac[1] / (jac[0].norm() * jac[1].norm()))
    assert float(b.targets[0, 1]) == pytest.approx(0.5 * cos, rel=1e-6)


def test_db_mtl_balances_moving_average_norms() -> None:
    jac = cases(torch.float64)["scales-1e6"]
    b = tb.create("db-mtl", tasks=4)
    for _ in range(3):
        d, alpha = b.aggregate(jac)  # type: ignore[attr-defined]
    avg = b.averages
    assert avg is not None
    scaled = alpha[:, None] * avg
    norms = scaled.norm(dim=1)
    # the definition's +1e-8 in αᵢ = max‖ĝ‖/(‖ĝᵢ‖ + 1e-8) is visible on the 1e-3-scaled task
    torch.testing.assert_close(norms, norms.max().expand_as(norms), rtol=1e-4, atol=0)
    torch.testing.assert_close(d, scaled.sum(0))


# ---------------------------------------------------------------- the solvers themselves
def test_project_simplex_matches_its_definition() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(20, 6, generator=g, dtype=torch.float64) * 3
    p = project_simplex(y)
    assert bool((p >= 0).all()) and torch.allclose(p.sum(-1), torch.ones(20, dtype=torch.float64))
    # KKT of the projection: y - p = θ·1 on the support, ≤ θ off it
    for row_y, row_p in zip(y, p):
        theta = (row_y - row_p)[row_p > 0]
        assert float(theta.max() - theta.min()) < 1e-10
        assert bool(((row_y - row_p)[row_p == 0] <= theta.mean() + 1e-10).all())


def test_nonneg_qp_meets_kkt_and_is_batched() -> None:
    g = torch.Generator().manual_seed(1)
    r = torch.randn(8, 5, 5, generator=g, dtype=torch.float64)
    a = r @ r.transpose(1, 2) + 1e-3 * torch.eye(5, dtype=torch.float64)
    b = torch.randn(8, 5, generator=g, dtype=torch.float64)
    x = nonneg_qp(a, b)
    grad = (a @ x.unsqueeze(-1)).squeeze(-1) + b
    assert bool((x >= 0).all()) and bool((grad >= -1e-9).all())
    assert float((x * grad).abs().max()) < 1e-9


def test_min_norm_matches_the_brute_force_minimum() -> None:
    jac = cases(torch.float64)["random-5"][:3]
    m = jac @ jac.T
    w = min_norm_weights(m)
    assert float((w @ jac).norm() ** 2) <= brute_force_min_norm(jac.numpy()) + 1e-10


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_mgda_normalizations_take_the_min_norm_point_of_the_scaled_gradients(normalization: str) -> None:
    """apply_to="normalized": d is the min-norm point of the normalised gradients; the
    default, as in the MGDA-UB code (train_multi_task.py: scale[t] = sol[t], then
    scale[t] * loss_t), puts the same solution on the raw gradients."""
    jac = cases(torch.float64)["scales-1e6"]
    losses = torch.tensor([0.5, 2.0, 3.0, 4.0], dtype=torch.float64)
    norms = jac.norm(dim=1)
    scale = {"l2": 1 / norms, "loss": 1 / losses, "loss+": 1 / (losses * norms)}[normalization]
    scaled = scale[:, None] * jac
    sol = min_norm_weights(scaled @ scaled.T)
    b = tb.create("mgda", tasks=4, normalization=normalization, apply_to="normalized")
    d, _ = b.aggregate(jac, losses)  # type: ignore[attr-defined]
    torch.testing.assert_close(d, sol @ scaled, rtol=1e-6, atol=1e-9)
    original = tb.create("mgda", tasks=4, normalization=normalization)
    d, w = original.aggregate(jac, losses)  # type: ignore[attr-defined]
    torch.testing.assert_close(w, sol, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(d, sol @ jac, rtol=1e-6, atol=1e-9)
    if normalization != "l2":
        with pytest.raises(tb.InvalidLossError, match="divides gradients by the loss"):
            b.backward(
                [torch.tensor(-1.0, requires_grad=True)] * 4,
                shared_params=[torch.ones(1, requires_grad=True)],
            )


@pytest.mark.parametrize("mode", ["median", "rmse"])
def test_aligned_mtl_scale_modes(mode: str) -> None:
    from taskbalance.gradient.aligned_mtl import aligned_matrix

    jac = cases(torch.float64)["random-5"]
    m = jac @ jac.T
    lam = torch.linalg.eigvalsh(m)
    sigma = lam.median() if mode == "median" else lam.mean()
    lam_b = torch.linalg.eigvalsh(aligned_matrix(m, mode) @ m @ aligned_matrix(m, mode))
    torch.testing.assert_close(lam_b, sigma.expand_as(lam_b), rtol=1e-8, atol=0)
    assert float(aligned_matrix(torch.zeros(3, 3, dtype=torch.float64)).trace()) == 3.0
    _, w = run("aligned-mtl", jac, scale_mode=mode, pref={str(i): 1.0 for i in range(5)})
    assert torch.isfinite(w).all()
