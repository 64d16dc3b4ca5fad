"""PCGrad: each conflicting gradient projected onto the normal plane of the others; at two
tasks (where its random order does not matter) against TorchJD's PCGrad."""

from __future__ import annotations

import pytest
import torch

from taskbalance.gradient.pcgrad import pcgrad_coefficients

from ..helpers import CASE_DTYPES, assert_agrees_with_torchjd, jacobian_cases
from ..properties import aggregate


@pytest.mark.parametrize("dtype", CASE_DTYPES)
def test_pcgrad_removes_the_negative_cosine_for_two_tasks(dtype: torch.dtype) -> None:
    jac = jacobian_cases(dtype)["two-conflicting"]
    assert float(jac[0] @ jac[1]) < 0
    coef = pcgrad_coefficients((jac @ jac.T).double(), torch.tensor([[1], [0]]))
    projected = coef.to(dtype) @ jac
    assert float(projected[0] @ jac[1]) == pytest.approx(0.0, abs=1e-4 * float(jac.norm() ** 2))
    assert float(projected[1] @ jac[0]) == pytest.approx(0.0, abs=1e-4 * float(jac.norm() ** 2))
    d, _ = aggregate("pcgrad", jac)
    torch.testing.assert_close(d, projected.sum(0), rtol=1e-4, atol=1e-5)


def test_pcgrad_direction_agrees_with_torchjd() -> None:
    """Random orders: deterministic at 2 tasks only."""
    assert_agrees_with_torchjd("pcgrad", {}, lambda agg, _k: agg.PCGrad(), max_tasks=2)
