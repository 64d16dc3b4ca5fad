"""MoCo: tracked, loss-scaled normalised gradients and a softmax weight update; against
LibMTL's MoCo.backward transcribed step by step (TorchJD 0.18 has no MoCo)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taskbalance as tb

from ..properties import matrices, representable, scaled

F64 = torch.float64


def sequence(k: int, n: int, steps: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(Jacobian, losses) of one run: rows of scales e^N(0, 1), a shared pull, positive losses."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.randn(k, 1, generator=g, dtype=F64))
    shared = torch.randn(1, n, generator=g, dtype=F64)
    out = []
    for _ in range(steps):
        jac = (torch.randn(k, n, generator=g, dtype=F64) + 0.5 * shared) * scales
        out.append((jac, torch.rand(k, generator=g, dtype=F64) * 3 + 0.1))
    return out


def libmtl_moco(
    steps: list[tuple[torch.Tensor, torch.Tensor]],
    beta: float = 0.5,
    beta_sigma: float = 0.5,
    gamma: float = 0.1,
    gamma_sigma: float = 0.5,
    rho: float = 0.0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """median-research-group/LibMTL, LibMTL/weighting/MoCo.py, MoCo.init_param and
    MoCo.backward (config defaults MoCo_beta=0.5, MoCo_beta_sigma=0.5, MoCo_gamma=0.1,
    MoCo_gamma_sigma=0.5, MoCo_rho=0), with the autograd gradients replaced by the rows
    of the given Jacobians: (new_grads written to the shared parameters, lambd) per step."""
    k, n = steps[0][0].shape
    y = torch.zeros(k, n, dtype=F64)
    lambd = torch.ones(k, dtype=F64) / k
    out = []
    for step, (grads, losses) in enumerate(steps, start=1):
        grads = grads.clone()
        for tn in range(k):
            grads[tn] = grads[tn] / (grads[tn].norm() + 1e-8) * losses[tn]
        y = y - (beta / step**beta_sigma) * (y - grads)
        lambd = torch.softmax(
            lambd - (gamma / step**gamma_sigma) * (y @ y.t() + rho * torch.eye(k, dtype=F64)) @ lambd, -1
        )
        out.append((y.t() @ lambd, lambd))
    return out


@pytest.mark.parametrize(
    "options",
    [{}, {"beta": 0.9, "beta_sigma": 0.0, "gamma": 0.5, "gamma_sigma": 0.0, "rho": 0.1}],
    ids=["defaults", "other"],
)
def test_matches_libmtl_moco_step_by_step(options: dict[str, float]) -> None:
    """30 runs of 6 steps, K = 2 to 10: direction and λ to 1e-12 relative."""
    for run in range(30):
        k = 2 + run % 9
        steps = sequence(k, 25 + run, 6, seed=run)
        b = tb.create("moco", tasks=k, **options)
        for (jac, losses), (d_ref, lam_ref) in zip(steps, libmtl_moco(steps, **options)):
            d, lam = b.aggregate(jac, losses)  # type: ignore[attr-defined]
            torch.testing.assert_close(lam, lam_ref, rtol=1e-12, atol=1e-300)
            torch.testing.assert_close(d, d_ref, rtol=1e-12, atol=1e-12 * float(d_ref.norm()))


# LibMTL's formulas by hand on K = 2, N = 2, losses (1, 2), e = 1e-8: step 1 (β₁ = 0.5,
# γ₁ = 0.1) g = (3, 0), (0, 1): ĝ = (3/(3+e), 0), (0, 2/(1+e)) ≈ (1, 0), (0, 2),
# y = ĝ/2, YYᵀ ≈ diag(0.25, 1), λ ≈ softmax(0.5 - 0.1 (0.125, 0.5)) = softmax(0.4875, 0.45);
# step 2 (β₂ = 0.5/√2, γ₂ = 0.1/√2) g = (0, 2), (1, 0) with the same losses:
# ĝ = (0, 2/(2+e)), (2/(1+e), 0), y ← y - β₂ (y - ĝ).
def _pinned() -> list[tuple[list[float], list[float]]]:
    e = 1e-8
    y1 = 0.5 * torch.tensor([[3 / (3 + e), 0.0], [0.0, 2 / (1 + e)]], dtype=F64)
    s1 = 0.5 - 0.1 * (y1 @ y1.T) @ torch.tensor([0.5, 0.5], dtype=F64)
    lam1 = torch.exp(s1) / torch.exp(s1).sum()
    b2, g2 = 0.5 / 2**0.5, 0.1 / 2**0.5
    y2 = y1 - b2 * (y1 - torch.tensor([[0.0, 2 / (2 + e)], [2 / (1 + e), 0.0]], dtype=F64))
    s2 = lam1 - g2 * (y2 @ y2.T) @ lam1
    lam2 = torch.exp(s2) / torch.exp(s2).sum()
    return [((lam1 @ y1).tolist(), lam1.tolist()), ((lam2 @ y2).tolist(), lam2.tolist())]


def test_pinned_numbers_from_libmtl_formulas() -> None:
    b = tb.create("moco", tasks=2)
    losses = torch.tensor([1.0, 2.0], dtype=F64)
    jacs = [
        torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=F64),
        torch.tensor([[0.0, 2.0], [1.0, 0.0]], dtype=F64),
    ]
    expected = _pinned()
    assert [round(v, 6) for v in expected[0][1]] == [0.509374, 0.490626]
    for jac, (d_ref, lam_ref) in zip(jacs, expected):
        d, lam = b.aggregate(jac, losses)  # type: ignore[attr-defined]
        torch.testing.assert_close(d, torch.tensor(d_ref, dtype=F64), rtol=1e-14, atol=0)
        torch.testing.assert_close(lam, torch.tensor(lam_ref, dtype=F64), rtol=1e-14, atol=0)


CASES = scaled(matrices(seed=4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_lambda_on_the_simplex_and_direction_in_the_tracked_span(dtype: torch.dtype) -> None:
    """Every family at scales 0 to 1e15, three steps each: λ > 0 sums to 1 (softmax), the
    direction is finite, in the input's dtype, and λᵀY; a zero row tracks zero."""
    for case in CASES:
        if not representable(case.jac, dtype):
            continue
        jac = case.jac.to(dtype)
        k = jac.shape[0]
        b = tb.create("moco", tasks=k)
        losses = torch.linspace(0.5, 2.0, k, dtype=F64)
        for _ in range(3):
            d, lam = b.aggregate(jac, losses.to(dtype))  # type: ignore[attr-defined]
            assert d.dtype == dtype and bool(torch.isfinite(d).all()), case.id
            assert bool(torch.isfinite(lam).all()) and bool((lam >= 0).all()), case.id
            assert abs(float(lam.double().sum()) - 1) < 1e-3, case.id
            y = b.tracked
            assert y is not None
            ref = lam.double() @ y.double()
            assert float((d.double() - ref).norm()) <= 2e-2 * float(ref.norm()) + 1e-30, case.id
        zero = case.jac.abs().sum(1) == 0
        assert b.tracked is not None and bool((b.tracked[zero] == 0).all()), case.id


def test_steps_decay_and_absent_tasks_keep_their_tracking() -> None:
    b = tb.create("moco", tasks=["a", "b", "c"])
    w = nn.Parameter(torch.ones(4))
    a = torch.randn(3, 4)
    b.backward([(a[0] @ w) ** 2, (a[1] @ w) ** 2, (a[2] @ w) ** 2], shared_params=[w])
    assert b.tracked is not None
    kept = b.tracked[1].clone()
    lam_b = b.lambd[1].clone()
    b.backward([(a[0] @ w) ** 2, None, (a[2] @ w) ** 2], shared_params=[w])
    assert b.step == 2
    assert torch.equal(b.tracked[1], kept) and torch.equal(b.lambd[1], lam_b)
    torch.testing.assert_close(b.lambd[[0, 2]].sum(), torch.tensor(1.0, dtype=F64))


def test_refuses_features_negative_losses_and_bad_options() -> None:
    z = torch.randn(4, 3, requires_grad=True)
    b = tb.create("moco", tasks=2)
    with pytest.raises(ValueError, match=r"MoCo.*tracked gradients.*shared_params="):
        b.backward([z.sum(), (z**2).sum()], features=z)
    w = nn.Parameter(torch.ones(3))
    with pytest.raises(tb.InvalidLossError, match="reverses"):
        b.backward([w.sum(), -(w**2).sum()], shared_params=[w])
    with pytest.raises(ValueError, match="beta must be"):
        tb.create("moco", tasks=2, beta=1.5)
