"""CrossStitch: shapes, the paper's initialisation, the split and cut, balancing, round trips."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb
from taskbalance.nn import CrossStitch

from .contract import (
    balanced_step,
    check_cut,
    check_determinism,
    check_split,
    check_state_dict_round_trip,
    task_losses,
)

TASKS = {"a": 1, "b": 3, "c": 2}
D = 10


def make() -> CrossStitch:
    return CrossStitch(D, TASKS, hidden=(12, 8, 6), tower=(4,), stitch_after=(0, 1))


def count(params: object) -> int:
    return sum(p.numel() for p in params)  # type: ignore[attr-defined]


def test_shapes_keys_and_parameter_counts() -> None:
    m = make()
    out = m(torch.randn(5, D))
    assert {t: tuple(y.shape) for t, y in out.items()} == {"a": (5, 1), "b": (5, 3), "c": (5, 2)}
    assert m.features is not None and tuple(m.features.shape) == (5, 3, 8)
    # columns up to the last unit (layers 0, 1) and the first unit are shared
    assert count(m.shared_parameters()) == 3 * ((D * 12 + 12) + (12 * 8 + 8)) + 3 * 3
    # row of the last unit, the column layer after it (8 -> 6), the tower 6 -> 4 -> out
    assert count(m.task_parameters("b")) == 3 + (8 * 6 + 6) + (6 * 4 + 4) + (4 * 3 + 3)


def test_units_start_near_the_identity_as_in_the_paper() -> None:
    m = CrossStitch(D, {"a": 1, "b": 1}, hidden=(8, 8))
    for alpha in m.alphas():
        torch.testing.assert_close(alpha.detach(), torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    three = make().alphas()[0].detach()
    torch.testing.assert_close(three.sum(1), torch.ones(3))
    torch.testing.assert_close(three.diagonal(), torch.full((3,), 0.9))
    assert len(make().stitch_parameters()) == 1 + 3


def test_identity_units_give_independent_columns() -> None:
    m = make()
    with torch.no_grad():
        for p in m.stitches:
            p.copy_(torch.eye(3))
        for i, t in enumerate(TASKS):
            m.last_stitch[t].copy_(torch.eye(3)[i])
    out = m(torch.randn(4, D))
    b_column = [p for n, p in m.named_parameters() if n.startswith("columns.") and ".b." in n]
    grads = torch.autograd.grad(out["a"].sum(), b_column, allow_unused=True)
    assert all(g is None or not bool(g.any()) for g in grads)


def test_split_and_feature_cut() -> None:
    check_split(make(), torch.randn(6, D))
    check_cut(make(), torch.randn(6, D))
    # default: a unit after every layer, nothing task-specific in the columns
    m = CrossStitch(D, TASKS, hidden=(8, 8))
    check_split(m, torch.randn(6, D))
    check_cut(m, torch.randn(6, D))


@pytest.mark.parametrize("mode", ["params", "features"])
@pytest.mark.parametrize("method", ["mgda", "upgrad", "pcgrad"])
def test_balanced_step(method: str, mode: str) -> None:
    balancer = balanced_step(make(), torch.randn(16, D), method, mode)
    assert set(balancer.weights) == set(TASKS)


def test_training_with_a_balancer_lowers_the_losses() -> None:
    m = make()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    balancer = tb.create("mgda", tasks=list(TASKS))
    x = torch.randn(32, D)
    first = None
    for _ in range(30):
        opt.zero_grad()
        losses = task_losses(m(x))
        first = first or float(sum(losses.values()))
        balancer.backward(losses, features=m.features)
        opt.step()
    assert float(sum(task_losses(m(x)).values())) < 0.7 * first


def test_state_dict_round_trip_and_determinism() -> None:
    check_state_dict_round_trip(make, torch.randn(4, D))
    check_determinism(make, torch.randn(8, D))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="stitch_after"):
        CrossStitch(D, TASKS, hidden=(8, 8), stitch_after=())
    with pytest.raises(ValueError, match="stitch_after"):
        CrossStitch(D, TASKS, hidden=(8, 8), stitch_after=(2,))
    with pytest.raises(ValueError, match="hidden"):
        CrossStitch(D, TASKS, hidden=())
