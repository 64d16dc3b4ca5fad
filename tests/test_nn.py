"""Architectures: shapes and parameter counts from the papers' formulas, gates, SNR's L0,
and one training step of every architecture with every balancer in both modes."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import taskbalance as tb
from taskbalance.nn import (
    CGC,
    LTB,
    PLE,
    SNR,
    CrossStitch,
    DSelectK,
    HardSharing,
    MMoE,
    MultiTaskModule,
    hard_concrete,
)

TASKS = {"a": 1, "b": 3}
D = 12


def linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def count(params: Any) -> int:
    return sum(p.numel() for p in params)


def test_hard_sharing_shapes_and_counts() -> None:
    m = HardSharing(D, TASKS, hidden=(16, 8), tower=(4,))
    out = m(torch.randn(5, D))
    assert {t: tuple(v.shape) for t, v in out.items()} == {"a": (5, 1), "b": (5, 3)}
    assert m.features is not None and tuple(m.features.shape) == (5, 8)
    assert count(m.shared_parameters()) == linear(D, 16) + linear(16, 8)
    assert count(m.task_parameters("b")) == linear(8, 4) + linear(4, 3)


def test_mmoe_counts_and_gates_are_distributions() -> None:
    e, h = 5, 7
    m = MMoE(D, TASKS, num_experts=e, expert_dims=(h,), tower=(4,))
    m(torch.randn(6, D))
    assert count(m.shared_parameters()) == e * linear(D, h)
    assert count(m.task_parameters("a")) == linear(D, e, bias=False) + linear(h, 4) + linear(4, 1)
    assert count(m.parameters()) == count(m.shared_parameters()) + sum(
        count(m.task_parameters(t)) for t in TASKS
    )
    for g in m.last_gates.values():
        assert g.shape == (6, e) and bool((g >= 0).all())
        torch.testing.assert_close(g.sum(-1), torch.ones(6))
    assert m.features is not None and tuple(m.features.shape) == (6, e, h)


def test_cgc_and_ple_counts_and_gates() -> None:
    s_, k, h = 2, 3, 8
    cgc = CGC(D, TASKS, num_shared=s_, num_specific=k, expert_dims=(h,), tower=(4,))
    cgc(torch.randn(4, D))
    assert count(cgc.shared_parameters()) == s_ * linear(D, h)
    want_task = k * linear(D, h) + linear(D, k + s_) + linear(h, 4) + linear(4, 3)
    assert count(cgc.task_parameters("b")) == want_task
    assert cgc.features is not None and tuple(cgc.features.shape) == (4, s_, h)
    assert cgc.last_gates[0]["a"].shape == (4, k + s_)

    ple = PLE(D, TASKS, num_levels=3, num_shared=s_, num_specific=k, expert_dims=(h,), tower=(4,))
    ple(torch.randn(4, D))
    # level 1 reads x, levels 2-3 read h-dim mixtures; shared gates below the top level
    shared = s_ * linear(D, h) + 2 * s_ * linear(h, h) + linear(D, s_ + 2 * k) + linear(h, s_ + 2 * k)
    assert count(ple.shared_parameters()) == shared
    assert count(ple.parameters()) == shared + sum(count(ple.task_parameters(t)) for t in TASKS)
    for level in ple.last_gates:
        for g in level.values():
            torch.testing.assert_close(g.sum(-1), torch.ones(4))
    assert ple.features is None
    with pytest.raises(ValueError, match="no single shared representation"):
        ple.feature_cut()
    with pytest.raises(ValueError, match="num_levels"):
        PLE(D, TASKS, num_levels=0)


def test_snr_counts_and_exact_zeros_at_eval() -> None:
    lo, h = 3, 8
    m = SNR(D, TASKS, num_lower=lo, lower_dims=(h,), tower=(4,), mode="trans")
    m(torch.randn(4, D))
    assert count(m.shared_parameters()) == lo * linear(D, h)
    assert count(m.task_parameters("a")) == lo + lo * h * h + linear(h, 4) + linear(4, 1)
    aver = SNR(D, TASKS, num_lower=lo, lower_dims=(h,), tower=(4,), mode="aver")
    assert count(aver.task_parameters("a")) == lo + linear(h, 4) + linear(4, 1)
    with torch.no_grad():
        m.log_alpha["a"].copy_(torch.tensor([-6.0, 0.0, 6.0]))
    m.eval()
    m(torch.randn(4, D))
    z = m.last_gates["a"]
    assert float(z[0]) == 0.0 and float(z[2]) == 1.0 and 0 < float(z[1]) < 1
    m.train()
    assert bool((hard_concrete(torch.full((1000,), -6.0), True) == 0).float().mean() > 0.5)
    with pytest.raises(ValueError, match="mode"):
        SNR(D, TASKS, mode="sum")


def test_snr_expected_l0_matches_monte_carlo() -> None:
    log_alpha = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])
    m = SNR(D, {"a": 1}, num_lower=5, lower_dims=(4,), mode="aver")
    with torch.no_grad():
        m.log_alpha["a"].copy_(log_alpha)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([hard_concrete(log_alpha, True, g) for _ in range(40000)])
    mc = float((draws > 0).float().mean(0).sum())
    assert float(m.l0_penalty()) == pytest.approx(mc, abs=0.03)


def test_task_parameters_of_an_unknown_task() -> None:
    with pytest.raises(KeyError, match="unknown task 'z'"):
        list(HardSharing(D, TASKS).task_parameters("z"))
    with pytest.raises(ValueError, match="at least one task"):
        HardSharing(D, {})


def test_numeric_task_names_do_not_collide_with_module_indices() -> None:
    m = PLE(D, {"0": 1, "1": 1}, num_levels=2, num_shared=1, num_specific=1, expert_dims=(4,), tower=(2,))
    zero = {id(p) for p in m.task_parameters("0")}
    one = {id(p) for p in m.task_parameters("1")}
    shared = {id(p) for p in m.shared_parameters()}
    assert not zero & one and not zero & shared
    assert len(zero | one | shared) == len(list(m.parameters()))


ARCHS = {
    "hard": lambda: HardSharing(D, TASKS, hidden=(8,), tower=(4,)),
    "mmoe": lambda: MMoE(D, TASKS, num_experts=3, expert_dims=(8,), tower=(4,)),
    "cgc": lambda: CGC(D, TASKS, num_shared=2, num_specific=1, expert_dims=(8,), tower=(4,)),
    "ple": lambda: PLE(D, TASKS, num_levels=2, num_shared=2, num_specific=1, expert_dims=(8,), tower=(4,)),
    "snr": lambda: SNR(D, TASKS, num_lower=2, lower_dims=(8,), tower=(4,)),
    "cross-stitch": lambda: CrossStitch(D, TASKS, hidden=(8, 8), tower=(4,)),
    "dselect-k": lambda: DSelectK(D, TASKS, num_experts=3, k=2, expert_dims=(8,), tower=(4,)),
    "ltb": lambda: LTB(D, TASKS, hidden=(8, 8), tower=(4,)),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("mode", ["params", "features"])
def test_one_step_of_every_balancer_on_every_architecture(arch: str, mode: str, any_method: str) -> None:
    torch.manual_seed(0)
    model: MultiTaskModule = ARCHS[arch]()
    balancer = tb.create(any_method, tasks=list(TASKS), **tb.get_method(any_method).bench_kwargs)
    x, ya, yb = torch.randn(16, D), torch.randn(16), torch.randint(0, 3, (16,))
    out = model(x)
    losses = {
        "a": nn.functional.mse_loss(out["a"].squeeze(-1), ya),
        "b": nn.functional.cross_entropy(out["b"], yb),
    }
    if balancer.kind == "loss":
        balancer.backward(losses)
    elif mode == "params":
        balancer.backward(losses, shared_params=model.shared_parameters())
    elif model.features is None or not getattr(balancer, "supports_features", True):
        with pytest.raises(ValueError):
            cut = model.feature_cut() if isinstance(model, PLE) else None
            balancer.backward(losses, features=cut)
        return
    else:
        balancer.backward(losses, features=model.features)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{arch}/{any_method}/{mode}: {name} got no gradient"
        assert bool(torch.isfinite(p.grad).all())
    assert not math.isnan(sum(float(v) for v in balancer.weights.values()))
