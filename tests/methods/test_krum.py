"""Krum and Multi-Krum: the mean of the gradients closest to their neighbours.

The selection rule against a direct computation on the Jacobian (pairwise distances of
the rows), the degraded cases (fewer tasks present than the rule needs), and the
agreement with TorchJD 0.18's ``Krum`` on every matrix family and scale.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import taskbalance as tb

from ..properties import finite, matrices, representable, scaled
from .common import compare, cross_jacobians

aggregation = pytest.importorskip("torchjd.aggregation", reason="the test command installs torchjd")

F64 = torch.float64
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SCALED = scaled(matrices(sizes=((3, 7), (5, 3), (10, 4)), seed=1))


def _krum(jac: torch.Tensor, **kw: int) -> tuple[torch.Tensor, torch.Tensor]:
    d, w = tb.create("krum", tasks=jac.shape[0], **kw).aggregate(jac)  # type: ignore[attr-defined]
    return d, w


@pytest.mark.parametrize(("f", "m"), list(itertools.product([0, 1, 2], [1, 2, 3])))
def test_selection_is_the_lowest_scores_of_the_rows(f: int, m: int) -> None:
    """s_i = the sum of the K - f - 2 smallest ‖gᵢ - gⱼ‖ (j ≠ i), from the rows directly;
    d = the mean of the m rows of lowest score (random rows: no ties)."""
    g = torch.Generator().manual_seed(10 * f + m)
    for k in range(max(f + 3, m), 9):
        jac = torch.randn(k, 6, generator=g, dtype=F64) * torch.exp(torch.randn(k, 1, generator=g, dtype=F64))
        dist = torch.cdist(jac, jac)
        scores = torch.stack(
            [
                torch.sort(torch.cat([dist[i, :i], dist[i, i + 1 :]])).values[: k - f - 2].sum()
                for i in range(k)
            ]
        )
        chosen = torch.argsort(scores)[:m]
        d, w = _krum(jac, n_byzantine=f, n_selected=m)
        torch.testing.assert_close(d, jac[chosen].mean(0))
        assert set(torch.nonzero(w).flatten().tolist()) == set(chosen.tolist())


def test_outliers_are_left_out() -> None:
    g = torch.Generator().manual_seed(0)
    honest = torch.tensor([1.0, 2.0, -1.0], dtype=F64) + 0.1 * torch.randn(5, 3, generator=g, dtype=F64)
    jac = torch.cat([honest, torch.tensor([[50.0, -40.0, 9.0], [-30.0, 0.0, 60.0]], dtype=F64)])
    _, w = _krum(jac, n_byzantine=2, n_selected=3)
    assert float(w[5:].abs().sum()) == 0.0 and float(w.sum()) == pytest.approx(1.0)


def test_fewer_tasks_present_than_the_rule_needs() -> None:
    jac = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    d, _ = _krum(jac)  # two tasks: no majority, the mean
    torch.testing.assert_close(d, jac.mean(0))
    w = torch.zeros(2, requires_grad=True)
    b = tb.create("krum", tasks=["a", "b", "c", "d", "e"], n_byzantine=2, n_selected=2)
    rows = {"a": [1.0, 0.0], "b": [1.1, 0.0], "c": [5.0, 5.0]}
    b.backward({n: w @ torch.tensor(r) for n, r in rows.items()}, shared_params=[w])  # f -> 0
    assert set(b.weights) == {"a", "b", "c"} and torch.isfinite(w.grad).all()
    with pytest.raises(ValueError, match="n_byzantine"):
        tb.create("krum", tasks=3, n_byzantine=1)
    with pytest.raises(ValueError, match="n_selected"):
        tb.create("krum", tasks=3, n_selected=4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_finite_on_every_family_and_scale(dtype: torch.dtype) -> None:
    failures = []
    for case in [c for c in matrices() + SCALED if c.jac.shape[0] >= 3]:
        if not representable(case.jac, dtype):
            continue
        d, w = _krum(case.jac.to(dtype), n_byzantine=0)
        msg = finite(case, d, w, dtype, 0.0)
        if msg:
            failures.append(f"{case.id}: {msg}")
    assert not failures, "; ".join(failures[:8])


@pytest.mark.parametrize(("f", "m"), list(itertools.product([0, 1, 2], [1, 2, 3])))
def test_agrees_with_torchjd(f: int, m: int) -> None:
    """The same selection as TorchJD's ``Krum`` on the 60 random Jacobians of
    the TorchJD cross-checks (tests/helpers.py), every matrix family and every scale from 0
    to 1e15 (duplicated
    rows included: ties go to the lower index in both); measured: identical directions."""
    jacs = cross_jacobians(max_tasks=10, min_tasks=1) + [c.jac for c in SCALED]
    jacs = [j for j in jacs if j.shape[0] >= max(f + 3, m)]
    agreement = compare(
        lambda j: _krum(j, n_byzantine=f, n_selected=m)[0],
        lambda j: aggregation.Krum(n_byzantine=f, n_selected=m)(j),
        jacs,
    )
    assert agreement.cos >= 0.999 and agreement.ratio <= 1e-12, agreement
