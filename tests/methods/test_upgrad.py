"""UPGrad: each task gradient projected onto the dual cone {x: Gx >= 0} of all of them, the
projections averaged: a non-conflicting direction; against TorchJD's UPGrad."""

from __future__ import annotations

import pytest
import torch

from ..helpers import (
    ALL_JACOBIAN_CASES,
    PERMUTED_CASES,
    assert_agrees_with_torchjd,
    assert_ignores_task_order,
    jacobian_cases,
)
from ..properties import aggregate


@pytest.mark.parametrize(("dtype", "case"), ALL_JACOBIAN_CASES)
def test_upgrad_is_non_conflicting(dtype: torch.dtype, case: str) -> None:
    jac = jacobian_cases(dtype)[case]
    d, _ = aggregate("upgrad", jac, reg=0.0)
    scale = float((jac * jac).sum(1).max())
    assert float((jac.double() @ d.double()).min()) >= -1e-4 * scale


@pytest.mark.parametrize("case", PERMUTED_CASES)
def test_upgrad_ignores_task_order(case: str) -> None:
    assert_ignores_task_order("upgrad", case)


def test_upgrad_direction_agrees_with_torchjd() -> None:
    assert_agrees_with_torchjd("upgrad", {}, lambda agg, _k: agg.UPGrad())
