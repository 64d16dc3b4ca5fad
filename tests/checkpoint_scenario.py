"""The scenario behind ``tests/fixtures/checkpoints-0.1.0.pt``: every method trained a few
steps on a fixed 3-task problem (an absent task, an epoch end and FAMO's post-step update
included), then saved. ``python -m tests.checkpoint_scenario`` rewrote the file with the
0.1.0 code; the test loads it with today's code and checks the next step."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import torch

import taskbalance as tb

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoints-0.1.0.pt"
TASKS = ("a", "b", "c")
#: the constructor arguments the fixture was written with
KWARGS: dict[str, dict[str, Any]] = {
    "static": {"weights": [1.0, 0.5, 2.0]},
    "stch": {"warmup_epochs": 1},
}


def build(name: str) -> tb.Balancer:
    """The balancer of the scenario, freshly built (seeded where the method is random)."""
    cls = tb.get_method(name)
    seed = {"seed": 3} if "seed" in inspect.signature(cls).parameters else {}
    return tb.create(name, tasks=TASKS, **seed, **KWARGS.get(name, {}))


def losses(step: int, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Three positive losses of the shared parameters ``w`` at ``step`` (task "c" absent at
    step 2)."""
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(3, 4, generator=g)
    out = {n: ((x[i] * w).sum() - i) ** 2 + 0.1 * (step + 1) for i, n in enumerate(TASKS)}
    if step == 2:
        del out["c"]
    return out


def step(b: tb.Balancer, w: torch.Tensor, i: int) -> torch.Tensor:
    """One training step of the scenario; returns the weights of the step."""
    given = losses(i, w)
    w.grad = None
    b.backward(given, shared_params=[w])
    with torch.no_grad():
        w.sub_(0.05 * w.grad)  # type: ignore[operator]
        for p in b.parameters():
            if p.grad is not None:
                p.sub_(0.05 * p.grad)
                p.grad = None
    if b.name == "famo":
        with torch.no_grad():
            b.after_step(losses(i, w) if i != 2 else {k: v for k, v in losses(i, w).items() if k != "c"})
    if i % 2 == 1:
        b.epoch_end()
    return torch.stack([b.weights[n] for n in given]).detach().clone()


def start() -> torch.Tensor:
    return torch.tensor([0.3, -0.2, 0.5, 0.1], requires_grad=True)


def write() -> None:
    """Run the scenario with the installed code and save what the test checks."""
    torch.manual_seed(0)
    out: dict[str, Any] = {}
    for name in tb.methods():
        b, w = build(name), start()
        for i in range(5):
            step(b, w, i)
        out[name] = {
            "state": copy.deepcopy(b.state_dict()),
            "w": w.detach().clone(),
            "next": step(b, w, 5),
        }
    FIXTURE.parent.mkdir(exist_ok=True)
    torch.save(out, FIXTURE)


if __name__ == "__main__":
    write()
