"""IMTL-G: the combination of the task gradients, weights summing to 1, with equal projections
on every unit task gradient; against TorchJD's IMTLG."""

from __future__ import annotations

import pytest
import torch

from ..helpers import (
    FULL_RANK_CASES,
    PERMUTED_CASES,
    assert_agrees_with_torchjd,
    assert_ignores_task_order,
    jacobian_cases,
)
from ..properties import aggregate


@pytest.mark.parametrize(("dtype", "case"), FULL_RANK_CASES)
def test_imtl_g_gives_equal_projections_on_unit_gradients(dtype: torch.dtype, case: str) -> None:
    jac = jacobian_cases(dtype)[case].double()
    d, w = aggregate("imtl-g", jac)
    proj = (jac @ d) / jac.norm(dim=1)
    assert float(w.sum()) == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(proj, proj.mean().expand_as(proj), rtol=1e-5, atol=1e-8)


def test_imtl_g_rank_deficient_falls_back_to_least_squares() -> None:
    """3 gradients in a 2-d span: equal projections have no exact solution in general;
    the pseudo-inverse gives the least-squares weights, finite and summing to 1."""
    jac = jacobian_cases(torch.float64)["rank-deficient"]
    d, w = aggregate("imtl-g", jac)
    assert bool(torch.isfinite(d).all()) and float(w.sum()) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("case", PERMUTED_CASES)
def test_imtl_g_ignores_task_order(case: str) -> None:
    assert_ignores_task_order("imtl-g", case)


def test_imtl_g_direction_agrees_with_torchjd() -> None:
    assert_agrees_with_torchjd("imtl-g", {}, lambda agg, _k: agg.IMTLG())
