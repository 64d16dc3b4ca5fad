"""The two implementations of the non-negative QP: the compiled kernel (_qpkernel.c) and
the NumPy reference (solvers/active_set.py).

The QPs are strictly convex, so each has one solution: on every matrix family, scale and
size, and on random problems from hypothesis, both implementations must pass the same
KKT certificate and agree. The kernel must be built wherever the tests run (CI builds it
from the C source at install time), and a problem it cannot solve must come back as NaN
and fail the certificate loudly.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbalance import solvers
from taskbalance.solvers import _backend, active_set
from taskbalance.solvers._backend import regularised

from .properties import Case, matrices, scaled

CASES = matrices(sizes=((1, 5), (3, 7), (5, 3), (10, 4), (10, 30), (17, 9), (40, 60)), seed=3)
SCALED = scaled(matrices(sizes=((3, 7), (10, 4), (20, 30)), seed=4))


def _kernel() -> object:
    if _backend.KERNEL is None:
        pytest.fail("the compiled QP kernel is not built here")
    return _backend.KERNEL


def _both(a: np.ndarray, b: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """The certified solutions of the compiled kernel and of the NumPy reference."""
    kernel = _kernel()
    compiled = active_set.solve_qp(a, b)
    with monkeypatch.context() as m:
        m.setattr(_backend, "KERNEL", None)
        reference = active_set.solve_qp(a, b)
    assert _backend.KERNEL is kernel
    return compiled.x, reference.x


def _agree(x: np.ndarray, y: np.ndarray, a: np.ndarray) -> None:
    """The two solutions agree to the problem's conditioning: ‖x − y‖ in A's norm (the
    error a KKT residual of 1e-9 allows) and entry-wise relative to the largest entry."""
    d = x - y
    energy = np.einsum("...i,ij,...j->...", d, a, d)
    scale = max(1.0, float(np.abs(x).max(initial=0.0)))
    assert float(np.max(energy, initial=0.0)) <= 1e-12 * scale**2
    cond = float(np.linalg.cond(a).max())
    assert float(np.abs(d).max(initial=0.0)) <= 1e-9 * cond * scale


def test_the_compiled_kernel_is_built_here() -> None:
    """CI installs the package from source with a C compiler: the kernel must be there,
    or every speed figure in the README would be the NumPy reference's."""
    if os.environ.get("TASKBALANCE_SOLVERS", "").lower() == "numpy":
        pytest.fail("TASKBALANCE_SOLVERS=numpy is set: unset it to test the compiled kernel")
    assert solvers.backend() == "compiled"


@pytest.mark.parametrize("case", CASES + SCALED, ids=[c.id for c in CASES + SCALED])
def test_kernel_and_reference_agree_on_upgrads_projections(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UPGrad's K projections (one shared A, a batch of b) and MGDA's min-norm problem."""
    jac = case.jac
    k = jac.shape[0]
    a = regularised((jac @ jac.T).numpy(), 1e-4)
    for b in ((a * np.linspace(0.5, 1.5, k)).T, -np.ones(k)):
        x, y = _both(a, b, monkeypatch)
        _agree(x, y, a)


def test_kernel_and_reference_agree_on_a_batch_of_matrices(monkeypatch: pytest.MonkeyPatch) -> None:
    """One A per problem (a batch of Gramians), with extra leading dimensions."""
    g = torch.Generator().manual_seed(5)
    jac = torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64)
    a = regularised((jac @ jac.mT).numpy(), 1e-6)
    b = torch.randn(2, 3, 6, generator=g, dtype=torch.float64).numpy()
    x, y = _both(a, b, monkeypatch)
    assert x.shape == b.shape
    for i in np.ndindex(2, 3):
        _agree(x[i], y[i], a[i])


@st.composite
def _problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(1, 24))
    n = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    reg = draw(st.sampled_from([1e-12, 1e-8, 1e-4, 1e-1]))
    rng = np.random.default_rng(seed)
    jac = rng.normal(size=(k, n)) * rng.choice([0.0, 1e-6, 1.0, 1e6], size=(k, 1))
    if k > 1 and draw(st.booleans()):
        half = k // 2  # pairs of opposite rows
        jac[k - half :] = -draw(st.floats(0.1, 10.0)) * jac[:half]
    a = regularised(jac @ jac.T, reg)
    if draw(st.booleans()):  # UPGrad's K projections: b = A (p_i e_i)
        b = (a * rng.uniform(0.1, 2.0, size=k)).T
    else:
        b = rng.normal(size=(draw(st.integers(1, 6)), k)) * 10.0 ** draw(st.integers(-6, 6))
    return a, b


@settings(max_examples=400, deadline=None)
@given(_problems())
def test_both_backends_certify_random_problems(problem: tuple[np.ndarray, np.ndarray]) -> None:
    """Ranks, scales, pairs of opposite rows, regularisations down to 1e-12 and UPGrad's
    right-hand sides drawn at random: both implementations return a certified x ≥ 0
    (solve_qp raises otherwise). A review found 0.8% of UPGrad's steps with opposite
    pairs and reg 1e-12 refused by the kernel: a coordinate freed at rounding level whose
    face minimiser is exactly 0 did not block the primal step."""
    _kernel()
    a, b = problem
    for kernel in (_backend.KERNEL, None):
        with pytest.MonkeyPatch.context() as m:
            m.setattr(_backend, "KERNEL", kernel)
            res = active_set.solve_qp(a, b)
        assert res.residual <= 1e-9
        assert bool((res.x >= 0).all())
        assert float(active_set.qp_residual(a, b, res.x).max()) <= 1e-9


def test_upgrad_steps_with_opposite_pairs_and_tiny_regularisation_are_all_certified() -> None:
    """The family of the review's finding at scale: 600 UPGrad steps (K = 3 to 20, pairs
    of opposite tasks, reg 1e-12), each step's K projections certified on both backends.
    Before the fix the kernel refused about 0.8% of these steps."""
    _kernel()
    rng = np.random.default_rng(7)
    for _ in range(600):
        k = int(rng.integers(3, 21))
        j = rng.normal(size=(k, int(rng.integers(1, 2 * k))))
        j[k // 2 :] = -j[: k - k // 2] * rng.uniform(0.1, 10, size=(k - k // 2, 1))
        a = regularised(j @ j.T, 1e-12)
        b = (a * rng.uniform(0.5, 1.5, k)).T
        for kernel in (_backend.KERNEL, None):
            with pytest.MonkeyPatch.context() as m:
                m.setattr(_backend, "KERNEL", kernel)
                assert active_set.solve_qp(a, b).residual <= 1e-9


def test_kernel_finishes_the_problems_its_primal_dual_iteration_cycles_on() -> None:
    """The family where the primal-dual active set cycles: the kernel's primal active set
    finishes those problems, and each solution is certified."""
    kernel = _kernel()
    g = torch.Generator().manual_seed(0)
    unsettled = 0
    for _ in range(200):
        j = torch.randn(10, 4, generator=g, dtype=torch.float64)
        a = regularised((j @ j.T).numpy(), 0.0)
        b = a.T.copy()  # UPGrad's ten projections
        _, _, settled = active_set._pdas(a, b, False, 15)
        unsettled += int((~settled).sum())
        x = np.zeros_like(b)
        assert kernel.solve(a, b, x, 10, 10, 15, True) == 0  # type: ignore[attr-defined]
        assert float(active_set.qp_residual(a, b, x).max()) <= 1e-9
    assert unsettled > 0  # the family does exercise the primal finish


def test_kernel_primal_alone_from_any_start() -> None:
    """``iters = 0``: the primal active set from the given (possibly infeasible) start."""
    kernel = _kernel()
    rng = np.random.default_rng(1)
    j = rng.normal(size=(8, 3))
    a = regularised(j @ j.T, 1e-6)
    b = rng.normal(size=(5, 8))
    for start in (np.zeros((5, 8)), rng.normal(size=(5, 8)), np.full((5, 8), np.nan)):
        x = np.ascontiguousarray(start)
        assert kernel.solve(a, b, x, 5, 8, 0, True) == 0  # type: ignore[attr-defined]
        assert float(active_set.qp_residual(a, b, x).max()) <= 1e-9


def test_a_problem_the_kernel_cannot_solve_fails_the_certificate_loudly() -> None:
    """A singular face system (A = 0 is outside the contract) comes back as NaN, and
    solve_qp raises instead of returning it."""
    kernel = _kernel()
    a, b = np.zeros((3, 3)), -np.ones((2, 3))
    x = np.zeros((2, 3))
    assert kernel.solve(a, b, x, 2, 3, 5, True) == 2  # type: ignore[attr-defined]
    assert bool(np.isnan(x).all())
    with pytest.raises(solvers.SolverError, match="certificate"):
        active_set.solve_qp(a, b)


def test_kernel_refuses_buffers_of_the_wrong_size_or_type() -> None:
    kernel = _kernel()
    a, b, x = np.eye(3), np.ones((2, 3)), np.zeros((2, 3))
    with pytest.raises(TypeError, match="a must be a C-contiguous float64 array"):
        kernel.solve(a.astype(np.float32), b, x, 2, 3, 5, True)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="x must be"):
        kernel.solve(a, b, x.astype(np.int64), 2, 3, 5, True)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="out of range"):  # sizes whose product would overflow
        kernel.solve(np.zeros(0), np.zeros(0), np.zeros(0), 2**61, 1, 0, False)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="buffer sizes"):
        kernel.solve(a, b, x, 2, 4, 5, True)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="buffer sizes"):
        kernel.solve(a, b, x, 2, 3, 5, False)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="not C-contiguous"):
        kernel.solve(a, b, np.zeros((3, 2)).T, 2, 3, 5, True)  # type: ignore[attr-defined]


def test_the_environment_variable_chooses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKBALANCE_SOLVERS", "numpy")
    assert _backend._load_kernel() == (None, None, False)
    monkeypatch.setenv("TASKBALANCE_SOLVERS", " Compiled ")
    assert _backend._load_kernel().kernel is not None
    monkeypatch.delenv("TASKBALANCE_SOLVERS")
    assert _backend._load_kernel().kernel is not None


def test_a_bad_choice_is_raised_at_the_first_solve_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in TASKBALANCE_SOLVERS must not break ``import taskbalance`` (loss-based
    methods and the command line never solve a QP), and must fail the first solve."""
    monkeypatch.setenv("TASKBALANCE_SOLVERS", "fortran")
    choice = _backend._load_kernel()  # what the import does: no exception
    assert choice.kernel is None and isinstance(choice.problem, ValueError)
    monkeypatch.setattr(_backend, "_CHOICE", choice)
    monkeypatch.setattr(_backend, "KERNEL", None)
    for _ in range(2):  # every solve, not only the first
        with pytest.raises(ValueError, match="TASKBALANCE_SOLVERS='fortran': expected 'compiled' or 'numpy'"):
            active_set.solve_qp(np.eye(2), np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match="TASKBALANCE_SOLVERS"):
        solvers.backend()


def test_without_the_kernel_numpy_runs_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without a C compiler: the NumPy reference, with one warning at the first
    solve that says how to get the kernel or silence it; asking for the compiled kernel is
    refused at the first solve with the fix."""
    monkeypatch.setitem(sys.modules, "taskbalance.solvers._qpkernel", None)  # import fails
    monkeypatch.delenv("TASKBALANCE_SOLVERS", raising=False)
    choice = _backend._load_kernel()
    assert choice == (None, None, True)
    monkeypatch.setattr(_backend, "_CHOICE", choice)
    monkeypatch.setattr(_backend, "KERNEL", None)
    monkeypatch.setattr(_backend, "_warned", False)
    with pytest.warns(UserWarning, match="set TASKBALANCE_SOLVERS=numpy to choose it and silence this"):
        x = active_set.solve_qp(np.eye(2), np.array([-1.0, 1.0])).x
    np.testing.assert_allclose(x, [1.0, 0.0])
    active_set.solve_qp(np.eye(2), np.array([-1.0, 1.0]))  # once only (warnings are errors here)
    assert solvers.backend() == "numpy"
    monkeypatch.setenv("TASKBALANCE_SOLVERS", "compiled")
    monkeypatch.setattr(_backend, "_CHOICE", _backend._load_kernel())
    with pytest.raises(ImportError, match="reinstall taskbalance with a C compiler"):
        active_set.solve_qp(np.eye(2), np.array([-1.0, 1.0]))
