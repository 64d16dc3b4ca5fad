"""MGDA: the min-norm point of the convex hull of the task gradients (a common descent
direction), with the MGDA-UB normalisations; against a brute-force minimum and TorchJD."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb
from taskbalance.solvers import min_norm_weights

from ..helpers import (
    ALL_JACOBIAN_CASES,
    PERMUTED_CASES,
    assert_agrees_with_torchjd,
    assert_ignores_task_order,
    brute_force_min_norm,
    case_tol,
    jacobian_cases,
)
from ..properties import aggregate


@pytest.mark.parametrize(("dtype", "case"), ALL_JACOBIAN_CASES)
def test_mgda_is_the_min_norm_point_and_a_common_descent_direction(dtype: torch.dtype, case: str) -> None:
    jac = jacobian_cases(dtype)[case]
    d, w = aggregate("mgda", jac)
    assert w.min() >= -case_tol(dtype) and float(w.sum()) == pytest.approx(1.0, abs=1e-5)
    scale = float((jac * jac).sum(1).max())
    best = brute_force_min_norm(jac.double().numpy())
    assert float(d.double().norm() ** 2) <= best + 1e-4 * scale + 1e-12
    assert float((jac @ d).min()) >= -1e-4 * scale


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_mgda_normalizations_take_the_min_norm_point_of_the_scaled_gradients(normalization: str) -> None:
    """apply_to="normalized": d is the min-norm point of the normalised gradients; the
    default, as in the MGDA-UB code (train_multi_task.py: scale[t] = sol[t], then
    scale[t] * loss_t), puts the same solution on the raw gradients."""
    jac = jacobian_cases(torch.float64)["scales-1e6"]
    losses = torch.tensor([0.5, 2.0, 3.0, 4.0], dtype=torch.float64)
    norms = jac.norm(dim=1)
    scale = {"l2": 1 / norms, "loss": 1 / losses, "loss+": 1 / (losses * norms)}[normalization]
    scaled = scale[:, None] * jac
    sol = min_norm_weights(scaled @ scaled.T)
    b = tb.create("mgda", tasks=4, normalization=normalization, apply_to="normalized")
    d, _ = b.aggregate(jac, losses)  # type: ignore[attr-defined]
    torch.testing.assert_close(d, sol @ scaled, rtol=1e-6, atol=1e-9)
    original = tb.create("mgda", tasks=4, normalization=normalization)
    d, w = original.aggregate(jac, losses)  # type: ignore[attr-defined]
    torch.testing.assert_close(w, sol, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(d, sol @ jac, rtol=1e-6, atol=1e-9)
    if normalization != "l2":
        with pytest.raises(tb.InvalidLossError, match="divides gradients by the loss"):
            b.backward(
                [torch.tensor(-1.0, requires_grad=True)] * 4,
                shared_params=[torch.ones(1, requires_grad=True)],
            )


@pytest.mark.parametrize("case", PERMUTED_CASES)
def test_mgda_ignores_task_order(case: str) -> None:
    assert_ignores_task_order("mgda", case)


def test_mgda_direction_agrees_with_torchjd() -> None:
    # 3000 Frank-Wolfe steps: worst cosine 1 - 2e-5 (100,000 steps: 1 - 1e-7, in a minute)
    assert_agrees_with_torchjd("mgda", {}, lambda agg, _k: agg.MGDA(epsilon=1e-9, max_iters=3000))
