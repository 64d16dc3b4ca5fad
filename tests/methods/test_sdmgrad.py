"""SDMGrad: projected SGD with momentum on the normalised Gramian, pulled towards a
preferred direction; against TorchJD's SDMGradWeighting and LibMTL's inner loop."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..properties import matrices, representable, scaled
from .common import raw_cosine as cosine
from .common import sequence

F64 = torch.float64


OPTIONS = [
    ({}, {}),
    ({"lr": 5.0, "n_iter": 7, "lambda_": 0.0}, {"lr": 5.0, "n_iter": 7, "lambda_": 0.0}),
    ({"momentum": 0.0, "lambda_": 1.0, "preference": [3.0, 1.0, 1.0]}, {"momentum": 0.0, "lambda_": 1.0}),
]


@pytest.mark.parametrize(("ours_kw", "theirs_kw"), OPTIONS, ids=["defaults", "libmtl-lr", "preference"])
def test_agrees_with_torchjd_on_sequences(ours_kw: dict, theirs_kw: dict) -> None:
    """TorchJD 0.18's SDMGradWeighting given the Gramian J Jᵀ of each step (its one-batch
    use): 40 runs of 8 steps, K = 3 to 10, weights to 1e-10, directions of cosine 1 and
    length ratio 1."""
    aggregation = pytest.importorskip("torchjd.aggregation")
    worst_cos, worst_ratio = 1.0, 0.0
    for run in range(40):
        k = 3 + run % 8
        kw = dict(ours_kw)
        pref = None
        if "preference" in kw:
            pref = torch.tensor([3.0] + [1.0] * (k - 1), dtype=F64)
            kw["preference"] = pref.tolist()
            pref = pref / pref.sum()
        ours = tb.create("sdmgrad", tasks=k, **kw)
        theirs = aggregation.SDMGradWeighting(**theirs_kw, pref_vector=pref)
        for jac in sequence(k, 30 + run, 8, seed=run):
            d, w = ours.aggregate(jac)  # type: ignore[attr-defined]
            w_theirs = theirs(jac @ jac.T)
            torch.testing.assert_close(w, w_theirs, rtol=1e-10, atol=1e-12)
            d_theirs = w_theirs @ jac
            worst_cos = min(worst_cos, cosine(d, d_theirs))
            worst_ratio = max(worst_ratio, abs(float(d.norm() / d_theirs.norm()) - 1))
    assert worst_cos >= 0.999999 and worst_ratio < 1e-8


def libmtl_inner(gg: torch.Tensor, w: torch.Tensor, lamda: float, niter: int, lr: float) -> torch.Tensor:
    """median-research-group/LibMTL, LibMTL/weighting/SDMGrad.py, SDMGrad.backward: the
    scale normalisation and the torch.optim.SGD(lr, momentum=0.5) loop on w, each step
    projected onto the simplex (their euclidean_proj_simplex); xi_grads1 = xi_grads2 here."""
    diag = torch.diag(gg)
    diag = torch.where(diag < 0, torch.zeros_like(diag), diag)
    scale = torch.mean(torch.sqrt(diag))
    gg = gg / (scale.pow(2) + 1e-8)
    gmean = torch.mean(gg, dim=1)
    w = w.clone().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=lr, momentum=0.5)
    for _ in range(niter):
        opt.zero_grad()
        w.grad = torch.mv(gg, w.detach()) + lamda * gmean
        opt.step()
        v = w.data
        u, _ = torch.sort(v, descending=True)
        cssv = torch.cumsum(u, 0)
        ks = torch.arange(1, v.numel() + 1, dtype=v.dtype)
        rho = int(torch.nonzero(u * ks > (cssv - 1))[-1])
        theta = (cssv[rho] - 1) / (rho + 1)
        w.data.copy_((v - theta).clamp(min=0))
    return w.detach()


def test_inner_loop_is_libmtls() -> None:
    """With LibMTL's lr = 5, from the same w, the weights after each step are LibMTL's to
    1e-10 and the direction is its (gw + λ g0) / (1 + λ). (Chained over steps without
    re-syncing, rounding differences of 1e-12 in one step grow to 1e-8 in five: the
    inner iteration with lr = 5 amplifies them.)"""
    for run in range(10):
        k = 2 + run % 5
        b = tb.create("sdmgrad", tasks=k, lr=5.0)
        w_ref = torch.full((k,), 1 / k, dtype=F64)
        for jac in sequence(k, 20, 5, seed=50 + run):
            b.w.copy_(w_ref)
            d, _ = b.aggregate(jac)  # type: ignore[attr-defined]
            w_ref = libmtl_inner(jac @ jac.T, w_ref, 0.3, 20, 5.0)
            torch.testing.assert_close(b.w, w_ref, rtol=1e-10, atol=1e-10)
            expected = ((jac * w_ref.view(-1, 1)).sum(0) + 0.3 * jac.mean(0)) / 1.3
            torch.testing.assert_close(d, expected, rtol=1e-10, atol=1e-12)


CASES = scaled(matrices(seed=6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_weights_on_the_simplex_with_the_preference_floor(dtype: torch.dtype) -> None:
    """Every family at scales 0 to 1e15, two steps each: finite direction in the input's
    dtype, weights summing to 1 and at least λ w̃ᵢ / (1 + λ)."""
    for case in CASES:
        if not representable(case.jac, dtype):
            continue
        jac = case.jac.to(dtype)
        k = jac.shape[0]
        b = tb.create("sdmgrad", tasks=k)
        for _ in range(2):
            d, w = b.aggregate(jac)  # type: ignore[attr-defined]
            assert d.dtype == dtype and bool(torch.isfinite(d).all()), case.id
            assert abs(float(w.double().sum()) - 1) < 1e-3, case.id
            assert float(w.double().min()) >= 0.3 / k / 1.3 - 1e-3, case.id


def test_orthogonal_equal_gradients_give_equal_weights_and_options_are_checked() -> None:
    _, w = tb.create("sdmgrad", tasks=3).aggregate(torch.eye(3, dtype=F64))  # type: ignore[attr-defined]
    torch.testing.assert_close(w, torch.full((3,), 1 / 3, dtype=F64))
    with pytest.raises(ValueError, match="momentum must be"):
        tb.create("sdmgrad", tasks=2, momentum=1.0)
    with pytest.raises(ValueError, match="n_iter must be an integer >= 1"):
        tb.create("sdmgrad", tasks=2, n_iter=0)
    with pytest.raises(ValueError, match="preference must be >= 0"):
        tb.create("sdmgrad", tasks=2, preference=[1.0, -1.0])
