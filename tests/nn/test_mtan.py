"""MTAN: shapes, the attention block, per-task attention, the split, the refused feature cut,
a user backbone, balancing, round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taskbalance as tb
from taskbalance.nn import MTAN

from .contract import balanced_step, check_determinism, check_split, check_state_dict_round_trip, task_losses

TASKS = {"a": 1, "b": 3}


def make() -> MTAN:
    return MTAN(TASKS, channels=(4, 8), in_channels=2)


def x(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 2, 8, 8)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_shapes_keys_and_masks() -> None:
    m = make()
    out = m(x(3))
    assert {t: tuple(y.shape) for t, y in out.items()} == {"a": (3, 1), "b": (3, 3)}
    assert [tuple(a.shape) for a in m.last_masks["b"]] == [(3, 4, 8, 8), (3, 8, 4, 4)]
    for masks in m.last_masks.values():
        assert all(bool(((a > 0) & (a < 1)).all()) for a in masks)  # sigmoid masks
    assert m.features is None


def test_attention_block_and_parameter_counts() -> None:
    m = make()
    att = m.attention[1]["a"]
    kinds = [type(layer).__name__ for layer in att]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Sigmoid"]
    # stage 2 reads [p_2, f_1(a_1)]: 2·8 channels in, 1×1 kernels
    assert att[0].in_channels == 16 and att[0].kernel_size == (1, 1) and att[3].out_channels == 8
    # every task has its own attention modules (LibMTL's `[...] * task_num` shares one)
    assert m.attention[0]["a"] is not m.attention[0]["b"]
    per_task = (4 * 4 + 4 + 2 * 4 + 4 * 4 + 4 + 2 * 4) + (16 * 8 + 8 + 2 * 8 + 8 * 8 + 8 + 2 * 8)
    head_b = 8 * 3 + 3
    assert sum(p.numel() for p in m.task_parameters("b")) == per_task + head_b
    shared = count(m.backbone) + count(m.att_encoders)
    assert sum(p.numel() for p in m.shared_parameters()) == shared
    assert count(m.att_encoders) == 4 * 8 * 9 + 8 + 2 * 8  # conv3x3 4 -> 8, BN


def test_split_and_refused_feature_cut() -> None:
    check_split(make(), x(6))
    m = make()
    out = m(x())
    with pytest.raises(ValueError, match="no single shared representation"):
        m.feature_cut()
    balancer = tb.create("mgda", tasks=list(TASKS))
    with pytest.raises(ValueError):
        balancer.backward(task_losses(out), features=m.features)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["mgda", "upgrad", "pcgrad"])
def test_balanced_step(method: str) -> None:
    balancer = balanced_step(make(), x(8), method, "params")
    assert set(balancer.weights) == set(TASKS)


def test_a_user_backbone_and_head() -> None:
    def stage(i: int, o: int, stride: int) -> tuple[nn.Module, nn.Module]:
        body = nn.Sequential(nn.Conv2d(i, o, 3, stride, 1), nn.ReLU())
        return body, nn.Sequential(nn.Conv2d(o, o, 3, 1, 1), nn.ReLU())

    # strided stages, and a dense head: per-pixel outputs at the last stage's resolution
    m = MTAN(
        {"seg": 5, "depth": 1},
        stages=[stage(3, 6, 1), stage(6, 10, 2), stage(10, 12, 2)],
        channels=(6, 10, 12),
        head=lambda c, o: nn.Conv2d(c, o, 1),
        reduction=2,
    )
    out = m(torch.randn(2, 3, 16, 16))
    assert {t: tuple(y.shape) for t, y in out.items()} == {"seg": (2, 5, 4, 4), "depth": (2, 1, 4, 4)}
    assert m.attention[2]["seg"][0].out_channels == 6  # 12 // 2
    check_split(m, torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="one per stage"):
        MTAN(TASKS, stages=[stage(3, 6, 1)], channels=(6, 8))


def test_training_with_a_balancer_lowers_the_losses() -> None:
    m = make()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    balancer = tb.create("upgrad", tasks=list(TASKS))
    inputs = x(8)
    first = None
    for _ in range(10):
        opt.zero_grad()
        losses = task_losses(m(inputs))
        first = first or float(sum(losses.values()))
        balancer.backward(losses, shared_params=m.shared_parameters())
        opt.step()
    assert float(sum(task_losses(m(inputs)).values())) < 0.7 * first


def test_state_dict_round_trip_and_determinism() -> None:
    check_state_dict_round_trip(make, x())
    check_determinism(make, x(6))
    assert any("running_mean" in k for k in make().state_dict())
