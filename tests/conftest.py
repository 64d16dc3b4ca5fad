"""Shared helpers of the test suite."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

import taskbalance as tb

#: the device the suite runs on: ``TASKBALANCE_TEST_DEVICE=cuda`` makes every tensor a test
#: creates without a device land there (``benchmarks/gpu_check.py`` sets it); CPU by default
DEVICE = torch.device(os.environ.get("TASKBALANCE_TEST_DEVICE", "cpu"))
if DEVICE.type != "cpu":
    torch.set_default_device(DEVICE)

# hyper-parameters that make every method usable on a generic 3-task problem: each method's
# own Balancer.bench_kwargs, and distinct static weights, so that a test tells static weights
# from equal weighting
METHOD_KWARGS: dict[str, dict[str, Any]] = {
    name: dict(tb.get_method(name).bench_kwargs) for name in tb.methods()
} | {"static": {"weights": [1.0, 0.5, 2.0]}}


#: variables of a torch.distributed launch; a child process must not inherit stale ones
LAUNCH_VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a test's child process: this one, minus launch variables."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


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
