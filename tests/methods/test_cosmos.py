"""COSMOS: linear scalarisation minus λ cos(r, L); total and weights against TorchJD's
COSMOS scalarizer on the same losses."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

F64 = torch.float64


def cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(losses, preference): K = 1 to 10, losses from 1e-6 to 1e6, Dirichlet preferences."""
    g = torch.Generator().manual_seed(7)
    out = []
    for i in range(60):
        k = 1 + i % 10
        losses = torch.exp(torch.randn(k, generator=g, dtype=F64) * 3)
        pref = torch.distributions.Dirichlet(torch.ones(k, dtype=F64)).sample()
        out.append((losses, pref))
    return out


@pytest.mark.parametrize("lam", [0.0, 0.01, 1.0, 8.0])
def test_total_and_weights_equal_torchjds(lam: float) -> None:
    """The total to 1e-12 and the weights, ∂total/∂L from TorchJD's graph, to 1e-10: the
    gradient directions (weights times the same per-task gradients) have cosine 1 and
    length ratio 1."""
    scalarization = pytest.importorskip("torchjd.scalarization")
    for losses, pref in cases():
        k = losses.numel()
        b = tb.create("cosmos", tasks=k, lambda_=lam, preference=pref.tolist())
        x = losses.clone().requires_grad_(True)
        total = b(list(x.unbind()))
        y = losses.clone().requires_grad_(True)
        theirs = scalarization.COSMOS(lambda_=lam, weights=pref)(y)
        (w_theirs,) = torch.autograd.grad(theirs, y)
        torch.testing.assert_close(total, theirs, rtol=1e-12, atol=1e-12)
        w = torch.stack(list(b.weights.values()))
        torch.testing.assert_close(w, w_theirs, rtol=1e-10, atol=1e-12)
        total.backward()
        torch.testing.assert_close(x.grad, w)


def test_closed_form_of_the_weights() -> None:
    """wᵢ = rᵢ - λ (rᵢ / (‖r‖‖L‖) - cos · Lᵢ / ‖L‖²) away from zero norms."""
    r = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    loss = torch.tensor([2.0, 0.5, 1.0], dtype=F64, requires_grad=True)
    b = tb.create("cosmos", tasks=3, lambda_=2.0, preference=r.tolist())
    b(list(loss.unbind()))
    ld = loss.detach()
    cos = (r @ ld) / (r.norm() * ld.norm())
    expected = r - 2.0 * (r / (r.norm() * ld.norm()) - cos * ld / ld.norm() ** 2)
    torch.testing.assert_close(torch.stack(list(b.weights.values())), expected, rtol=1e-12, atol=0)


def test_absent_task_uses_the_present_entries_and_evaluation_changes_nothing() -> None:
    b = tb.create("cosmos", tasks=["a", "b", "c"], preference={"a": 0.2, "b": 0.3, "c": 0.5})
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    total = b({"a": x[0], "c": x[1]})
    r = torch.tensor([0.2, 0.5])
    expected = (r * x.detach()).sum() - torch.nn.functional.cosine_similarity(r, x.detach(), dim=0)
    torch.testing.assert_close(total.detach(), expected)
    before = dict(b.weights)
    with torch.no_grad():
        b({"a": torch.tensor(5.0), "b": torch.tensor(1.0), "c": torch.tensor(1.0)})
    assert b.weights.keys() == before.keys()
    with pytest.raises(ValueError, match="preference must be >= 0"):
        tb.create("cosmos", tasks=2, preference=[-1.0, 2.0])
    with pytest.raises(ValueError, match="lambda_ must be"):
        tb.create("cosmos", tasks=2, lambda_=-1.0)
