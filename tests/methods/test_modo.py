"""MoDo: one projected-gradient step on the simplex weights per training step, on the
step's Gramian; against TorchJD's MoDoWeighting on sequences (state carried)."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..properties import matrices, representable, scaled
from .common import raw_cosine as cosine
from .common import sequence

F64 = torch.float64


@pytest.mark.parametrize("options", [{}, {"gamma": 0.01, "rho": 0.0}], ids=["defaults", "other"])
def test_agrees_with_torchjd_on_sequences(options: dict[str, float]) -> None:
    """TorchJD 0.18's MoDoWeighting given the Gramian J Jᵀ of each step (its one-batch
    use; the paper's J₁J₂ᵀ needs two batches): 40 runs of 8 steps, K = 2 to 10, the
    weights agree to 1e-12, so the directions have cosine 1 and length ratio 1."""
    aggregation = pytest.importorskip("torchjd.aggregation")
    worst_cos, worst_ratio = 1.0, 0.0
    for run in range(40):
        k = 2 + run % 9
        ours = tb.create("modo", tasks=k, **options)
        theirs = aggregation.MoDoWeighting(**options)
        for jac in sequence(k, 30 + run, 8, seed=run, scale=0.5):
            d, w = ours.aggregate(jac)  # type: ignore[attr-defined]
            w_theirs = theirs(jac @ jac.T)
            torch.testing.assert_close(w, w_theirs, rtol=1e-12, atol=1e-14)
            d_theirs = w_theirs @ jac
            if float(d_theirs.norm()) > 0:
                worst_cos = min(worst_cos, cosine(d, d_theirs))
                worst_ratio = max(worst_ratio, abs(float(d.norm() / d_theirs.norm()) - 1))
    assert worst_cos >= 0.999999 and worst_ratio < 1e-9


def test_pinned_two_task_step() -> None:
    """M = diag(4, 1), λ = (½, ½): λ - 0.1 (Mλ + 0.1 λ) = (0.295, 0.445), projected by
    adding 0.13 to both; the second step starts from there."""
    b = tb.create("modo", tasks=2)
    jac = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64)
    _, w = b.aggregate(jac)  # type: ignore[attr-defined]
    torch.testing.assert_close(w, torch.tensor([0.425, 0.575], dtype=F64), rtol=1e-14, atol=1e-15)
    _, w = b.aggregate(jac)  # type: ignore[attr-defined]
    raw = torch.tensor([0.425 - 0.1 * (1.7 + 0.0425), 0.575 - 0.1 * (0.575 + 0.0575)], dtype=F64)
    torch.testing.assert_close(w, raw + (1 - raw.sum()) / 2, rtol=1e-14, atol=1e-15)


CASES = scaled(matrices(seed=5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_weights_stay_on_the_simplex_on_adversarial_jacobians(dtype: torch.dtype) -> None:
    """Every family at scales 0 to 1e15, three steps each: finite direction in the input's
    dtype, weights >= 0 summing to 1 (at 1e15 the step jumps to a vertex)."""
    for case in CASES:
        if not representable(case.jac, dtype):
            continue
        jac = case.jac.to(dtype)
        b = tb.create("modo", tasks=jac.shape[0])
        for _ in range(3):
            d, w = b.aggregate(jac)  # type: ignore[attr-defined]
            assert d.dtype == dtype and bool(torch.isfinite(d).all()), case.id
            assert bool((w >= 0).all()) and abs(float(w.double().sum()) - 1) < 1e-3, case.id


def test_is_gramian_only_and_refuses_bad_options() -> None:
    """Weights from J Jᵀ alone: an orthogonal change of coordinates changes nothing."""
    jac = torch.randn(3, 6, dtype=F64)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=F64))
    _, w1 = tb.create("modo", tasks=3).aggregate(jac)  # type: ignore[attr-defined]
    _, w2 = tb.create("modo", tasks=3).aggregate(jac @ q)  # type: ignore[attr-defined]
    torch.testing.assert_close(w1, w2)
    with pytest.raises(ValueError, match="gamma must be"):
        tb.create("modo", tasks=2, gamma=0.0)
    with pytest.raises(ValueError, match="rho must be"):
        tb.create("modo", tasks=2, rho=-1.0)
