"""ExcessMTL: AdaGrad-style excess-risk estimates, a baseline from the warm-up, an
exponentiated weight update; against TorchJD's ExcessMTLWeighting on sequences of
Jacobians (state carried) and against the authors' loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taskbalance as tb

from ..properties import matrices, representable, scaled
from .common import raw_cosine as cosine
from .common import sequence

F64 = torch.float64


@pytest.mark.parametrize("warmup", [1, 3])
def test_agrees_with_torchjd_on_sequences(warmup: int) -> None:
    """TorchJD 0.18's ExcessMTLWeighting(n_warmup_steps=n) gives the same weights divided by
    K (its weights sum to 1, the authors' to K): on 40 runs of 8 steps, K = 2 to 10, the
    weights agree to 1e-12 relative, so the directions have cosine 1 and length ratio K."""
    aggregation = pytest.importorskip("torchjd.aggregation")
    worst_cos, worst_ratio = 1.0, 0.0
    for run in range(40):
        k = 2 + run % 9
        ours = tb.create("excess-mtl", tasks=k, warmup_steps=warmup)
        theirs = aggregation.ExcessMTLWeighting(n_warmup_steps=warmup)
        for jac in sequence(k, 30 + run, 8, seed=run):
            d, w = ours.aggregate(jac)  # type: ignore[attr-defined]
            w_theirs = theirs(jac)
            torch.testing.assert_close(w / k, w_theirs, rtol=1e-12, atol=1e-300)
            d_theirs = w_theirs @ jac
            worst_cos = min(worst_cos, cosine(d, d_theirs))
            worst_ratio = max(worst_ratio, abs(float(d.norm() / d_theirs.norm()) / k - 1))
    assert worst_cos >= 0.999999 and worst_ratio < 1e-10


def authors_loop(jacs: list[torch.Tensor], robust_step_size: float) -> list[torch.Tensor]:
    """yifei-he/ExcessMTL, LibMTL/LibMTL/weighting/ExcessMTL.py (identical in
    median-research-group/LibMTL, LibMTL/weighting/ExcessMTL.py), ExcessMTL.backward with
    the autograd gradients replaced by the given rows: the weights after each step."""
    k = jacs[0].shape[0]
    loss_weight = torch.ones(k, dtype=F64)
    grad_sum = torch.zeros_like(jacs[0])
    initial_w = None
    out = []
    for grads in jacs:
        w = torch.zeros(k, dtype=F64)
        for i in range(k):
            grad_sum[i] += grads[i] ** 2
            h_i = torch.sqrt(grad_sum[i] + 1e-7)
            w[i] = grads[i] * (1 / h_i) @ grads[i]
        if initial_w is None:
            initial_w = w
        else:
            w = w / initial_w
            loss_weight = loss_weight * torch.exp(w * robust_step_size)
            loss_weight = loss_weight / loss_weight.sum() * k
        out.append(loss_weight.clone())
    return out


@pytest.mark.parametrize("eta", [0.1, 1.0])
def test_matches_the_authors_loop(eta: float) -> None:
    """The authors divide by the baseline without TorchJD's +1e-7 and exponentiate in
    linear space; on gradients of norm ~1 the two agree to 1e-6 relative."""
    for run in range(10):
        k = 2 + run % 4
        jacs = sequence(k, 20, 6, seed=100 + run)
        b = tb.create("excess-mtl", tasks=k, robust_step_size=eta)
        for jac, expected in zip(jacs, authors_loop(jacs, eta)):
            _, w = b.aggregate(jac)  # type: ignore[attr-defined]
            torch.testing.assert_close(w, expected, rtol=1e-6, atol=1e-12)


def test_pinned_two_task_numbers() -> None:
    """By hand: step 1 sets the baselines 1/√(1 + 1e-7) each; step 2 has S = (17, 2) on
    the non-zero entries, so Ê = (16/√17, 1/√2) and α = 2 softmax(Ê / Ê⁰)."""
    b = tb.create("excess-mtl", tasks=2)
    _, w1 = b.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64))  # type: ignore[attr-defined]
    assert w1.tolist() == [1.0, 1.0]
    d, w = b.aggregate(torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=F64))  # type: ignore[attr-defined]
    base = 1 / (1 + 1e-7) ** 0.5
    r = torch.tensor([16 / (17 + 1e-7) ** 0.5, 1 / (2 + 1e-7) ** 0.5], dtype=F64) / (base + 1e-7)
    torch.testing.assert_close(w, 2 * torch.softmax(r, 0), rtol=1e-14, atol=0)
    torch.testing.assert_close(d, torch.stack([4 * w[0], w[1]]), rtol=1e-14, atol=0)


CASES = scaled(matrices(seed=3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_weights_stay_positive_and_sum_to_k_on_adversarial_jacobians(dtype: torch.dtype) -> None:
    """Every family (zero, duplicated, opposite rows, rank-deficient, K > N) at scales 0 to
    1e15, three steps each: finite direction in the input's dtype, weights > 0 summing to
    K (a zero-gradient task keeps a finite weight), the first step the plain sum."""
    for case in CASES:
        jac = case.jac.to(dtype)
        if not representable(case.jac, dtype):
            continue
        k = jac.shape[0]
        b = tb.create("excess-mtl", tasks=k)
        for t in range(3):
            d, w = b.aggregate(jac)  # type: ignore[attr-defined]
            assert d.dtype == dtype and bool(torch.isfinite(d).all()), case.id
            assert bool(torch.isfinite(w).all()) and bool((w >= 0).all()), case.id
            assert abs(float(w.double().sum()) - k) <= 1e-2 * k, case.id
            if t == 0:
                assert w.tolist() == [1.0] * k, case.id


def test_absent_task_keeps_its_statistics() -> None:
    b = tb.create("excess-mtl", tasks=["a", "b", "c"])
    w = nn.Parameter(torch.ones(4))
    a = torch.randn(3, 4)
    for _ in range(2):
        b.backward([a[0] @ w, None, (a[2] @ w) ** 2], shared_params=[w])
    assert b.seen.tolist() == [2.0, 0.0, 2.0]
    assert b.baseline[1] == 0 and b.alpha[1] == 1
    assert b.squares is not None and b.squares[1].abs().sum() == 0


def test_refuses_features_and_bad_options() -> None:
    z = torch.randn(4, 3, requires_grad=True)
    b = tb.create("excess-mtl", tasks=2)
    with pytest.raises(ValueError, match=r"ExcessMTL.*squared gradients.*shared_params="):
        b.backward([z.sum(), (z**2).sum()], features=z)
    with pytest.raises(ValueError, match="robust_step_size must be"):
        tb.create("excess-mtl", tasks=2, robust_step_size=0.0)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 1"):
        tb.create("excess-mtl", tasks=2, warmup_steps=0)
