"""IMTL: IMTL-L's learned loss scales and IMTL-G's combination in one backward: s learns from
the gradient of Σ (e^sᵢ Lᵢ - sᵢ)."""

from __future__ import annotations

import torch

from ..helpers import TASKS, encoder_and_heads, make, task_losses


def test_imtl_learns_its_scales_through_the_same_backward() -> None:
    enc, heads, x = encoder_and_heads()
    b = make("imtl")
    losses = task_losses(heads, enc(x), torch.randn(8, 3))
    b.backward(losses, shared_params=enc.parameters())
    want = torch.stack([losses[t].detach() for t in TASKS]) - 1  # d/ds (e^s L - s) at s = 0
    torch.testing.assert_close(b.log_scales.grad, want)
