"""An absent task's parameters do not move, with the optimisers people use (issue 13, item 2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import taskbalance as tb

OPTIMISERS: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.1),
    "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
}
PER_TASK = ["uw", "uw-simplified", "uw-revised", "imtl-l", "gradnorm", "imtl"]


def own(b: tb.Balancer) -> nn.Parameter:
    (param,) = b._per_task_parameters()
    return param


@pytest.mark.parametrize("optimiser", sorted(OPTIMISERS))
@pytest.mark.parametrize("name", PER_TASK)
def test_absent_task_parameters_stay_put(name: str, optimiser: str) -> None:
    b = tb.create(name, tasks=["L", "R"])
    w = nn.Parameter(torch.tensor([1.0, -0.5]))
    opt = OPTIMISERS[optimiser]([w, *b.parameters()])

    def step(tasks: tuple[str, ...]) -> None:
        opt.zero_grad()
        losses = {"L": (w[0] - 2) ** 2 + 1.0, "R": (w[1] + 3) ** 2 + 0.5}
        b.backward({t: losses[t] for t in tasks}, shared_params=[w])
        opt.step()

    for _ in range(3):  # both present: momentum builds up in both entries
        step(("L", "R"))
    before = own(b).detach().clone()
    for _ in range(5):  # R absent: its entry must not move, L's must
        step(("L",))
    after = own(b).detach()
    assert float(after[1]) == float(before[1]), f"{name}/{optimiser}: the absent task's parameter moved"
    assert float(after[0]) != float(before[0])
    step(("L", "R"))  # back: R moves again
    assert float(own(b)[1]) != float(before[1])


def test_a_task_present_in_one_accumulated_micro_batch_moves() -> None:
    b = tb.create("uw", tasks=["L", "R"], init=0.0)  # away from the optimum: both have gradients
    opt = torch.optim.Adam(b.parameters(), lr=0.1)
    x = torch.tensor([2.0, 3.0], requires_grad=True)
    opt.zero_grad()
    b({"L": x[0] * 1, "R": x[1] * 1}).backward()
    b({"L": x[0] * 1}).backward()  # R absent from the second micro-batch only
    before = own(b).detach().clone()
    opt.step()
    assert bool((own(b).detach() != before).all())


def test_a_step_of_another_optimiser_leaves_the_tracking_alone() -> None:
    b = tb.create("uw", tasks=["L", "R"])
    model = nn.Linear(1, 1)
    opt_model, opt_b = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.Adam(b.parameters(), lr=0.1)
    for _ in range(2):
        b(
            {"L": model(torch.ones(1, 1)).sum() ** 2 + 1, "R": torch.tensor(2.0, requires_grad=True)}
        ).backward()
        opt_model.step()
        opt_b.step()
    before = own(b).detach().clone()
    opt_model.zero_grad()
    opt_b.zero_grad()
    b({"L": model(torch.ones(1, 1)).sum() ** 2 + 1}).backward()
    opt_model.step()  # does not hold the balancer's parameters
    opt_b.step()
    assert float(own(b)[1]) == float(before[1])
