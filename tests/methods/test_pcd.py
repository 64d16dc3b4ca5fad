"""PCD: priority-constrained descent.

The defining equations (the primary gradient projected onto the secondary tasks'
progress constraints, rescaled to its norm) on every matrix family, dtype and scale,
and the agreement with TorchJD 0.18's ``PCD`` (Goldfarb-Idnani) on single calls and on
stateful sequences (the moving average of the squared norms).
"""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb
from taskbalance.solvers import priority_weights

from ..properties import Case, finite, matrices, representable, scaled
from .common import Agreement, compare, cross_jacobians

aggregation = pytest.importorskip("torchjd.aggregation", reason="the test command installs torchjd")

F64 = torch.float64
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
CASES = [c for c in matrices() if c.jac.shape[0] >= 2]
SCALED = scaled(matrices(sizes=((3, 7), (5, 3), (10, 4)), seed=1))


def _pcd(jac: torch.Tensor, **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
    d, w = tb.create("pcd", tasks=jac.shape[0], **kw).aggregate(jac)  # type: ignore[attr-defined]
    return d, w


@pytest.mark.parametrize("tau", [0.0, 0.02, 0.5])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_direction_is_the_constrained_projection(case: Case, tau: float) -> None:
    """On the first call the scales are 1/√(‖gᵢ‖² + ε): with g̃ᵢ the scaled rows,
    d̃ = g̃₁ + Σ μⱼ g̃ⱼ with μ ≥ 0, g̃ⱼᵀd̃ ≥ τ‖g̃ⱼ‖² where feasible and μⱼ = 0 off the
    active constraints; d = d̃·‖g₁‖/‖d̃‖."""
    jac = case.jac
    d, w = _pcd(jac, tau=tau)
    s = 1 / (jac.norm(dim=1) ** 2 + 1e-8).sqrt()
    tilde = jac * s[:, None]
    mu = priority_weights(tilde @ tilde.T, torch.full((jac.shape[0] - 1,), tau, dtype=F64))
    assert float(mu[0]) == 1.0 and bool((mu[1:] >= 0).all())
    dt = mu @ tilde
    slack = tilde[1:] @ dt - tau * tilde[1:].norm(dim=1) ** 2
    if bool(mu[1:].any()) or bool((slack >= -1e-9).all()):  # feasible: the constraints hold
        assert bool((slack >= -1e-6).all()), slack
        assert float((mu[1:] * slack).abs().max()) <= 1e-6 * max(1.0, float(mu.abs().max()))
    if float(d.norm()) > 0:
        torch.testing.assert_close(d.norm(), jac[0].norm(), rtol=1e-9, atol=0)
        torch.testing.assert_close(d / d.norm(), dt / dt.norm(), rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(d, w @ jac, rtol=1e-9, atol=1e-12 * float(jac.abs().max()))


def test_infeasible_constraints_give_the_primary_gradient() -> None:
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=F64)
    d, w = _pcd(g, tau=0.1)
    torch.testing.assert_close(d, g[0])
    assert w.tolist() == [1.0, 0.0, 0.0]
    torch.testing.assert_close(d, aggregation.PCD(tau=0.1)(g))


def test_zero_primary_gives_zero() -> None:
    g = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=F64)
    d, _ = _pcd(g)
    assert float(d.abs().max()) == 0.0


def test_primary_by_name_is_the_first_row_of_torchjd() -> None:
    g = torch.tensor([[1.0, 2.0, 0.0], [-1.0, 0.5, 0.3], [0.2, -1.0, 1.0]], dtype=F64)
    b = tb.create("pcd", tasks=["a", "b", "c"], primary="b", tau=0.3)
    d, _ = b.aggregate(g)  # type: ignore[attr-defined]
    theirs = aggregation.PCD(tau=0.3)(g[[1, 0, 2]])
    torch.testing.assert_close(d, theirs)
    with pytest.raises(ValueError, match="primary"):
        tb.create("pcd", tasks=["a", "b"], primary="z")
    with pytest.raises(ValueError, match="tau"):
        tb.create("pcd", tasks=["a", "b"], tau=1.5)


def test_absent_primary_hands_the_role_to_the_first_present_task() -> None:
    w = torch.zeros(2, requires_grad=True)
    b = tb.create("pcd", tasks=["a", "b", "c"], primary="a", tau=0.4)
    gb, gc = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    b.backward({"b": w @ gb, "c": w @ gc}, shared_params=[w])
    torch.testing.assert_close(w.grad, aggregation.PCD(tau=0.4)(torch.stack([gb, gc])))
    assert b.steps.tolist() == [0.0, 1.0, 1.0]  # "a" untouched


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_finite_on_every_family_and_scale(dtype: torch.dtype) -> None:
    failures = []
    for case in CASES + SCALED:
        if not representable(case.jac, dtype):
            continue
        d, w = _pcd(case.jac.to(dtype))
        msg = finite(case, d, w, dtype, 0.0)
        if msg:
            failures.append(f"{case.id}: {msg}")
    assert not failures, "; ".join(failures[:8])


@pytest.mark.parametrize("tau", [0.0, 0.02, 0.3, 1.0])
def test_agrees_with_torchjd(tau: float) -> None:
    """Cosine ≥ 0.999 and norms within 1e-6 of TorchJD's ``PCD`` on the 60 random
    Jacobians of the TorchJD cross-checks (tests/helpers.py), every matrix family and every scale from 0 to
    1e15 (first call of a fresh aggregator); measured: cosine 1 - 1e-15, norms within
    2e-13."""
    jacs = cross_jacobians(max_tasks=10, min_tasks=1) + [c.jac for c in SCALED]
    agreement = compare(lambda j: _pcd(j, tau=tau)[0], lambda j: aggregation.PCD(tau=tau)(j), jacs)
    assert agreement.cos >= 0.999 and agreement.ratio <= 1e-6, agreement


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_agrees_with_torchjd_along_a_run(k: int) -> None:
    """The same 30 Jacobians (norms spread over e^±4) through one stateful aggregator each:
    the moving averages and their bias correction agree step by step."""
    g = torch.Generator().manual_seed(k)
    ours = tb.create("pcd", tasks=k, tau=0.2, beta=0.9)
    theirs = aggregation.PCD(tau=0.2, beta=0.9)
    agreement = Agreement()
    for _ in range(30):
        scale = torch.exp(torch.randn(k, 1, generator=g, dtype=F64) * 2)
        jac = torch.randn(k, 20, generator=g, dtype=F64) * scale
        agreement.add(ours.aggregate(jac)[0], theirs(jac))  # type: ignore[attr-defined]
    assert agreement.cos >= 0.999 and agreement.ratio <= 1e-6, agreement
