"""DualProj: the projection of the mean gradient onto the dual cone of the gradients.

Its defining equations (the KKT conditions of min wᵀM̂w s.t. w ≥ u) on every matrix
family, dtype and scale, and its agreement with TorchJD 0.18's ``DualProj`` (quadprog).
"""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb
from taskbalance.solvers._backend import regularised

from ..properties import Case, finite, matrices, non_conflicting, representable, scaled, stationary_zero
from .common import compare, cross_jacobians

aggregation = pytest.importorskip("torchjd.aggregation", reason="the test command installs torchjd")

F64 = torch.float64
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
CASES = matrices()
SCALED = scaled(matrices(sizes=((3, 7), (5, 3), (10, 4)), seed=1))


def _dualproj(jac: torch.Tensor, **kw: float) -> tuple[torch.Tensor, torch.Tensor]:
    d, w = tb.create("dualproj", tasks=jac.shape[0], **kw).aggregate(jac)  # type: ignore[attr-defined]
    return d, w


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_weights_are_the_kkt_point_of_the_projection(case: Case) -> None:
    """w ≥ u, M̂w ≥ 0 and (w - u)ᵢ (M̂w)ᵢ = 0: the projection's optimality conditions."""
    k = case.jac.shape[0]
    u = torch.full((k,), 1.0 / k, dtype=F64)
    _, w = _dualproj(case.jac)
    a = torch.from_numpy(regularised((case.jac @ case.jac.T).numpy(), 1e-4))
    grad = a @ w
    scale = float(w.abs().max())
    assert bool((w >= u - 1e-12 * scale).all())
    assert bool((grad >= -1e-9 * scale).all())
    assert float(((w - u) * grad).abs().max()) <= 1e-9 * scale**2


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_no_conflict_and_zero_at_strong_stationarity(dtype: torch.dtype) -> None:
    """With reg=0: ⟨gᵢ, d⟩ ≥ 0 for every task, and d = 0 where 0 = Σ λᵢ gᵢ with λ > 0
    (the dual cone is then the null space of G, orthogonal to Gᵀu)."""
    failures = []
    for case in CASES + SCALED:
        if not representable(case.jac, dtype):
            continue
        d, w = _dualproj(case.jac.to(dtype), reg=0.0)
        checks = [finite, non_conflicting] + ([stationary_zero] if case.stationary == "strong" else [])
        for check in checks:
            msg = check(case, d, w, dtype, 1e-9)
            if msg:
                failures.append(f"{case.id}: {msg}")
    assert not failures, "; ".join(failures[:8])


def test_without_conflict_it_is_the_mean_gradient() -> None:
    g = torch.tensor([[1.0, 0.2, 0.0], [0.3, 1.0, 0.1], [0.0, 0.4, 1.0]], dtype=F64)
    d, w = _dualproj(g)
    torch.testing.assert_close(w, torch.full((3,), 1 / 3, dtype=F64))
    torch.testing.assert_close(d, g.mean(0))


def test_preferences_and_homogeneity() -> None:
    g = torch.tensor([[1.0, 0.0], [-2.0, 1.0], [0.5, 0.5]], dtype=F64)
    _, w = _dualproj(g, reg=0.0)
    d2, _ = tb.create("dualproj", tasks=3, reg=0.0).aggregate(g * 1e6)  # type: ignore[attr-defined]
    expect = 1e6 * (w @ g)
    assert float((d2 - expect).norm()) <= 1e-9 * float(expect.norm())
    pref = [0.7, 0.2, 0.1]
    _, wp = tb.create("dualproj", tasks=3, pref=pref, reg=0.0).aggregate(g)  # type: ignore[attr-defined]
    assert bool((wp >= torch.tensor(pref, dtype=F64) - 1e-12).all())


def test_agrees_with_torchjd() -> None:
    """Cosine ≥ 0.999 and norms within 1e-4 of TorchJD's ``DualProj`` (quadprog, the same
    M/tr M + 1e-4 I) on the 60 random Jacobians of the TorchJD cross-checks (tests/helpers.py) and every
    matrix family at scale 1; measured: cosine ≥ 1 - 1e-12, norms within 1e-9.
    TorchJD's ``norm_eps`` zeroes a Gramian of trace < 1e-4, so below that scale the two
    differ by design (see docs/methods/dualproj.md)."""
    agreement = compare(
        lambda j: _dualproj(j)[0],
        lambda j: aggregation.DualProj()(j),
        cross_jacobians(max_tasks=10, min_tasks=1),
    )
    assert agreement.cos >= 0.999 and agreement.ratio <= 1e-4, agreement
    with_pref = compare(
        lambda j: tb.create(
            "dualproj", tasks=j.shape[0], pref=[float(i + 1) for i in range(j.shape[0])]
        ).aggregate(j)[0],  # type: ignore[attr-defined]
        lambda j: aggregation.DualProj(pref_vector=torch.arange(1, j.shape[0] + 1, dtype=F64))(j),
        cross_jacobians(max_tasks=6),
    )
    assert with_pref.cos >= 0.999 and with_pref.ratio <= 1e-4, with_pref
