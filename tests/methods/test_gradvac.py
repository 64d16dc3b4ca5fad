"""GradVac: each pair of gradients pulled towards an EMA target similarity; its first step is
PCGrad's and the targets move by β; at two tasks against TorchJD's GradVac."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..helpers import assert_agrees_with_torchjd, jacobian_cases
from ..properties import aggregate


def test_gradvac_first_step_is_pcgrad_and_targets_move() -> None:
    jac = jacobian_cases(torch.float64)["two-conflicting"]
    b = tb.create("gradvac", tasks=2)
    d, _ = b.aggregate(jac)  # type: ignore[attr-defined]
    p, _ = aggregate("pcgrad", jac)
    torch.testing.assert_close(d, p, rtol=1e-6, atol=1e-8)
    cos = float(jac[0] @ jac[1] / (jac[0].norm() * jac[1].norm()))
    assert float(b.targets[0, 1]) == pytest.approx(0.5 * cos, rel=1e-6)


def test_gradvac_direction_agrees_with_torchjd() -> None:
    """Random orders: deterministic at 2 tasks only."""
    assert_agrees_with_torchjd("gradvac", {}, lambda agg, _k: agg.GradVac(), max_tasks=2)
