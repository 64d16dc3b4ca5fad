"""The contract every :mod:`taskbalance.nn` architecture keeps, as reusable checks.

* the parameters split into shared and per-task sets that do not overlap and cover
  the model's trainable parameters (a frozen one, such as LTB's logits once its tree
  is fixed, is in neither), and mean what they say: every task's output depends on every shared
  parameter, and task t's parameters reach no other task's output;
* ``features``, where there is one, is a cut: every shared parameter reaches the
  outputs only through it, and no task parameter lies behind it;
* one balanced step in either mode gives every parameter a finite gradient;
* a state dict round trip reproduces the outputs, and two models built under the same
  seed compute the same outputs and gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

import taskbalance as tb
from taskbalance.nn import MultiTaskModule

Factory = Callable[[], MultiTaskModule]


def task_losses(out: Mapping[str, Tensor], seed: int = 0) -> dict[str, Tensor]:
    """A regression loss per task against fixed random targets."""
    g = torch.Generator().manual_seed(seed)
    return {t: (y - torch.randn(y.shape, generator=g)).pow(2).mean() for t, y in out.items()}


def _grads(out: Tensor, params: list[nn.Parameter]) -> list[Tensor | None]:
    return list(torch.autograd.grad(out, params, retain_graph=True, allow_unused=True))


def check_split(model: MultiTaskModule, x: Tensor) -> None:
    """Shared and task parameters partition the model and mean what they say."""
    shared = list(model.shared_parameters())
    per_task = {t: list(model.task_parameters(t)) for t in model.tasks}
    ids = [id(p) for p in shared] + [id(p) for ps in per_task.values() for p in ps]
    assert len(ids) == len(set(ids)), "a parameter is in two sets"
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(ids) == trainable, "a trainable parameter is in no set, or a frozen one in a set"
    assert shared, "no shared parameter"
    out = model(x)
    for t, y in out.items():
        for g in _grads(y.sum(), shared):
            assert g is not None and float(g.abs().sum()) > 0, (
                f"task {t} does not depend on a shared parameter"
            )
        for other, ps in per_task.items():
            grads = _grads(y.sum(), ps)
            if other == t:
                assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
            else:
                assert all(g is None or not bool(g.any()) for g in grads), f"{other}'s parameters reach {t}"


def check_cut(model: MultiTaskModule, x: Tensor) -> None:
    """``features`` separates the shared parameters from the task outputs."""
    out = model(x)
    feats = model.features
    assert feats is not None and feats.requires_grad
    shared = list(model.shared_parameters())
    for y in out.values():
        direct = _grads(y.sum(), shared)
        (g_feat,) = torch.autograd.grad(y.sum(), feats, retain_graph=True)
        via = torch.autograd.grad(feats, shared, g_feat, retain_graph=True, allow_unused=True)
        for d, v in zip(direct, via):
            assert d is not None and v is not None
            torch.testing.assert_close(d, v)
    for t in model.tasks:
        ps = list(model.task_parameters(t))
        assert all(g is None for g in _grads(feats.sum(), ps)), f"a parameter of {t} lies behind features"


def balanced_step(model: MultiTaskModule, x: Tensor, method: str, mode: str, **kw: Any) -> tb.Balancer:
    """One ``balancer.backward`` in ``mode``; every parameter gets a finite gradient."""
    balancer = tb.create(method, tasks=list(model.tasks), **kw)
    losses = task_losses(model(x))
    if mode == "params":
        balancer.backward(losses, shared_params=model.shared_parameters())
    else:
        assert model.features is not None
        balancer.backward(losses, features=model.features)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"{method}/{mode}: frozen {name} got a gradient"
            continue
        assert p.grad is not None, f"{method}/{mode}: {name} got no gradient"
        assert bool(torch.isfinite(p.grad).all()), f"{method}/{mode}: {name}"
    return balancer


def check_state_dict_round_trip(make: Factory, x: Tensor) -> None:
    """A second model (another seed) that loads the first's state dict computes the same."""
    torch.manual_seed(0)
    a = make()
    a(x)  # a training forward (batch-norm statistics move)
    torch.manual_seed(1)
    b = make()
    b.load_state_dict(a.state_dict())
    a.eval()
    b.eval()
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.keys() == yb.keys()
    for t in ya:
        torch.testing.assert_close(ya[t], yb[t], rtol=0, atol=0)


def check_determinism(make: Factory, x: Tensor) -> None:
    """The same seed builds the same model: same outputs, same balanced gradients."""
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = make()
        balanced_step(model, x, "mgda", "params")
        runs.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert runs[0].keys() == runs[1].keys()
    for n in runs[0]:
        torch.testing.assert_close(runs[0][n], runs[1][n], rtol=0, atol=0)
