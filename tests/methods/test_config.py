"""ConFIG: the direction of equal cosines with the task gradients.

Its defining equation (U b̂ ∝ p for the unit gradients U, d = (Σ gᵢᵀb̂) b̂) on every
matrix family, dtype and scale, and its agreement with TorchJD 0.18's ``ConFIG`` (which
takes the pseudo-inverse of U by SVD; ours is on the Gramian).
"""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..properties import Case, finite, matrices, non_conflicting, representable, scaled
from .common import compare, cross_jacobians

aggregation = pytest.importorskip("torchjd.aggregation", reason="the test command installs torchjd")

F64 = torch.float64
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
CASES = matrices()
SCALED = scaled(matrices(sizes=((3, 7), (5, 3), (10, 4)), seed=1))


def _config(jac: torch.Tensor, **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
    d, w = tb.create("config", tasks=jac.shape[0], **kw).aggregate(jac)  # type: ignore[attr-defined]
    return d, w


FULL = [c for c in CASES if c.full_rank]


@pytest.mark.parametrize("case", FULL, ids=[c.id for c in FULL])
def test_cosines_follow_the_preferences(case: Case) -> None:
    """Linearly independent rows: cos(gᵢ, d) ∝ pᵢ, and d's length is Σ gᵢᵀd/‖d‖."""
    jac = case.jac
    k = jac.shape[0]
    for pref in (torch.ones(k, dtype=F64), torch.arange(1, k + 1, dtype=F64)):
        d, _ = _config(jac, pref=pref.tolist())
        cos = (jac @ d) / (jac.norm(dim=1) * d.norm())
        torch.testing.assert_close(cos / cos.sum(), pref / pref.sum(), rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(d.norm(), (jac @ d).sum() / d.norm(), rtol=1e-9, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_finite_and_non_conflicting_on_independent_rows(dtype: torch.dtype) -> None:
    failures = []
    for case in CASES + SCALED:
        if not representable(case.jac, dtype):
            continue
        d, w = _config(case.jac.to(dtype))
        checks = [finite] + ([non_conflicting] if case.full_rank and dtype == F64 else [])
        for check in checks:
            msg = check(case, d, w, dtype, 1e-9)
            if msg:
                failures.append(f"{case.id}: {msg}")
    assert not failures, "; ".join(failures[:8])


def test_homogeneous() -> None:
    for case in CASES:
        d1, _ = _config(case.jac)
        for a in (1e-6, 1e4):
            d2, _ = _config(case.jac * a)
            assert float((d2 - a * d1).norm()) <= 1e-6 * a * max(float(d1.norm()), 1e-9), case.id


def test_agrees_with_torchjd() -> None:
    """Cosine ≥ 0.999 and norms within 1e-6 of TorchJD's ``ConFIG`` on the 60 random
    Jacobians of the TorchJD cross-checks (tests/helpers.py), every matrix family and every
    scale from 0 to 1e15
    (directions below 1e-6 of the largest gradient, such as TorchJD's 1e-8 rounding
    residue for two opposite gradients, count as zero); measured: cosine 1 - 1e-15,
    norms within 3e-15."""
    jacs = cross_jacobians(max_tasks=10, min_tasks=1) + [c.jac for c in SCALED]
    agreement = compare(lambda j: _config(j)[0], lambda j: aggregation.ConFIG()(j), jacs)
    assert agreement.cos >= 0.999 and agreement.ratio <= 1e-6, agreement
    with_pref = compare(
        lambda j: _config(j, pref=[float(i + 1) for i in range(j.shape[0])])[0],
        lambda j: aggregation.ConFIG(pref_vector=torch.arange(1, j.shape[0] + 1, dtype=F64))(j),
        cross_jacobians(max_tasks=6),
    )
    assert with_pref.cos >= 0.999 and with_pref.ratio <= 1e-6, with_pref
