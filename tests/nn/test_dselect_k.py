"""DSelectK: smooth-step, the binary-encoded selectors, exact k-sparsity after training,
the split and cut, balancing, round trips."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb
from taskbalance.nn import DSelectK, smooth_step

from .contract import (
    balanced_step,
    check_cut,
    check_determinism,
    check_split,
    check_state_dict_round_trip,
)

TASKS = {"a": 1, "b": 2}
D = 8


def make(routing: str = "example", num_experts: int = 5) -> DSelectK:
    return DSelectK(D, TASKS, num_experts=num_experts, k=2, expert_dims=(6,), tower=(4,), routing=routing)


def count(params: object) -> int:
    return sum(p.numel() for p in params)  # type: ignore[attr-defined]


def test_smooth_step_is_exact_outside_its_band_and_c1_inside() -> None:
    t = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    s = smooth_step(t, gamma=1.0)
    assert bool((s[t <= -0.5] == 0).all()) and bool((s[t >= 0.5] == 1).all())
    (g,) = torch.autograd.grad(s.sum(), t)
    assert bool((g[(t.abs() >= 0.5)] == 0).all())
    assert float(g.max()) == pytest.approx(1.5)  # 3/(2γ) at 0
    assert float(smooth_step(torch.tensor(0.5), gamma=2.0)) == pytest.approx(
        -2 / 8 * 0.5**3 + 3 / 4 * 0.5 + 0.5
    )


@pytest.mark.parametrize("routing", ["example", "task"])
def test_shapes_gates_and_parameter_counts(routing: str) -> None:
    e, k, nb = 5, 2, 3
    m = make(routing, e)
    out = m(torch.randn(7, D))
    assert {t: tuple(y.shape) for t, y in out.items()} == {"a": (7, 1), "b": (7, 2)}
    assert m.features is not None and tuple(m.features.shape) == (7, e, 6)
    assert count(m.shared_parameters()) == e * (D * 6 + 6)
    gate = (D + 1) * (k * nb + k) if routing == "example" else k * nb + k
    assert count(m.task_parameters("a")) == gate + (6 * 4 + 4) + (4 * 1 + 1)
    q, s = m.last_gates["a"], m.last_selectors["a"]
    assert q.shape == ((7, e) if routing == "example" else (e,))
    assert s.shape == ((7, k, e) if routing == "example" else (k, e))
    # each selector is a distribution over the 2^nb codes; E = 5 leaves 3 unreachable
    assert bool((q >= 0).all()) and bool((q.sum(-1) <= 1 + 1e-6).all())
    assert bool((s.sum(-1) < 1).all())


def test_saturated_selectors_pick_exactly_the_encoded_experts() -> None:
    m = make("task", num_experts=8)
    with torch.no_grad():
        # selector 0 encodes 5 = 101, selector 1 encodes 2 = 010; w gives them 0.25, 0.75
        m.gates["a"].z.copy_(torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]]))
        m.gates["a"].w.copy_(torch.log(torch.tensor([0.25, 0.75])))
    m(torch.randn(3, D))
    want = torch.zeros(8)
    want[5], want[2] = 0.25, 0.75
    torch.testing.assert_close(m.last_gates["a"], want)
    assert float(m.regularization()) == 0.0  # power of 2, no entropy term


def _train(routing: str, entropy_reg: float, steps: int) -> DSelectK:
    torch.manual_seed(0)
    m = DSelectK(
        6, TASKS, num_experts=8, k=2, expert_dims=(8,), tower=(), routing=routing, entropy_reg=entropy_reg
    )
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 3, generator=g)
    for _ in range(steps):
        x = torch.randn(64, 6, generator=g)
        y = torch.tanh(x @ w)
        out = m(x)
        loss = (out["a"].squeeze(-1) - y[:, 0]).pow(2).mean() + (out["b"] - y[:, 1:]).pow(2).mean()
        opt.zero_grad()
        (loss + m.regularization()).backward()
        opt.step()
    return m


def test_task_gates_become_exactly_k_sparse_in_training() -> None:
    m = _train("task", entropy_reg=0.1, steps=150)
    for t in TASKS:
        s, q = m.last_selectors[t], m.last_gates[t]
        # every selector saturated to a one-hot: the smooth-step reached exact 0 and 1
        assert bool(((s == 0) | (s == 1)).all()) and bool((s.sum(-1) == 1).all())
        assert 1 <= int((q > 0).sum()) <= 2 and float(q.sum()) == pytest.approx(1.0)
        assert int((q == 0).sum()) >= 6  # exact zeros, not small weights


def test_regularization_terms() -> None:
    m = DSelectK(D, TASKS, num_experts=4, k=2, expert_dims=(4,), entropy_reg=0.5)
    with pytest.raises(RuntimeError, match="forward"):
        m.regularization()
    m(torch.randn(3, D))
    s = torch.cat([v.flatten() for v in m.last_selectors.values()])
    want = -0.5 * (s * torch.log(s + 1e-6)).sum()
    torch.testing.assert_close(m.regularization(), want)
    odd = make("task", num_experts=5)
    odd(torch.randn(3, D))
    want_odd = sum((1 / v.sum(-1)).sum() for v in odd.last_selectors.values())
    torch.testing.assert_close(odd.regularization(), want_odd)
    # differentiable in the selector logits z (w only weighs the selectors)
    zs = [gate.z for gate in odd.gates.values()]
    grads = torch.autograd.grad(odd.regularization(), zs)
    assert all(bool(torch.isfinite(g).all()) and bool(g.any()) for g in grads)


@pytest.mark.parametrize("routing", ["example", "task"])
def test_split_and_feature_cut(routing: str) -> None:
    check_split(make(routing), torch.randn(6, D))
    check_cut(make(routing), torch.randn(6, D))


@pytest.mark.parametrize("mode", ["params", "features"])
@pytest.mark.parametrize("method", ["mgda", "upgrad", "pcgrad"])
def test_balanced_step(method: str, mode: str) -> None:
    balancer = balanced_step(make(), torch.randn(16, D), method, mode)
    assert set(balancer.weights) == set(TASKS)


def test_regularization_next_to_a_balancer() -> None:
    m = make(num_experts=5)
    x = torch.randn(16, D)
    out = m(x)
    m.regularization().backward(retain_graph=True)
    losses = {t: y.pow(2).mean() for t, y in out.items()}
    tb.create("mgda", tasks=list(TASKS)).backward(losses, features=m.features)
    assert all(p.grad is not None for p in m.parameters())


def test_state_dict_round_trip_and_determinism() -> None:
    for factory in (make, lambda: make("task")):
        check_state_dict_round_trip(factory, torch.randn(4, D))
        check_determinism(factory, torch.randn(8, D))
    assert not any("codes" in k for k in make().state_dict())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="routing"):
        DSelectK(D, TASKS, routing="batch")
    with pytest.raises(ValueError, match="k <= num_experts"):
        DSelectK(D, TASKS, num_experts=3, k=4)
    with pytest.raises(ValueError, match="gamma"):
        DSelectK(D, TASKS, gamma=0.0)
