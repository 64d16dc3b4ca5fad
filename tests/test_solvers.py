"""The solvers and the Gramian methods on every matrix family, dtype and scale.

Each method is checked for the properties its paper guarantees (tests/properties.py):
finite output in the input's dtype, non-conflict, d = 0 at a stationary point,
permutation invariance, homogeneity; each solver for its defining equation or KKT
conditions, the simplex projection and the non-negative QP for theirs, and the min-norm
solver against a brute-force minimum. The regressions of issue 11 that concern the shared
solvers are pinned at the end (CAGrad's and Nash-MTL's own are in tests/methods/).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

import taskbalance as tb
from taskbalance import solvers
from taskbalance.solvers import _backend, active_set
from taskbalance.solvers._backend import regularised

from .helpers import brute_force_min_norm, jacobian_cases
from .properties import (
    GUARANTEES,
    Case,
    aggregate,
    finite,
    matrices,
    method_of,
    non_conflicting,
    representable,
    scaled,
    stationary_zero,
)

F64 = torch.float64
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
CASES = matrices()
NONZERO = [c for c in CASES if c.family != "zero-row"]
#: the non-zero families again at the extreme scales of the benchmark's "scaled" rows
NONZERO_SCALED = [
    c for c in scaled([c for c in NONZERO if c.jac.shape[0] <= 10], (1e-10, 1e15)) if c.jac.abs().max() > 0
]
SCALED = scaled(matrices(sizes=((3, 7), (5, 3), (10, 4)), seed=1))


def _ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def solver_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on both implementations of the non-negative QP: the compiled
    kernel and the NumPy reference (tests/test_solver_backends.py checks that the kernel
    is built, and that the two agree)."""
    if request.param == "numpy":
        monkeypatch.setattr(_backend, "KERNEL", None)
    return str(request.param)


# ------------------------------------------------------------------ method properties
@pytest.mark.parametrize("key", sorted(GUARANTEES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_guaranteed_properties_on_every_family(key: str, dtype: torch.dtype) -> None:
    spec = GUARANTEES[key]
    failures = []
    for case in CASES + SCALED:
        if not representable(case.jac, dtype):
            continue
        jac = case.jac.to(dtype)
        d, w = aggregate(method_of(key), jac, **spec.kwargs)
        checks = [finite]
        if spec.non_conflicting(case):
            checks.append(non_conflicting)
        if spec.zero_when == "weak" and case.stationary in ("weak", "strong"):
            checks.append(stationary_zero)
        if spec.zero_when == "strong" and case.stationary == "strong":
            checks.append(stationary_zero)
        for check in checks:
            msg = check(case, d, w, dtype, spec.reg_tol)
            if msg:
                failures.append(f"{case.id}: {msg}")
    assert not failures, f"{key} in {dtype}: " + "; ".join(failures[:8])


@pytest.mark.parametrize("key", sorted(GUARANTEES))
def test_permutation_invariance(key: str) -> None:
    spec = GUARANTEES[key]
    g = torch.Generator().manual_seed(5)
    for case in CASES:
        k = case.jac.shape[0]
        perm = torch.randperm(k, generator=g)
        d1, w1 = aggregate(method_of(key), case.jac, **spec.kwargs)
        d2, _ = aggregate(method_of(key), case.jac[perm], **spec.kwargs)
        scale = float(case.jac.abs().max()) * max(1.0, float(w1.abs().max()))
        torch.testing.assert_close(d1, d2, rtol=1e-6, atol=1e-7 * scale, msg=lambda m, c=case: f"{c.id}: {m}")


@pytest.mark.parametrize("key", [k for k, s in GUARANTEES.items() if s.homogeneous or s.scale_free])
def test_homogeneity(key: str) -> None:
    spec = GUARANTEES[key]
    for case in CASES:
        d1, _ = aggregate(method_of(key), case.jac, **spec.kwargs)
        for a in (1e-10, 1e-6, 1e4, 1e15):
            d2, _ = aggregate(method_of(key), case.jac * a, **spec.kwargs)
            expect = d1 * a if spec.homogeneous else d1
            tol = 1e-6 * float(expect.norm()) + 1e-9 * float(case.jac.abs().max()) * (
                a if spec.homogeneous else 1
            )
            assert float((d2 - expect).norm()) <= tol, f"{case.id} scaled by {a}"


# ---------------------------------------------------------------- solver certificates
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_min_norm_is_the_kkt_point_of_the_simplex_qp(case: Case) -> None:
    m = case.jac @ case.jac.T
    w = solvers.min_norm_weights(m)
    a = torch.from_numpy(regularised(m.numpy(), 0.0))
    assert solvers.qp_residual(a, torch.zeros(len(w), dtype=F64), w, simplex=True) <= 1e-9
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12) and float(w.min()) >= 0


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_dual_cone_projection_is_the_kkt_point(case: Case) -> None:
    m = case.jac @ case.jac.T
    k = m.shape[0]
    u = torch.eye(k, dtype=F64)
    v = solvers.dual_cone_weights(m, u)
    a = torch.from_numpy(regularised(m.numpy(), 1e-4))
    assert solvers.qp_residual(a, u @ a, v - u) <= 1e-9
    assert bool((v >= u - 1e-15).all())


@pytest.mark.parametrize("case", NONZERO + NONZERO_SCALED, ids=_ids(NONZERO + NONZERO_SCALED))
def test_bargaining_meets_its_defining_equation(case: Case) -> None:
    """Nash-MTL: αᵢ (M α)ᵢ = 1, unnormalised, so ‖d‖² = K; FairGrad α = 2: M w = w^(-1/2)."""
    m = case.jac @ case.jac.T
    k = m.shape[0]
    reg = 1e-8 * torch.diag(m.diagonal())  # the solver's regularisation, in M's scale
    # per task, relative to the utility: to 1e-8 on full-rank Gramians; on singular ones the
    # weights are large, M·w cancels and only the backward error below is at rounding level
    rtol = 1e-8 if case.full_rank else 1e-4
    for alpha in (1.0, 2.0):
        w = solvers.bargaining_weights(m, alpha=alpha)
        mw = (m + reg) @ w
        torch.testing.assert_close(w.pow(1 / alpha) * mw, torch.ones(k, dtype=F64), rtol=rtol, atol=0)
        backward = ((mw - w.pow(-1 / alpha)).abs() / ((m + reg).abs() @ w + w.pow(-1 / alpha))).max()
        assert float(backward) < 1e-9


def test_primal_active_set_cannot_cycle_where_the_primal_dual_one_does() -> None:
    """Problems the primal-dual iteration does not settle in K + 5 steps are finished by
    the primal active set and certified."""
    g = torch.Generator().manual_seed(0)
    unsettled = 0
    for _ in range(200):
        j = torch.randn(10, 4, generator=g, dtype=F64)
        a = regularised((j @ j.T).numpy(), 0.0)
        for simplex in (False, True):
            b = np.zeros(10) if simplex else (a @ np.eye(10)[0])
            _, _, settled = active_set._pdas(a, b[None], simplex, 15)
            unsettled += int(not settled[0])
            res = active_set.solve_qp(a, b, simplex)
            assert res.residual <= 1e-9
    assert unsettled > 0  # the family does exercise the fallback


@pytest.mark.parametrize("b", [[-1.0, -5e-324], [[-1.0, -5e-324]]], ids=["one", "batch"])
def test_a_coordinate_freed_at_rounding_level_does_not_stop_the_primal(b: list[float]) -> None:
    """The second coordinate's gradient is negative only at rounding level: freed, its
    face's minimiser puts it at exactly 0, and the primal active set must fix it again
    rather than give up (the kernel returned NaN here, the reference raised)."""
    res = active_set.solve_qp(np.diag([1.0, 4.0]), np.array(b))
    np.testing.assert_allclose(res.x.reshape(-1), [1.0, 0.0])


def test_upgrad_with_pairs_of_opposite_tasks_and_no_regularisation() -> None:
    """A review's reproducer: two pairs of opposite tasks, reg = 0 (1e-12)."""
    rng = np.random.default_rng(9)
    j = rng.normal(size=(4, 2))
    j[2:] = -2.0 * j[:2]
    w = solvers.upgrad_weights(torch.tensor(j @ j.T), torch.ones(4, dtype=F64), reg=0.0)
    torch.testing.assert_close(w, torch.tensor([3.0, 3.0, 1.5, 1.5], dtype=F64), rtol=1e-6, atol=0)


def test_a_failed_certificate_raises() -> None:
    a = np.eye(2)
    with pytest.raises(solvers.SolverError, match="certificate"):
        active_set.solve_qp(a, np.array([-1.0, 1.0]), tol=-1.0)


def test_solvers_refuse_non_finite_gramians() -> None:
    m = torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=F64)
    for fn in (
        solvers.min_norm_weights,
        lambda g: solvers.cagrad_weights(g, 0.4),
        solvers.bargaining_weights,
    ):
        with pytest.raises(ValueError, match="NaN or inf"):
            fn(m)


def test_solvers_return_on_the_input_device_in_at_least_float32() -> None:
    m = torch.tensor([[2.0, -1.0], [-1.0, 2.0]])
    for dtype, expect in ((torch.float16, torch.float32), (torch.bfloat16, torch.float32), (F64, F64)):
        for out in (
            solvers.min_norm_weights(m.to(dtype)),
            solvers.upgrad_weights(m.to(dtype), torch.full((2,), 0.5, dtype=dtype)),
            solvers.cagrad_weights(m.to(dtype), 0.4),
            solvers.bargaining_weights(m.to(dtype)),
        ):
            assert out.dtype == expect and out.device == m.device


def test_project_simplex_matches_its_definition() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(20, 6, generator=g, dtype=torch.float64) * 3
    p = solvers.project_simplex(y)
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
    x = solvers.nonneg_qp(a, b)
    grad = (a @ x.unsqueeze(-1)).squeeze(-1) + b
    assert bool((x >= 0).all()) and bool((grad >= -1e-9).all())
    assert float((x * grad).abs().max()) < 1e-9


def test_min_norm_matches_the_brute_force_minimum() -> None:
    jac = jacobian_cases(torch.float64)["random-5"][:3]
    m = jac @ jac.T
    w = solvers.min_norm_weights(m)
    assert float((w @ jac).norm() ** 2) <= brute_force_min_norm(jac.numpy()) + 1e-10


# ------------------------------------------------------------------ issue 11 regressions
@pytest.mark.parametrize(
    ("name", "jac"),
    [
        ("mgda", [[-0.1, 1.3], [-0.2, 0.9], [-1.0, 0.7], [-0.2, 1.2], [-0.6, -0.3]]),
        (
            "upgrad",
            [[-0.9, -0.8, 1.7], [-2.5, -0.8, -0.5], [0, 1.5, 0.6], [-0.7, -0.1, 0.2], [1.5, 1.3, 0.1]],
        ),
    ],
)
def test_no_slow_fallback_on_rank_deficient_jacobians(name: str, jac: list[list[float]]) -> None:
    """These used to fall back to 5,000 projected-gradient steps (0.12–0.5 s). The solve is
    now exact and certified; its cost is measured in benchmarks/gradient.py, and here
    only bounded far below the old fallback's (a generous 50 ms on a loaded CI core)."""
    j = torch.tensor(jac, dtype=F64)
    d, _ = aggregate(name, j)
    start = time.perf_counter()
    aggregate(name, j)
    assert time.perf_counter() - start < 0.05
    assert float((j @ d).min()) >= -1e-9


@pytest.mark.parametrize("name", ["nash-mtl", "fairgrad"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_rank_deficient_is_finite(name: str, dtype: torch.dtype) -> None:
    jac = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=dtype)
    d, w = aggregate(name, jac)
    assert d.dtype == dtype and bool(torch.isfinite(d).all()) and bool(torch.isfinite(w).all())


# ------------------------------------------------------------ fuzzing the public API
def test_upgrad_weights_of_a_batch_of_gramians_are_each_gramians_weights() -> None:
    """A (B, K, K) batch used to be transposed whole: garbage on the kernel when B = K."""
    g = torch.Generator().manual_seed(0)
    jac = torch.randn(3, 3, 5, generator=g, dtype=F64)
    grams = jac @ jac.mT
    p = torch.full((3,), 1 / 3, dtype=F64)
    batched = solvers.upgrad_weights(grams, p)
    for i in range(3):
        torch.testing.assert_close(batched[i], solvers.upgrad_weights(grams[i], p), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="pref must be one"):
        solvers.upgrad_weights(grams[0], torch.ones(3, 3, dtype=F64))


def test_dual_cone_weights_broadcast_one_gramian_over_a_batch_of_u() -> None:
    g = torch.Generator().manual_seed(1)
    jac = torch.randn(4, 6, generator=g, dtype=F64)
    m = jac @ jac.T
    u = torch.rand(5, 4, generator=g, dtype=F64)
    torch.testing.assert_close(solvers.dual_cone_weights(m[None], u), solvers.dual_cone_weights(m, u))


@pytest.mark.parametrize("scale", [1e-20, 1e-8, 1.0, 1e20])
def test_the_simplex_qp_does_not_depend_on_a_common_scale(scale: float) -> None:
    """Σx = 1 has no units: its residual used to be divided by the size of A and b, so a
    small scale failed the certificate and a large one hid an infeasible answer."""
    a = torch.tensor([[108.0, -106, -54], [-106, 117, 34], [-54, 34, 71]], dtype=F64)
    b = torch.tensor([-6.0, -3, 8], dtype=F64)
    x = solvers.nonneg_qp(scale * a, scale * b, simplex=True)
    torch.testing.assert_close(x, solvers.nonneg_qp(a, b, simplex=True), rtol=1e-9, atol=1e-12)
    assert abs(float(x.sum()) - 1.0) <= 1e-12


def test_qp_residual_sees_an_infeasible_simplex_point_at_any_scale() -> None:
    a, b = 1e20 * torch.eye(2, dtype=F64), -1e20 * torch.tensor([0.5, 0.5], dtype=F64)
    assert solvers.qp_residual(a, b, torch.tensor([0.5005, 0.5005], dtype=F64), simplex=True) >= 9e-4


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        ([[1.0, 1.0], [-1.0, 1.0]], "not symmetric"),
        ([[1.0, 0.0], [0.0, -0.5]], "negative diagonal"),
        ([[1.0, 2.0], [2.0, 1.0]], "exceeds"),
    ],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda m: solvers.min_norm_weights(m),
        lambda m: solvers.upgrad_weights(m, torch.ones(2, dtype=F64)),
        lambda m: solvers.dual_cone_weights(m, torch.ones(2, dtype=F64)),
        lambda m: solvers.cagrad_weights(m, c=0.4),
        lambda m: solvers.bargaining_weights(m),
        lambda m: solvers.priority_weights(m, torch.zeros(1, dtype=F64)),
    ],
    ids=["min_norm", "upgrad", "dual_cone", "cagrad", "bargaining", "priority"],
)
def test_a_matrix_that_is_not_a_gramian_is_refused(
    matrix: list[list[float]], match: str, call: Callable[[Tensor], Tensor]
) -> None:
    """These used to return a saddle point, the maximiser, or a TypeError from a complex
    square root."""
    with pytest.raises(ValueError, match=match):
        call(torch.tensor(matrix, dtype=F64))


def test_nonneg_qp_refuses_what_is_not_its_problem() -> None:
    eye = torch.eye(2, dtype=F64)
    b = torch.tensor([-1.0, -1.0], dtype=F64)
    with pytest.raises(ValueError, match="not symmetric"):
        solvers.nonneg_qp(torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=F64), b)
    with pytest.raises(ValueError, match="not positive definite"):
        solvers.nonneg_qp(torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64), b)
    with pytest.raises(ValueError, match="not positive definite"):
        solvers.nonneg_qp(torch.ones(2, 2, dtype=F64), b)
    with pytest.raises(ValueError, match="a batch of A must have b's batch shape"):
        solvers.nonneg_qp(eye.expand(2, 2, 2), torch.ones(3, 2, dtype=F64))


def test_non_finite_weight_vectors_are_refused() -> None:
    m = torch.eye(3, dtype=F64)
    with pytest.raises(ValueError, match="u has NaN"):
        solvers.dual_cone_weights(m, torch.tensor([float("nan"), 0.3, 0.3], dtype=F64))
    with pytest.raises(ValueError, match="pref has NaN"):
        solvers.upgrad_weights(m, torch.tensor([float("inf"), 0.3, 0.3], dtype=F64))
    with pytest.raises(ValueError, match="taus has NaN"):
        solvers.priority_weights(m, torch.tensor([float("nan"), 0.1], dtype=F64))
    with pytest.raises(ValueError, match="u must have K = 3"):
        solvers.dual_cone_weights(m, torch.ones(4, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_gramians_formed_in_low_precision_are_solved(dtype: torch.dtype) -> None:
    """A rank-deficient Gramian formed in float32 is indefinite by about K·eps·tr M, far
    beyond a 1e-12 regularisation: 155 of 200 such MGDA solves used to raise SolverError.
    The solvers project such a Gramian onto the PSD matrices (eigenvalues clipped at 0),
    which moves it no more than its rounding did: on full-rank Gramians the weights stay
    those of the float64 Gramian to the dtype's precision, and UPGrad at reg = 0 stays
    non-conflicting (a regularisation of 2·K·eps, tried first, broke both)."""
    g = torch.Generator().manual_seed(0)
    eps = torch.finfo(dtype).eps
    for _ in range(20):
        jac = torch.randn(8, 3, generator=g).to(dtype)  # rank-deficient: K > N
        m = jac @ jac.T
        w = solvers.min_norm_weights(m)
        assert bool(torch.isfinite(w).all()) and abs(float(w.sum()) - 1) < 1e-3
        solvers.upgrad_weights(m, torch.ones(8, dtype=dtype), reg=0.0)
        solvers.priority_weights(m, torch.zeros(7, dtype=dtype))
        solvers.bargaining_weights(m)
        full = torch.randn(10, 30, generator=g).to(dtype)  # full rank
        m = full @ full.T
        exact = m.double()  # the same rounded Gramian, solved in float64 as given
        ones = torch.ones(10, dtype=dtype)
        for got, want in (
            (solvers.min_norm_weights(m), solvers.min_norm_weights(exact)),
            (solvers.upgrad_weights(m, ones), solvers.upgrad_weights(exact, ones.double())),
        ):
            assert float((got.double() - want).abs().max()) <= 4 * eps
        w = solvers.upgrad_weights(m, torch.ones(10, dtype=dtype), reg=0.0).double()
        gram = m.double()
        cos = (gram @ w) / (gram.diagonal().sqrt() * (w @ gram @ w).sqrt())
        assert float(cos.min()) >= -10 * eps


def test_rounding_level_departures_from_a_gramian_are_accepted() -> None:
    """The Gramian checks refuse what cannot be G Gᵀ, not rounding: integer Gramians of
    parallel rows, a float64 Gramian formed in float32 with a duplicated task, and a
    float32 QP matrix one ulp from symmetric."""
    g = torch.tensor([[1, 1, 1], [3, 3, 3]])
    torch.testing.assert_close(solvers.min_norm_weights(g @ g.T), torch.tensor([1.0, 0.0]))
    gen = torch.Generator().manual_seed(0)
    row = torch.randn(1, 100_000, generator=gen)
    jac = torch.cat([row, 3 * row, torch.randn(1, 100_000, generator=gen)])
    m = (jac @ jac.T).double()  # float32's rounding in a float64 Gramian
    p = torch.full((3,), 1 / 3, dtype=F64)
    for call in (
        lambda: solvers.upgrad_weights(m, p),
        lambda: solvers.dual_cone_weights(m, p),
        lambda: solvers.cagrad_weights(m, 0.4),
        lambda: solvers.bargaining_weights(m),
    ):
        assert bool(torch.isfinite(call()).all())
    a = torch.randn(4, 6, generator=gen)
    a = a @ a.T + 1e-3 * torch.eye(4)
    a[0, 1] = torch.nextafter(a[0, 1], torch.tensor(float("inf")))  # one ulp off symmetric
    assert bool(torch.isfinite(solvers.nonneg_qp(a, -torch.ones(4))).all())


def test_reference_solves_ill_conditioned_batches_of_more_than_16_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shared A, K = 17, condition 1e5: the reference's A⁻¹ path used to miss the
    certificate (the kernel did not)."""
    monkeypatch.setattr(_backend, "KERNEL", None)
    rng = np.random.default_rng(3)
    k = 17
    q, _ = np.linalg.qr(rng.standard_normal((k, k)))
    a = (q * np.logspace(0, -5, k)) @ q.T
    a = (a + a.T) / 2
    x = rng.uniform(0, 1, (2, k)) * (rng.random((2, k)) < 0.7)
    b = (x == 0) * rng.uniform(0, 1, (2, k)) - x @ a
    assert active_set.solve_qp(a, b).residual <= 1e-9


def test_problems_beyond_the_kernels_size_go_to_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def solve(self, *_: object) -> int:
            raise AssertionError("the kernel was called beyond its size")

    if _backend.KERNEL is not None:
        monkeypatch.setattr(_backend, "KERNEL", Refusing())
    monkeypatch.setattr(active_set, "KERNEL_MAX_TASKS", 3)
    assert active_set.solve_qp(np.eye(4), -np.ones(4)).residual <= 1e-9


def test_a_singular_matrix_fails_the_solve_loudly_on_both_backends() -> None:
    with pytest.raises(solvers.SolverError):
        active_set.solve_qp(np.ones((2, 2)), np.array([-1.0, -1.0]))


@pytest.mark.parametrize("name", ["pcd", "cr-mogm", "gradvac", "nash-mtl", "db-mtl", "moco"])
def test_a_non_finite_jacobian_is_refused_before_any_state_changes(name: str) -> None:
    """PCD fed one NaN gradient used to keep a NaN moving average, and ignore that task,
    for the rest of training: every Gramian method now refuses a non-finite Gramian before
    its state takes it in."""
    balancer = tb.create(name, tasks=2)
    good = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=F64)
    balancer.aggregate(good)  # type: ignore[attr-defined]
    before = {k: v.clone() if isinstance(v, Tensor) else v for k, v in balancer.state_dict().items()}
    with pytest.raises(ValueError, match="NaN or inf"):
        balancer.aggregate(torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=F64))  # type: ignore[attr-defined]
    after = balancer.state_dict()
    for key, value in before.items():
        if isinstance(value, Tensor):
            assert torch.equal(value, after[key]), f"{name}: state {key!r} changed"
    _, w = balancer.aggregate(good)  # type: ignore[attr-defined]
    assert bool(torch.isfinite(w).all())


def test_the_finiteness_check_of_the_jacobian_is_exact() -> None:
    """The one-pass check: a NaN or inf entry is caught, and finite entries whose row sum
    overflows are not refused."""
    from taskbalance.gradient.core import _finite

    big = torch.full((2, 4), 3e38)  # float32: each row's sum overflows to inf
    assert _finite(big) and _finite(torch.zeros(0, 3))
    for bad in (float("nan"), float("inf"), -float("inf")):
        j = torch.ones(3, 5)
        j[1, 2] = bad
        assert not _finite(j)
    j = torch.ones(2, 3)
    j[0, 0], j[0, 1] = float("inf"), -float("inf")  # inf - inf: the sum is NaN, caught too
    assert not _finite(j)
