"""LTB: Gumbel-softmax sampling, the temperature schedule, the split and cut while searching
and after fixing the tree, training, exact resume, determinism."""

from __future__ import annotations

import math

import pytest
import torch

import taskbalance as tb
from taskbalance.nn import LTB, gumbel_softmax

from .contract import (
    balanced_step,
    check_cut,
    check_determinism,
    check_split,
    check_state_dict_round_trip,
)

TASKS = {"a": 1, "b": 2, "c": 1}
D = 6


def make(hard: bool = True, **kw: object) -> LTB:
    return LTB(D, TASKS, hidden=(8, 8, 6), hard=hard, **kw)  # type: ignore[arg-type]


def count(params: object) -> int:
    return sum(p.numel() for p in params)  # type: ignore[attr-defined]


# a trunk of two blocks shared by all, then a last-layer block per task
TREE = ([[0, 0, 0], [0, 0, 0]], {"a": 0, "b": 1, "c": 2})
# one trunk block at layer 0; a and b share a block at layer 1, c branches off there
PARTIAL = ([[0, 0, 0], [0, 0, 2]], {"a": 0, "b": 1, "c": 2})


def fixed(hard: bool = True, tree: tuple[list[list[int]], dict[str, int]] = TREE) -> LTB:
    m = make(hard)
    m.fix_branching(*tree)
    return m


def test_shapes_weights_and_parameter_counts() -> None:
    m = make()
    out = m(torch.randn(5, D))
    assert {t: tuple(y.shape) for t, y in out.items()} == {"a": (5, 1), "b": (5, 2), "c": (5, 1)}
    assert m.features is not None and tuple(m.features.shape) == (5, 3, 6)
    assert [tuple(w.shape) for w in m.last_weights] == [(3, 3), (3, 3), (3, 3)]
    for w in m.last_weights:  # hard samples: one parent per child
        assert bool(((w == 0) | (w == 1)).all()) and bool((w.sum(-1) == 1).all())
    blocks = 3 * (D * 8 + 8) + 3 * (8 * 8 + 8) + 3 * (8 * 6 + 6)
    assert count(m.shared_parameters()) == blocks + 2 * 9  # the inner logits are shared
    assert count(m.task_parameters("b")) == 3 + (6 * 2 + 2)  # tower logits, tower
    narrow = LTB(D, TASKS, hidden=(8, 4), branches=(1, 2))
    assert [tuple(p.shape) for p in narrow.branch_logits] == [(2, 1)]
    assert tuple(narrow.tower_logits["a"].shape) == (2,)


def test_gumbel_softmax_is_reproducible_and_samples_the_softmax() -> None:
    logits = torch.log(torch.tensor([0.2, 0.3, 0.5])).expand(4000, 3)
    a = gumbel_softmax(logits, 0.7, generator=torch.Generator().manual_seed(5))
    b = gumbel_softmax(logits, 0.7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, gumbel_softmax(logits, 0.7, generator=torch.Generator().manual_seed(6)))
    # the argmax of the perturbed logits does not depend on τ: frequencies are softmax(logits)
    torch.testing.assert_close(a.mean(0), torch.tensor([0.2, 0.3, 0.5]), atol=0.03, rtol=0)
    soft = gumbel_softmax(logits[:3], 0.7, hard=False, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(soft.sum(-1), torch.ones(3))
    assert torch.equal(a[:3], torch.zeros(3, 3).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0))
    # straight-through: one-hot in value, the soft sample's gradient
    lg = torch.zeros(3, requires_grad=True)
    y = gumbel_softmax(lg, 1.0, generator=torch.Generator().manual_seed(0))
    (g,) = torch.autograd.grad((y * torch.tensor([1.0, 2.0, 3.0])).sum(), lg)
    assert bool(g.ne(0).all())
    # a low temperature makes the soft sample nearly one-hot
    cold = gumbel_softmax(logits[:100], 0.01, hard=False, generator=torch.Generator().manual_seed(1))
    assert float(cold.max(-1).values.mean()) > 0.99


def test_forward_with_a_generator_is_reproducible() -> None:
    m, x = make(), torch.randn(4, D)
    runs = [m(x, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    trees = []
    for seed in (1, 1, 2):
        m(x, generator=torch.Generator().manual_seed(seed))
        trees.append(torch.stack(m.last_weights))
    for t in TASKS:
        assert torch.equal(runs[0][t], runs[1][t])
    assert torch.equal(trees[0], trees[1]) and not torch.equal(trees[0], trees[2])


def test_temperature_schedule_warmup_and_eval() -> None:
    m = make(temperature=4.0)
    assert m.temperature == 4.0 and int(m.epoch) == 0
    for e in range(1, 6):
        m.epoch_end()
        assert int(m.epoch) == e and m.temperature == pytest.approx(4.0 / math.sqrt(e + 1))
    # LibMTL's τ = epochs/20/√(epoch+1) is temperature=epochs/20
    libmtl = make(temperature=100 / 20)
    for _ in range(49):
        libmtl.epoch_end()
    assert libmtl.temperature == pytest.approx(100 / 20 / math.sqrt(49 + 1))
    m.set_temperature(0.3)
    assert m.temperature == pytest.approx(0.3)
    with pytest.raises(ValueError, match="positive"):
        m.set_temperature(0.0)
    # warm-up: every child reads the mean of its parents, no sampling
    w = make(warmup_epochs=2)
    w(torch.randn(2, D))
    assert all(torch.equal(v, torch.full((3, 3), 1 / 3)) for v in w.last_weights)
    w.epoch_end()
    w.epoch_end()
    w(torch.randn(2, D))
    assert all(bool(((v == 0) | (v == 1)).all()) for v in w.last_weights)
    # eval: no noise, the argmax tree (hard) or softmax(ℓ/τ) (soft)
    ev = make().eval()
    with torch.no_grad():
        ev.branch_logits[0][:, 2] = 1.0
    ev(torch.randn(2, D))
    assert torch.equal(ev.last_weights[0], torch.zeros(3, 3).index_fill_(1, torch.tensor([2]), 1.0))
    s = make(hard=False).eval()
    with torch.no_grad():
        s.branch_logits[0][0] = torch.tensor([0.0, 1.0, 2.0])
    s(torch.randn(2, D))
    torch.testing.assert_close(s.last_weights[0][0], torch.softmax(torch.tensor([0.0, 1, 2]) / 5.0, -1))


def test_split_and_cut_while_searching() -> None:
    # soft relaxation: every task's output depends on every block and inner logit
    check_split(make(hard=False), torch.randn(6, D))
    check_cut(make(hard=False), torch.randn(6, D))
    check_cut(make(), torch.randn(6, D))
    # hard samples: the blocks on a task's sampled path reach it, no task parameter leaks
    m = make()
    torch.manual_seed(0)
    out = m(torch.randn(6, D))
    shared = list(m.shared_parameters())
    for i, (t, y) in enumerate(out.items()):
        grads = torch.autograd.grad(y.sum(), shared, retain_graph=True, allow_unused=True)
        assert any(g is not None and bool(g.any()) for g in grads)
        last = int(m.last_weights[-1][i].argmax())
        block = list(m.block(2, last).parameters())
        assert all(g.any() for g in torch.autograd.grad(y.sum(), block, retain_graph=True))
        for other in TASKS:
            if other != t:
                gs = torch.autograd.grad(
                    y.sum(), list(m.task_parameters(other)), retain_graph=True, allow_unused=True
                )
                assert all(g is None or not bool(g.any()) for g in gs)


def test_fix_branching_takes_the_argmax_and_runs_that_tree() -> None:
    m = make()
    with torch.no_grad():
        m.branch_logits[0].copy_(torch.tensor([[0.0, 1, 0], [0, 1, 0], [2, 0, 0]]))
        m.branch_logits[1].copy_(torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 3, 0]]))
        for t, p in {"a": 2, "b": 2, "c": 0}.items():
            m.tower_logits[t][p] = 1.0
    assert m.branching() == ([[1, 1, 0], [0, 2, 1]], {"a": 2, "b": 2, "c": 0})
    m.fix_branching()
    assert m.is_fixed and m.branching() == ([[1, 1, 0], [0, 2, 1]], {"a": 2, "b": 2, "c": 0})
    owners = m.block_tasks()
    assert owners == [[set(), {"a", "b", "c"}, set()], [{"c"}, {"a", "b"}, set()], [{"c"}, set(), {"a", "b"}]]
    x = torch.randn(4, D)
    out = m(x)
    ab = m.block(2, 2)(m.block(1, 1)(m.block(0, 1)(x)))
    torch.testing.assert_close(out["a"], m.towers["a"](ab))
    torch.testing.assert_close(out["b"], m.towers["b"](ab))
    torch.testing.assert_close(out["c"], m.towers["c"](m.block(2, 0)(m.block(1, 0)(m.block(0, 1)(x)))))
    # logits and unused blocks are frozen; the split follows the tree
    assert not any(p.requires_grad for p in [*m.branch_logits, *m.tower_logits.values()])
    unused = (m.block(0, 0), m.block(0, 2), m.block(1, 2), m.block(2, 1))
    assert not any(p.requires_grad for b in unused for p in b.parameters())
    shared = {id(p) for b in (m.block(0, 1), m.block(1, 1), m.block(2, 2)) for p in b.parameters()}
    assert {id(p) for p in m.shared_parameters()} == shared
    own_c = {id(p) for b in (m.block(1, 0), m.block(2, 0), m.towers["c"]) for p in b.parameters()}
    assert {id(p) for p in m.task_parameters("c")} == own_c
    # the cut: the trunk's first block (read by c's branch) and a and b's last block (read by their towers)
    assert m.features is not None and tuple(m.features.shape) == (4, 8 + 6)
    with pytest.raises(ValueError, match="need 3 parents"):
        make().fix_branching([[0, 0], [0, 0, 0]], TREE[1])
    with pytest.raises(ValueError, match="towers"):
        make().fix_branching(TREE[0], {"a": 0, "b": 0, "c": 3})


def test_split_and_cut_after_fixing() -> None:
    check_split(fixed(), torch.randn(6, D))
    check_cut(fixed(), torch.randn(6, D))
    m = fixed()
    m(torch.randn(3, D))
    assert m.features is not None and tuple(m.features.shape) == (3, 8)  # the trunk's last block
    # a block shared by two of three tasks: shared, and the third task gets exact zeros on it
    check_cut(fixed(tree=PARTIAL), torch.randn(6, D))
    p = fixed(tree=PARTIAL)
    out = p(torch.randn(6, D))
    owners = p.block_tasks()
    assert owners[:2] == [[{"a", "b", "c"}, set(), set()], [{"a", "b"}, set(), {"c"}]]
    for t, y in out.items():
        for lv, owned in enumerate(owners):
            for i, tasks in enumerate(owned):
                if not tasks:
                    continue
                grads = torch.autograd.grad(
                    y.sum(), list(p.block(lv, i).parameters()), retain_graph=True, allow_unused=True
                )
                reached = any(g is not None and bool(g.any()) for g in grads)
                assert reached == (t in tasks), (t, lv, i)
    shared = {id(q) for q in p.shared_parameters()}
    assert shared == {id(q) for lv, i in ((0, 0), (1, 0)) for q in p.block(lv, i).parameters()}
    # a tree that shares nothing has no shared parameters and no cut
    apart = make()
    apart.fix_branching([[0, 1, 2], [0, 1, 2]], {"a": 0, "b": 1, "c": 2})
    apart(torch.randn(3, D))
    assert not list(apart.shared_parameters()) and apart.features is None
    with pytest.raises(ValueError, match="no shared representation"):
        apart.feature_cut()
    # one trunk for all: hard sharing, the cut is the last block
    trunk = make()
    trunk.fix_branching([[0, 0, 0], [0, 0, 0]], dict.fromkeys(TASKS, 0))
    trunk(torch.randn(3, D))
    assert trunk.features is not None and tuple(trunk.features.shape) == (3, 6)
    assert count(trunk.shared_parameters()) == (D * 8 + 8) + (8 * 8 + 8) + (8 * 6 + 6)


@pytest.mark.parametrize("method", ["mgda", "upgrad", "pcgrad"])
@pytest.mark.parametrize("mode", ["params", "features"])
def test_balanced_step(method: str, mode: str) -> None:
    for model in (make(), make(hard=False), fixed(), fixed(tree=PARTIAL)):
        balancer = balanced_step(model, torch.randn(16, D), method, mode)
        assert set(balancer.weights) == set(TASKS)


def test_search_then_fix_with_a_balancer_lowers_the_losses() -> None:
    torch.manual_seed(0)
    m = make(temperature=2.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, D, generator=g)
    y = torch.tanh(x @ torch.randn(D, 4, generator=g))
    targets = {"a": y[:, :1], "b": y[:, 1:3], "c": y[:, 3:]}
    balancer = tb.create("upgrad", tasks=list(TASKS))

    def losses(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {t: (out[t] - targets[t]).pow(2).mean() for t in TASKS}

    def run(steps: int) -> None:
        opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            balancer.backward(losses(m(x, generator=g)), shared_params=m.shared_parameters())
            opt.step()

    def total() -> float:
        m.eval()
        with torch.no_grad():
            value = float(sum(losses(m(x)).values()))
        m.train()
        return value

    first = total()
    for _ in range(4):  # four "epochs" of search, annealed
        run(25)
        m.epoch_end()
    searched = total()
    assert searched < 0.5 * first
    assert any(bool(lg.grad is not None and lg.grad.any()) for lg in m.branch_logits)
    m.fix_branching()
    assert total() == pytest.approx(searched)  # eval already ran the argmax tree
    run(50)
    assert total() < 0.8 * searched


def test_state_dict_resumes_the_search_and_the_tree_exactly() -> None:
    check_state_dict_round_trip(make, torch.randn(4, D))
    check_state_dict_round_trip(fixed, torch.randn(4, D))
    a = make(temperature=3.0)
    a.epoch_end()
    a.fix_branching(*TREE)
    state = a.state_dict()
    assert {"tau", "epoch", "fixed", "parents", "tower_parents"} <= set(state)
    b = make(temperature=3.0)
    b.load_state_dict(state)
    assert b.is_fixed and b.branching() == a.branching() and int(b.epoch) == 1
    assert b.temperature == a.temperature
    assert [p.requires_grad for p in b.parameters()] == [p.requires_grad for p in a.parameters()]
    # also as a submodule (the bench wraps it): the load hook runs from the parent's load
    wrapped = torch.nn.Sequential(make(temperature=3.0))
    wrapped.load_state_dict(torch.nn.Sequential(a).state_dict())
    inner = wrapped[0]
    assert isinstance(inner, LTB) and inner.is_fixed and inner.temperature == a.temperature
    assert [p.requires_grad for p in inner.parameters()] == [p.requires_grad for p in a.parameters()]
    # a searching state loaded into a fixed model unfreezes it
    fresh = make()
    b.load_state_dict(fresh.state_dict())
    assert not b.is_fixed and all(p.requires_grad for p in b.parameters())
    # mid-search: the same generator gives the same next step
    c, d = make(), make()
    c.epoch_end()
    d.load_state_dict(c.state_dict())
    x = torch.randn(4, D)
    yc = c(x, generator=torch.Generator().manual_seed(9))
    yd = d(x, generator=torch.Generator().manual_seed(9))
    for t in TASKS:
        torch.testing.assert_close(yc[t], yd[t], rtol=0, atol=0)


def test_determinism() -> None:
    check_determinism(make, torch.randn(8, D))
    check_determinism(fixed, torch.randn(8, D))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="hidden"):
        LTB(D, TASKS, hidden=())
    with pytest.raises(ValueError, match="branches"):
        LTB(D, TASKS, hidden=(4, 4), branches=(2,))
    with pytest.raises(ValueError, match="branches"):
        LTB(D, TASKS, hidden=(4,), branches=(0,))
    with pytest.raises(ValueError, match="temperature"):
        LTB(D, TASKS, temperature=0.0)
