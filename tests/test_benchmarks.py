"""The benchmark scripts' calls into the library stay valid: each script's own code path
runs here on a tiny input (the scripts themselves take minutes and are not run by the
suite). A change of a private API the scripts use fails here, not in the next benchmark run."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from .helpers import benchmark_script

GRAMIAN = [m for m in tb.methods("gradient") if issubclass(tb.get_method(m), tb.gradient.GramianBalancer)]


@pytest.mark.parametrize("method", GRAMIAN)
def test_gradient_benchmark_times_the_method_solvers(method: str) -> None:
    gradient = benchmark_script("gradient")
    jac = torch.tensor([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    w = gradient.solver_weights(tb.create(method, tasks=3), jac @ jac.T)
    assert w.shape == (3,) and bool(torch.isfinite(w).all())
