"""IMTL: IMTL-L's learned loss scales and IMTL-G's combination in one backward: s learns from
the gradient of Σ (e^sᵢ Lᵢ - sᵢ), the shared parameters get IMTL-G's combination of the
scaled losses' gradients, and the weights are reported per raw loss."""

from __future__ import annotations

import torch

from taskbalance.gradient.imtl import imtl_g_weights

from ..helpers import TASKS, authors_jacobian, encoder_and_heads, make, stacked_weights, task_losses


def test_imtl_learns_its_scales_through_the_same_backward() -> None:
    enc, heads, x = encoder_and_heads()
    b = make("imtl")
    losses = task_losses(heads, enc(x), torch.randn(8, 3))
    b.backward(losses, shared_params=enc.parameters())
    want = torch.stack([losses[t].detach() for t in TASKS]) - 1  # d/ds (e^s L - s) at s = 0
    torch.testing.assert_close(b.log_scales.grad, want)


def test_imtl_shared_gradient_is_imtl_g_of_the_scaled_losses() -> None:
    """With scales e^s away from 1: the objectives' gradients are e^sᵢ gᵢ, IMTL-G combines
    them (equal projections on the unit gradients), and the weight reported for the raw loss
    Lᵢ is wᵢ e^sᵢ, so the shared gradient is Σ (wᵢ e^sᵢ) gᵢ."""
    jac = authors_jacobian("C")  # K = 3 conflicting gradients of norms 2.31, 1.86, 0.39
    s = torch.tensor([0.3, -0.5, 1.0], dtype=torch.float64)
    b = make("imtl", init=0.0).double()
    with torch.no_grad():
        b.log_scales.copy_(s)
    theta = torch.zeros(jac.shape[1], dtype=torch.float64, requires_grad=True)
    b.backward([jac[i] @ theta + 1.0 for i in range(3)], shared_params=[theta])
    scaled = torch.exp(s)[:, None] * jac
    w = imtl_g_weights(scaled @ scaled.T)
    assert theta.grad is not None
    torch.testing.assert_close(theta.grad, w @ scaled, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(stacked_weights(b), w * torch.exp(s), rtol=1e-10, atol=1e-12)
    proj = (scaled @ theta.grad) / scaled.norm(dim=1)  # IMTL-G's defining property
    torch.testing.assert_close(proj, proj.mean().expand_as(proj), rtol=1e-9, atol=0)
    # s itself gets the ordinary gradient of Σ (e^sᵢ Lᵢ - sᵢ) at Lᵢ = 1: e^sᵢ - 1
    torch.testing.assert_close(b.log_scales.grad, torch.exp(s) - 1)
