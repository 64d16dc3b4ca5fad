"""FAMO: weights from softmax logits that Adam steps on the log-loss decreases; against the
algorithm as its paper states it and the authors' code (Cranial-XIX/FAMO); the after_step
contract and the min_losses bound (issue 12)."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..helpers import F64, close


class ReferenceFAMO:
    """FAMO as its paper's algorithm states it: torch's Adam on leaf logits."""

    def __init__(self, n: int, lr: float = 0.025, gamma: float = 0.01) -> None:
        self.w = torch.zeros(n, requires_grad=True)
        self.opt = torch.optim.Adam([self.w], lr=lr, weight_decay=gamma)
        self.prev: torch.Tensor | None = None

    def loss(self, losses: torch.Tensor) -> torch.Tensor:
        self.prev = losses.detach()
        z = torch.softmax(self.w.detach(), -1)
        d = losses + 1e-8
        c = (z / d.detach()).sum()
        return (d.log() * z / c).sum()

    def update(self, new: torch.Tensor) -> None:
        assert self.prev is not None
        delta = (self.prev + 1e-8).log() - (new + 1e-8).log()
        (g,) = torch.autograd.grad(torch.softmax(self.w, -1), self.w, grad_outputs=delta)
        self.opt.zero_grad()
        self.w.grad = g
        self.opt.step()


def test_famo_matches_the_reference_algorithm() -> None:
    ref = ReferenceFAMO(3)
    ours = tb.create("famo", tasks=3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        L = torch.rand(3, generator=gen) * 5 + 0.1
        new = L * (torch.rand(3, generator=gen) * 0.5 + 0.6)
        x1 = L.clone().requires_grad_()
        x2 = L.clone().requires_grad_()
        ref.loss(x1).backward()
        ours(list(x2.unbind())).backward()
        torch.testing.assert_close(x2.grad, x1.grad)
        ref.update(new)
        ours.after_step(list(new.unbind()))
        torch.testing.assert_close(ours.logits, ref.w.detach(), rtol=1e-5, atol=1e-7)


def test_famo_after_step_contract() -> None:
    b = tb.create("famo", tasks=["a", "b"])
    with pytest.raises(RuntimeError, match="before any"):
        b.after_step({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
    b({"a": torch.tensor(1.0, requires_grad=True), "b": torch.tensor(1.0, requires_grad=True)})
    with pytest.raises(ValueError, match="task 'b' differs"):
        b.after_step({"a": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="got 1 min_losses"):
        tb.create("famo", tasks=["a", "b"], min_losses=[0.0])


def test_famo_min_losses_allow_losses_above_a_negative_bound() -> None:
    b = tb.create("famo", tasks=["a", "b"], min_losses={"a": -2.0, "b": 0.0})
    total = b({"a": torch.tensor(-1.0, requires_grad=True), "b": torch.tensor(1.0, requires_grad=True)})
    assert torch.isfinite(total)


def test_famo_refuses_a_loss_below_its_bound() -> None:
    """Issue 12, item 11."""
    b = tb.create("famo", tasks=["a", "b"], min_losses=[0.5, 0.0])
    with pytest.raises(tb.InvalidLossError, match=r"task 'a' is 0.2, not above its min_losses bound 0.5"):
        b([torch.tensor(0.2, requires_grad=True), torch.tensor(1.0, requires_grad=True)])


# The authors' code at commit 0a6ad06dbdd55fce73ec01e3a175c2498cd1e5e9 (see tests/helpers.py):
# Cranial-XIX/FAMO, famo.py, FAMO (defaults gamma=0.01, w_lr=0.025, max_norm=1.0):
# get_weighted_loss(losses) on leaf losses, .backward() (weights = losses.grad), then
# update(losses after the step); gamma = 0.01 (the default, cityscapes) and 0.001 (their run.sh for
# QM9, NYUv2, CelebA; w_lr = --method-params-lr = 0.025 everywhere). Per (sequence, gamma), per
# step: (weights, the logits w after update). Their gradient clip of the shared parameters is not
# part of the weighting: famo.py clips after backward, methods/weight_methods.py (used by their
# experiments) calls clip_grad_norm_ before loss.backward(), on the just-zeroed gradients.
FAMO_STEPS = {
    "K3": [
        ([2.0, 0.5, 1.2], [1.6, 0.48, 1.1]),
        ([1.7, 0.45, 1.0], [1.5, 0.44, 0.8]),
        ([1.4, 0.5, 0.9], [1.3, 0.42, 0.85]),
        ([1.2, 0.4, 0.8], [1.0, 0.41, 0.79]),
    ],
    "K2": [([0.9, 3.0], [0.7, 2.9]), ([0.75, 2.8], [0.74, 2.2]), ([0.6, 2.5], [0.5, 2.45])],
}
FAMO = {
    ("K3", 0.01): [
        (
            [0.15000000147499998, 0.5999999968999999, 0.25000000162499997],
            [-0.024999992934611366, 0.024999990153648108, 0.024999974984123617],
        ),
        (
            [0.14795899619694108, 0.5876144859188992, 0.2644265178841597],
            [-0.04189004433581746, 0.04992818732955455, 0.011874234959314863],
        ),
        (
            [0.1751086098164388, 0.5374544675753065, 0.28743692260825476],
            [-0.0502632666380772, 0.05833014601277327, 0.00890892433840998],
        ),
        (
            [0.16847598925313778, 0.5634051110948842, 0.2681188996519778],
            [-0.06562354688677438, 0.07129501273368037, 0.011381739643707506],
        ),
    ],
    ("K3", 0.001): [
        (
            [0.15000000147499998, 0.5999999968999999, 0.25000000162499997],
            [-0.024999992934611366, 0.024999990153648108, 0.024999974984123617],
        ),
        (
            [0.14795899619694108, 0.5876144859188992, 0.2644265178841597],
            [-0.042007243569941004, 0.04992080411478501, 0.01191266035645793],
        ),
        (
            [0.1750904424151398, 0.537457725260632, 0.28745183232422816],
            [-0.05065581540706257, 0.05854623381762843, 0.009064422751117858],
        ),
        (
            [0.16839347722200063, 0.5634720257190091, 0.26813449705899034],
            [-0.06619825179858294, 0.0717542376996016, 0.01167076515043044],
        ),
    ],
    ("K2", 0.01): [
        ([0.7692307678500985, 0.23076923214990136], [-0.0249999954004572, 0.0249999954004572]),
        ([0.780280457395815, 0.21971954260418491], [-0.023057955275536682, 0.023057955275536682]),
        ([0.7991516260203493, 0.20084837397965075], [-0.02898899252725759, 0.028988992527257597]),
    ],
    ("K2", 0.001): [
        ([0.7692307678500985, 0.23076923214990136], [-0.0249999954004572, 0.0249999954004572]),
        ([0.780280457395815, 0.21971954260418491], [-0.02310712925557733, 0.02310712925557733]),
        ([0.7991358398915807, 0.20086416010841934], [-0.029115537555007648, 0.029115537555007648]),
    ],
}


@pytest.mark.parametrize(("seq", "gamma"), sorted(FAMO))
def test_famo_matches_the_authors_code(seq: str, gamma: float) -> None:
    steps = FAMO_STEPS[seq]
    b = tb.create("famo", tasks=len(steps[0][0]), gamma=gamma, w_lr=0.025)
    assert isinstance(b, tb.FAMO)
    for (before, after), (w_auth, logits) in zip(steps, FAMO[(seq, gamma)]):
        x = torch.tensor(before, dtype=F64, requires_grad=True)
        b(list(x.unbind())).backward()
        assert x.grad is not None
        close(x.grad, w_auth, 1e-6)
        b.after_step([torch.tensor(v, dtype=F64) for v in after])
        # taskbalance keeps the logits and Adam moments in float32 buffers: agreement to ~3e-7
        close(b.logits, logits, 1e-6)
