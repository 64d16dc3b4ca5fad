"""Step hooks: weights, σ, per-task gradient norms and cosines, and the TensorBoard writer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import taskbalance as tb
from taskbalance.monitor import TensorBoardHook, gradient_stats, task_gradient_stats

from .helpers import make

TASKS = ("a", "b", "c")
#: methods that differentiate transformed objectives (log Lᵢ, wᵢLᵢ, e^{sᵢ}Lᵢ)
TRANSFORMED = {"db-mtl", "gradnorm", "imtl"}


def problem() -> tuple[nn.Module, nn.ModuleList, dict[str, Tensor]]:
    torch.manual_seed(0)
    enc, heads = nn.Linear(4, 6), nn.ModuleList(nn.Linear(6, 1) for _ in TASKS)
    x = torch.randn(10, 4)
    z = torch.tanh(enc(x))
    losses = {t: F.mse_loss(h(z).squeeze(1), x[:, i]) + 0.1 for i, (t, h) in enumerate(zip(TASKS, heads))}
    return enc, heads, losses


def test_every_method_reports_its_weights_to_the_hook(any_method: str) -> None:
    enc, _, losses = problem()
    balancer = make(any_method, tasks=TASKS)
    calls: list[dict[str, Tensor]] = []
    balancer.register_step_hook(lambda _b, stats: calls.append(stats))
    expected = task_gradient_stats(losses, enc.parameters())
    balancer.backward(losses, shared_params=enc.parameters())
    assert len(calls) == 1
    stats = calls[0]
    for t in TASKS:
        assert torch.equal(stats[f"weight/{t}"], balancer.weights[t])
        assert stats[f"weight/{t}"].grad_fn is None
    if balancer.kind == "gradient":  # from the Jacobian the method aggregated
        assert set(expected) <= set(stats)
        for key, value in expected.items():
            if key.startswith("grad_norm/") and any_method in TRANSFORMED:
                continue  # norms of the transformed objectives; their cosines are the same
            torch.testing.assert_close(stats[key], value, rtol=1e-5, atol=1e-6)
    sigma = getattr(balancer, "sigma", None)
    if sigma is not None:
        assert {k: float(v) for k, v in stats.items() if k.startswith("sigma/")} == {
            f"sigma/{t}": float(v) for t, v in sigma.items()
        }


def test_gradient_stats_against_torch() -> None:
    enc, _, losses = problem()
    stats = task_gradient_stats(losses, enc.parameters())
    rows = [
        torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(losses[t], list(enc.parameters()), retain_graph=True)]
        )
        for t in TASKS
    ]
    for i, a in enumerate(TASKS):
        assert math.isclose(float(stats[f"grad_norm/{a}"]), float(rows[i].norm()), rel_tol=1e-5)
        for k in range(i + 1, 3):
            cos = F.cosine_similarity(rows[i], rows[k], dim=0)
            assert math.isclose(
                float(stats[f"cosine/{a},{TASKS[k]}"]), float(cos), rel_tol=1e-4, abs_tol=1e-6
            )
    zero = gradient_stats(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), ["z", "x"])
    assert float(zero["cosine/z,x"]) == 0.0 and float(zero["grad_norm/z"]) == 0.0


def test_hooks_skip_skipped_steps_and_can_be_removed() -> None:
    balancer = tb.create("uw", tasks=["a", "b"], on_nonfinite="skip")
    calls: list[Any] = []
    handle = balancer.register_step_hook(lambda _b, s: calls.append(s))
    x = torch.ones(2, requires_grad=True)
    balancer({"a": x[0] * float("nan"), "b": x[1]})
    assert balancer.skipped and calls == []
    balancer({"a": x[0], "b": x[1]})
    assert len(calls) == 1
    handle.remove()
    balancer({"a": x[0], "b": x[1]})
    assert len(calls) == 1


def test_tensorboard_hook_writes_readable_events(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    enc, heads, _ = problem()
    balancer = tb.create("mgda", tasks=TASKS)
    writer = SummaryWriter(str(tmp_path))
    balancer.register_step_hook(TensorBoardHook(writer, every=2))
    opt = torch.optim.SGD([*enc.parameters(), *heads.parameters()], lr=0.1)
    logged = []
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    for _ in range(4):
        opt.zero_grad()
        z = torch.tanh(enc(x))  # the losses of this model (a new problem() would not train enc)
        losses = {t: F.mse_loss(h(z).squeeze(1), x[:, i]) + 0.1 for i, (t, h) in enumerate(zip(TASKS, heads))}
        balancer.backward(losses, shared_params=enc.parameters())
        logged.append({k: float(v) for k, v in balancer.weights.items()})
        opt.step()
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert "balancer/cosine/a,b" in events.Tags()["scalars"]
    scalars = events.Scalars("balancer/weight/a")
    assert [e.step for e in scalars] == [2, 4]
    assert [e.value for e in scalars] == pytest.approx([logged[1]["a"], logged[3]["a"]], rel=1e-6)
    with pytest.raises(ValueError, match="every"):
        TensorBoardHook(writer, every=0)
