"""Revised uncertainty weighting (Liebel & Körner): Σ Lᵢ / (2σᵢ²) + log(1 + σᵢ²); its optimum
σ² = (L + √(L² + 8L)) / 4, the regulariser's gradient, σ at any loss scale, σ as its init
and in checkpoints of the former parametrisation, and a loss of exactly 0 (issue 12)."""

from __future__ import annotations

import math

import pytest
import torch

import taskbalance as tb

from ..helpers import (
    FIXED_LOSSES,
    LOSS_SCALES,
    assert_gradient_away_from_the_optimum,
    minimise,
    revised_optimum,
    track,
)


def test_uw_revised_closed_form_optimum() -> None:
    b = tb.create("uw-revised", tasks=3)
    minimise(b, list(FIXED_LOSSES))
    got = torch.exp(b.log_vars).detach()
    want = torch.tensor([revised_optimum(v) for v in FIXED_LOSSES], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-6)


def test_uw_revised_every_parameter_has_a_gradient_away_from_the_optimum() -> None:
    """The test that catches the two-line bug: each s must feel its regulariser."""
    assert_gradient_away_from_the_optimum("uw-revised")


@pytest.mark.parametrize("scale", LOSS_SCALES)
def test_uw_revised_sigma_reaches_its_optimum_at_any_loss_scale(scale: float) -> None:
    """Issue 13: with the default init and the documented optimiser settings, σ² is within
    10% of the optimum (0.1 in log σ²) after 300 steps, from 1e-4 to 1e4."""
    assert track("uw-revised", scale) < 0.1


def test_uw_revised_needs_nonzero_init() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        tb.create("uw-revised", tasks=2, init=0.0)


def test_uw_revised_init_is_sigma_and_old_checkpoints_load() -> None:
    r = tb.create("uw-revised", tasks=2, init=[1.0, 2.0])
    torch.testing.assert_close(torch.stack(list(r.sigma.values())), torch.tensor([1.0, 2.0]))
    # a checkpoint of the former parametrisation, σ itself under "sigma_param"
    state = r.state_dict()
    state["sigma_param"] = torch.tensor([3.0, 0.5])
    del state["log_vars"]
    fresh = tb.create("uw-revised", tasks=2)
    fresh.load_state_dict(state)
    torch.testing.assert_close(torch.stack(list(fresh.sigma.values())), torch.tensor([3.0, 0.5]))


def test_uw_revised_accepts_zero_but_not_negative() -> None:
    b = tb.create("uw-revised", tasks=["a"])
    b({"a": torch.tensor(0.0, requires_grad=True)}).backward()
    with pytest.raises(tb.InvalidLossError, match=r"task 'a' is -1, .*>= 0"):
        b({"a": torch.tensor(-1.0, requires_grad=True)})


@pytest.mark.parametrize("value", [0.0, 1e-30])
def test_uw_revised_stays_finite_on_a_vanishing_loss(value: float) -> None:
    """Issue 12, item 7."""
    b = tb.create("uw-revised", tasks=1)
    opt = torch.optim.Adam(b.param_groups(lr=0.1))
    for _ in range(800):
        opt.zero_grad()
        total = b([torch.tensor(value, requires_grad=True)])
        total.backward()
        opt.step()
        assert math.isfinite(float(total)) and bool(torch.isfinite(b.log_vars.grad).all())  # type: ignore[union-attr]
