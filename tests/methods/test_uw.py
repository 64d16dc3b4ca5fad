"""Uncertainty weighting (Kendall et al.): ½e^(-s)L + ½s per regression task, e^(-s)L + ½s per
classification task, s = log σ²; its closed-form optima σ² = L and 2L, the regulariser's
gradient, σ at any loss scale, recovering a known noise variance, and the message for a
negative loss. What it shares with the other learned-scale methods (init="auto", the stall
warning) is in tests/test_uncertainty.py."""

from __future__ import annotations

import math

import pytest
import torch

import taskbalance as tb
from taskbalance.bench.noisy import make_noisy_tasks, train_noisy

from ..helpers import (
    FIXED_LOSSES,
    LOSS_SCALES,
    assert_gradient_away_from_the_optimum,
    minimise,
    revised_optimum,
    track,
)


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (["r0", "r1", "r2"], lambda L: L),
        ({"c0": "classification", "c1": "classification", "c2": "classification"}, lambda L: 2 * L),
    ],
)
def test_uw_closed_form_optimum(tasks, expected) -> None:  # type: ignore[no-untyped-def]
    b = tb.create("uw", tasks=tasks)
    minimise(b, list(FIXED_LOSSES))
    got = torch.exp(b.log_vars).detach()
    want = torch.tensor([expected(v) for v in FIXED_LOSSES], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-6)


def test_uw_mixed_task_types_get_their_own_optimum() -> None:
    b = tb.create("uw", tasks={"depth": "regression", "seg": "classification"})
    minimise(b, [3.0, 3.0])
    torch.testing.assert_close(
        torch.exp(b.log_vars.detach()), torch.tensor([3.0, 6.0], dtype=torch.float64), rtol=1e-3, atol=0
    )
    sigma = b.sigma
    assert math.isclose(float(sigma["seg"]) ** 2, 6.0, rel_tol=1e-3)


def test_uw_every_parameter_has_a_gradient_away_from_the_optimum() -> None:
    """The test that catches the two-line bug: each s must feel its regulariser."""
    assert_gradient_away_from_the_optimum("uw")


@pytest.mark.parametrize("scale", LOSS_SCALES)
def test_uw_sigma_reaches_its_optimum_at_any_loss_scale(scale: float) -> None:
    """Issue 13: with the default init and the documented optimiser settings, σ² is within
    10% of the optimum (0.1 in log σ²) after 300 steps, from 1e-4 to 1e4."""
    assert track("uw", scale) < 0.1


def test_uw_known_noise_is_recovered() -> None:
    """Two regression tasks with noise std 1 and 10, plus a classifier: σ² -> noise variance.
    uw-revised, trained on the same data, is the contrast: it learns its own optimum of the
    training MSE, not the noise variance."""
    data = make_noisy_tasks((1.0, 10.0), label_noise=0.1, n_train=8192, n_test=4096, seed=0)
    uw = train_noisy("uw", data, epochs=30, seed=0)
    for std, task in zip((1.0, 10.0), ("reg_1", "reg_10")):
        var = std * std
        assert abs(uw.learned_sigma[task] ** 2 - var) / var < 0.10, (task, uw.learned_sigma)
        assert abs(uw.test_residual_std[task] ** 2 - var) / var < 0.10, (task, uw.test_residual_std)
    assert uw.test_accuracy is not None and uw.test_accuracy > 0.8
    # uw-revised learns its own optimum of the training MSE, not the noise variance
    rev = train_noisy("uw-revised", data, epochs=30, seed=0)
    for task in ("reg_1", "reg_10"):
        mse = uw.test_residual_std[task] ** 2
        assert abs(rev.learned_sigma[task] ** 2 - revised_optimum(mse)) / revised_optimum(mse) < 0.10
    assert rev.learned_sigma["reg_10"] ** 2 < 0.6 * 100


def test_uw_negative_loss_message_points_to_revised_or_shift() -> None:
    b = tb.create("uw", tasks=["a"])
    with pytest.raises(tb.InvalidLossError, match=r"unbounded below.*uw-revised") as info:
        b({"a": torch.tensor(-0.5, requires_grad=True)})
    assert "Shift the loss" in str(info.value)
