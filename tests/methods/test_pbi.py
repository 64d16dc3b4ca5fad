"""PBI: distance along the preference ray plus θ times the distance to it; total and
weights against TorchJD's PBI scalarizer on the same losses."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

F64 = torch.float64


def cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    g = torch.Generator().manual_seed(8)
    out = []
    for i in range(60):
        k = 1 + i % 10
        losses = torch.exp(torch.randn(k, generator=g, dtype=F64) * 2)
        pref = torch.distributions.Dirichlet(torch.ones(k, dtype=F64)).sample()
        ref = None if i % 2 else -torch.rand(k, generator=g, dtype=F64)
        out.append((losses, pref, ref))
    return out


@pytest.mark.parametrize("theta", [0.0, 1.0, 5.0])
def test_total_and_weights_equal_torchjds(theta: float) -> None:
    """Total to 1e-12 and weights (∂total/∂L from TorchJD's graph) to 1e-9, with and
    without a reference point: same directions, cosine 1, length ratio 1."""
    scalarization = pytest.importorskip("torchjd.scalarization")
    for losses, pref, ref in cases():
        k = losses.numel()
        kw = {} if ref is None else {"reference": ref.tolist()}
        b = tb.create("pbi", tasks=k, theta=theta, preference=pref.tolist(), **kw)
        x = losses.clone().requires_grad_(True)
        total = b(list(x.unbind()))
        y = losses.clone().requires_grad_(True)
        theirs = scalarization.PBI(theta=theta, weights=pref, reference=ref)(y)
        (w_theirs,) = torch.autograd.grad(theirs, y)
        torch.testing.assert_close(total, theirs, rtol=1e-12, atol=1e-12)
        w = torch.stack(list(b.weights.values()))
        torch.testing.assert_close(w, w_theirs, rtol=1e-9, atol=1e-12)
        total.backward()
        torch.testing.assert_close(x.grad, w)


def test_weights_are_the_ray_plus_theta_times_the_unit_perpendicular() -> None:
    w_ray = torch.tensor([1.0, 2.0, 2.0], dtype=F64) / 3
    loss = torch.tensor([3.0, 1.0, 2.0], dtype=F64, requires_grad=True)
    b = tb.create("pbi", tasks=3, theta=5.0, preference=[1.0, 2.0, 2.0])
    b(list(loss.unbind()))
    ld = loss.detach()
    p = ld - (ld @ w_ray) * w_ray
    expected = w_ray + 5.0 * p / torch.sqrt(p @ p + 1e-12)
    torch.testing.assert_close(torch.stack(list(b.weights.values())), expected, rtol=1e-12, atol=0)


def test_on_the_ray_the_gradient_is_finite_and_options_are_checked() -> None:
    loss = torch.tensor([1.0, 1.0], requires_grad=True)
    b = tb.create("pbi", tasks=2)
    b(list(loss.unbind())).backward()
    assert loss.grad is not None and bool(torch.isfinite(loss.grad).all())
    with pytest.raises(ValueError, match="theta must be"):
        tb.create("pbi", tasks=2, theta=-1.0)
