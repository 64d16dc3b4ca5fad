"""Fixtures and settings of the test suite; the helpers the modules share are in tests/helpers.py."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from .helpers import DEVICE

# the device switch: TASKBALANCE_TEST_DEVICE=cuda puts every tensor created without a device there
if DEVICE.type != "cpu":
    torch.set_default_device(DEVICE)


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
