"""Every method: a checkpoint taken mid-run and resumed gives bitwise the same run."""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

import taskbalance as tb

from .helpers import make

TASKS = ("a", "b", "c")


def build(method: str, seed: int) -> tuple[nn.Module, tb.Balancer, torch.optim.Optimizer]:
    torch.manual_seed(seed)  # a different seed for the resumed objects: state must come from the file
    model = nn.ModuleDict({"enc": nn.Linear(4, 8), **{t: nn.Linear(8, 1) for t in TASKS}})
    balancer = make(method, tasks=TASKS)
    opt = torch.optim.Adam([{"params": model.parameters(), "lr": 1e-2}, *balancer.param_groups(lr=1e-2)])
    return model, balancer, opt


def losses(model: nn.Module, step: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(16, 4, generator=g)
    y = torch.randn(16, 3, generator=g)
    z = torch.relu(model["enc"](x))
    out = {t: nn.functional.mse_loss(model[t](z).squeeze(-1), y[:, i]) for i, t in enumerate(TASKS)}
    if step % 4 == 3:
        del out["b"]  # an absent label now and then
    return out


def run(model: nn.Module, balancer: tb.Balancer, opt: torch.optim.Optimizer, steps: range) -> list[Any]:
    trace = []
    for step in steps:
        opt.zero_grad(set_to_none=True)
        balancer.backward(losses(model, step), shared_params=model["enc"].parameters())
        opt.step()
        with torch.no_grad():
            balancer.after_step(losses(model, step))
        if step % 3 == 2:
            balancer.epoch_end()
        trace.append({k: v.clone() for k, v in balancer.weights.items()})
    return trace


def test_resume_is_bitwise_identical(any_method: str) -> None:
    method = any_method
    model, balancer, opt = build(method, seed=0)
    full = run(model, balancer, opt, range(12))
    final = [p.detach().clone() for p in model.parameters()]

    model, balancer, opt = build(method, seed=0)
    run(model, balancer, opt, range(6))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "bal": balancer.state_dict()}, buffer)

    model, balancer, opt = build(method, seed=99)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    balancer.load_state_dict(state["bal"])
    assert {k: v for k, v in balancer.weights.items()}.keys() == full[5].keys()
    resumed = run(model, balancer, opt, range(6, 12))

    for a, b in zip(full[6:], resumed):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{method}: weight of {k} differs after resume"
    for p, q in zip(final, model.parameters()):
        assert torch.equal(p, q.detach())


def test_state_dict_round_trips_into_a_fresh_balancer(any_method: str) -> None:
    method = any_method
    _, balancer, _ = build(method, seed=0)
    model, _, opt = build(method, seed=0)
    run(model, balancer, opt, range(5))
    fresh = make(method, tasks=TASKS)
    fresh.load_state_dict(balancer.state_dict())
    a, b = balancer.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
    assert {k: float(v) for k, v in balancer.weights.items()} == {
        k: float(v) for k, v in fresh.weights.items()
    }
