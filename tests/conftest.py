"""Shared helpers of the test suite."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import taskbalance as tb

# hyper-parameters that make every method usable on a generic 3-task problem
METHOD_KWARGS: dict[str, dict[str, Any]] = {
    "static": {"weights": [1.0, 0.5, 2.0]},
    "stch": {"warmup_epochs": 1},
}


def make(name: str, tasks: Any = ("a", "b", "c"), **kw: Any) -> tb.Balancer:
    """Build ``name`` with the defaults above."""
    return tb.create(name, tasks=tasks, **{**METHOD_KWARGS.get(name, {}), **kw})


@pytest.fixture(params=tb.methods("loss"))
def method(request: pytest.FixtureRequest) -> str:
    """Every loss-based method."""
    return str(request.param)


@pytest.fixture(params=tb.methods("gradient"))
def gradient_method(request: pytest.FixtureRequest) -> str:
    """Every gradient-based method."""
    return str(request.param)


@pytest.fixture(params=tb.methods())
def any_method(request: pytest.FixtureRequest) -> str:
    """Every method."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
