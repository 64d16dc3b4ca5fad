"""The declared-state contract: ``Balancer.add_state`` and the ``Step`` a method reads and
writes it through (present tasks only, nothing during evaluation, checkpointed)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import taskbalance as tb
from taskbalance.base import Balancer, SeededGenerator, Step, TaskSpec


class Recorder(Balancer):
    """Per-task (K,), K × K and (2, K) state, a generator and a counter, all updated by
    every training call."""

    def __init__(self, tasks: TaskSpec, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        k = self.num_tasks
        self.add_state("total", torch.zeros(k))
        self.add_state("pairs", torch.zeros(k, k), task_dims=(0, 1))
        self.add_state("history", torch.zeros(2, k), task_dims=(1,))
        self.gen = self.add_state("gen", SeededGenerator(seed=5))
        self.add_state("calls", 0)

    def _combine(self, losses: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        v = losses.detach()
        step.add("total", v)
        step.add("pairs", v[:, None] * v[None, :])
        step.set("history", torch.stack([v, step.get("history")[0]]))
        if step.updating:
            self.calls += 1
        w = torch.ones_like(losses)
        return (w * losses).sum(), w


def _losses(present: list[int], k: int, scale: float) -> dict[str, torch.Tensor]:
    return {str(i): torch.tensor(scale * (i + 1), requires_grad=True) for i in present if i < k}


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 5),
    st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True), min_size=1, max_size=6),
)
def test_state_of_absent_tasks_is_untouched_and_present_tasks_match_a_reference(
    k: int, calls: list[list[int]]
) -> None:
    b = Recorder(k)
    total, pairs, history = torch.zeros(k), torch.zeros(k, k), torch.zeros(2, k)
    for t, present in enumerate(calls):
        present = sorted(i for i in present if i < k) or [0]
        b(_losses(present, k, t + 1.0))
        v = {i: (t + 1.0) * (i + 1) for i in present}
        for i in present:
            total[i] += v[i]
            history[1, i] = history[0, i]
            history[0, i] = v[i]
            for j in present:
                pairs[i, j] += v[i] * v[j]
    torch.testing.assert_close(b.total, total)
    torch.testing.assert_close(b.pairs, pairs)
    torch.testing.assert_close(b.history, history)
    assert b.calls == len(calls)


def test_evaluation_writes_no_state() -> None:
    b = Recorder(["a", "b"])
    with torch.no_grad():
        b({"a": torch.tensor(1.0), "b": torch.tensor(2.0)})
    assert b.total.tolist() == [0.0, 0.0] and b.calls == 0 and not b.pairs.any()


def test_declared_state_round_trips_through_state_dict() -> None:
    b = Recorder(3)
    b(_losses([0, 2], 3, 1.0))
    torch.rand(3, generator=b.gen.get(torch.device("cpu")))
    copy = Recorder(3)
    copy.load_state_dict(b.state_dict())
    for name in ("total", "pairs", "history"):
        assert torch.equal(getattr(copy, name), getattr(b, name))
    assert copy.calls == 1
    cpu = torch.device("cpu")
    assert torch.equal(torch.rand(4, generator=copy.gen.get(cpu)), torch.rand(4, generator=b.gen.get(cpu)))


def test_add_state_refuses_a_tensor_without_one_entry_per_task() -> None:
    b = tb.create("equal", tasks=3)
    with pytest.raises(
        ValueError, match=r"state 'x' has shape \(2,\); dimension 0 must have one entry per task \(3\)"
    ):
        b.add_state("x", torch.zeros(2))
    b.add_state("y", torch.zeros(3))
    with pytest.raises(ValueError, match="declared twice"):
        b.add_state("y", torch.zeros(3))


def test_a_method_without_its_abstract_method_cannot_be_built() -> None:
    class Incomplete(Balancer):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(2)  # type: ignore[abstract]


def test_no_method_indexes_its_state_by_hand() -> None:
    """The point of the contract: method files read and write per-task state through the
    step, never with their own index, ``_take`` or ``_updating()`` guard."""
    from pathlib import Path

    root = Path(tb.__file__).parent
    for path in [*root.glob("weighting/*.py"), *root.glob("gradient/*.py")]:
        text = path.read_text()
        for pattern in ("_take(", "_updating()", "[idx] =", "[idx] +=", "object.__setattr__"):
            assert pattern not in text, f"{path.name} uses {pattern}"
