"""The contract of the gradient-based methods, on a real model, in both modes (each method's
own rule is in tests/methods/test_<name>.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import taskbalance as tb

from .helpers import TASKS, encoder_and_heads, task_losses

KWARGS: dict[str, dict[str, Any]] = {"nash-mtl": {"max_norm": None}}
LINEAR = {"aligned-mtl", "cagrad", "fairgrad", "imtl-g", "mgda", "nash-mtl", "pcgrad", "gradvac", "upgrad"}


def make(name: str, **kw: Any) -> tb.Balancer:
    return tb.create(name, tasks=TASKS, **{**KWARGS.get(name, {}), **kw})


@pytest.mark.parametrize("mode", ["params", "features"])
def test_backward_fills_every_gradient(gradient_method: str, mode: str) -> None:
    enc, heads, x = encoder_and_heads()
    y = torch.randn(8, 3)
    b = make(gradient_method)
    z = enc(x)
    losses = task_losses(heads, z, y)
    kwargs = {"shared_params": enc.parameters()} if mode == "params" else {"features": z}
    if mode == "features" and not b.supports_features:  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="cannot balance feature gradients"):
            b.backward(losses, **kwargs)
        return
    out = b.backward(losses, **kwargs)
    assert out.ndim == 0 and not out.requires_grad
    for p in [*enc.parameters(), *heads.parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert set(b.weights) == set(TASKS)
    for p in b.parameters():
        assert p.grad is not None


@pytest.mark.parametrize("name", sorted(LINEAR))
@pytest.mark.parametrize("mode", ["params", "features"])
def test_shared_gradient_is_the_weighted_sum_and_heads_get_their_own(name: str, mode: str) -> None:
    """Independent check: shared grads = Σ wᵢ ∇Lᵢ with the reported w; heads = ∇Lᵢ."""
    enc, heads, x = encoder_and_heads()
    y = torch.randn(8, 3)
    b = make(name)
    z = enc(x)
    losses = task_losses(heads, z, y)
    kwargs = {"shared_params": enc.parameters()} if mode == "params" else {"features": z}
    b.backward(losses, **kwargs)
    got_enc = [p.grad.clone() for p in enc.parameters()]  # type: ignore[union-attr]
    got_heads = [p.grad.clone() for p in heads.parameters()]  # type: ignore[union-attr]
    w = b.weights
    z = enc(x)
    again = task_losses(heads, z, y)
    want_enc = torch.autograd.grad(
        sum(w[t] * again[t] for t in TASKS), list(enc.parameters()), retain_graph=True
    )
    want_heads = torch.autograd.grad(sum(again.values()), list(heads.parameters()))
    for g, h in zip(got_enc, want_enc):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-6)
    for g, h in zip(got_heads, want_heads):
        torch.testing.assert_close(g, h)


def test_absent_task_head_gets_no_gradient(gradient_method: str) -> None:
    enc, heads, x = encoder_and_heads()
    b = make(gradient_method)
    losses = task_losses(heads, enc(x), torch.randn(8, 3))
    del losses["b"]
    b.backward(losses, shared_params=enc.parameters())
    assert all(p.grad is None for p in heads["b"].parameters())
    assert set(b.weights) == {"a", "c"}


def test_forward_is_refused_with_a_pointer_to_backward(gradient_method: str) -> None:
    b = make(gradient_method)
    with pytest.raises(TypeError, match=r"gradient-based.*backward\(losses, shared_params"):
        b([torch.tensor(1.0, requires_grad=True)] * 3)


def test_exactly_one_of_params_or_features() -> None:
    b = make("mgda")
    enc, heads, x = encoder_and_heads()
    z = enc(x)
    losses = task_losses(heads, z, torch.randn(8, 3))
    with pytest.raises(ValueError, match="exactly one"):
        b.backward(losses)
    with pytest.raises(ValueError, match="exactly one"):
        b.backward(losses, shared_params=enc.parameters(), features=z)
    with pytest.raises(ValueError, match="nothing to balance"):
        b.backward(losses, shared_params=[])


def test_aggregate_checks_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        make("mgda").aggregate(torch.ones(2, 5))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "kw", "match"),
    [
        ("mgda", {"normalization": "max"}, "normalization"),
        ("cagrad", {"c": -1}, "c must be"),
        ("nash-mtl", {"update_weights_every": 0}, "update_weights_every"),
        ("aligned-mtl", {"scale_mode": "mean"}, "scale_mode"),
        ("aligned-mtl", {"pref": [1.0]}, "preference"),
        ("upgrad", {"reg": -1}, "reg"),
        ("upgrad", {"pref": [1.0]}, "preference"),
        ("gradvac", {"beta": 2}, "beta"),
        ("graddrop", {"leak": [0.5]}, "leak"),
        ("fairgrad", {"alpha": -1}, "alpha"),
    ],
)
def test_bad_hyper_parameters(name: str, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(name, **kw)
