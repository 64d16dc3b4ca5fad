"""Checkpoints written by release 0.1.0 load in today's code and resume exactly: the
fixture holds every 0.1.0 method's state after five steps of a fixed scenario and the
weights of its sixth step (``tests/checkpoint_scenario.py``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import taskbalance as tb

from .checkpoint_scenario import FIXTURE, build, step

SAVED: dict[str, Any] = torch.load(FIXTURE, weights_only=True)


def test_the_fixture_covers_every_method_of_the_release() -> None:
    assert len(SAVED) == 25
    assert set(SAVED) <= set(tb.methods())


@pytest.mark.parametrize("name", sorted(SAVED))
def test_a_release_checkpoint_loads_and_resumes_exactly(name: str) -> None:
    saved = SAVED[name]
    b = build(name)
    b.load_state_dict(saved["state"])
    w = saved["w"].clone().requires_grad_(True)
    torch.testing.assert_close(step(b, w, 5), saved["next"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(SAVED))
def test_a_release_checkpoint_round_trips_through_todays_state_dict(name: str) -> None:
    b = build(name)
    b.load_state_dict(SAVED[name]["state"])
    again = build(name)
    again.load_state_dict(b.state_dict())
    w = SAVED[name]["w"].clone().requires_grad_(True)
    torch.testing.assert_close(step(again, w, 5), SAVED[name]["next"], rtol=1e-6, atol=1e-7)
