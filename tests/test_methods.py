"""Each loss-based method against an independent computation of its formula."""

from __future__ import annotations

import math

import pytest
import torch

import taskbalance as tb


def leaf(values: list[float]) -> list[torch.Tensor]:
    return [torch.tensor(float(v), requires_grad=True) for v in values]


def weights(b: tb.Balancer) -> list[float]:
    return [float(v) for v in b.weights.values()]


def softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def test_equal_sum_and_mean() -> None:
    assert float(tb.create("equal", tasks=3)(leaf([1, 2, 3]))) == 6.0
    b = tb.create("equal", tasks=3, reduction="mean")
    assert float(b(leaf([1, 2, 3]))) == 2.0 and weights(b) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="reduction"):
        tb.create("equal", tasks=2, reduction="max")


def test_static_weights_and_errors() -> None:
    b = tb.create("static", tasks=["a", "b"], weights=[2.0, 0.5])
    assert float(b(leaf([1.0, 4.0]))) == 4.0
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        tb.create("static", tasks=["a", "b"], weights={"a": 1.0})
    with pytest.raises(ValueError, match="got 1 static weights"):
        tb.create("static", tasks=["a", "b"], weights=[1.0])
    with pytest.raises(ValueError, match="task 'b' must be finite and >= 0"):
        tb.create("static", tasks=["a", "b"], weights=[1.0, -1.0])


def test_dwa_epoch_mode_matches_the_paper() -> None:
    b = tb.create("dwa", tasks=3, temperature=2.0)
    epochs = [[4.0, 2.0, 1.0], [3.0, 2.0, 1.5], [1.0, 2.5, 1.0], [1.0, 1.0, 1.0]]
    means: list[list[float]] = []
    for epoch in epochs:
        for scale in (0.5, 1.5):  # two steps whose average is the epoch value
            b([v * scale for v in leaf(epoch)])
            if len(means) < 2:
                assert weights(b) == pytest.approx([1.0, 1.0, 1.0])
            else:
                r = [means[-1][i] / means[-2][i] for i in range(3)]
                want = [3 * w for w in softmax([x / 2.0 for x in r])]
                assert weights(b) == pytest.approx(want, rel=1e-5)
        b.epoch_end()
        means.append(epoch)


@pytest.mark.parametrize("k", [1, 3])
def test_dwa_window_mode_matches_moving_averages(k: int) -> None:
    b = tb.create("dwa", tasks=2, window=k, temperature=1.0)
    gen = torch.Generator().manual_seed(1)
    seen: list[list[float]] = []
    for _ in range(4 * k + 3):
        vals = (torch.rand(2, generator=gen) + 0.1).tolist()
        b(leaf(vals))
        b.epoch_end()  # a no-op in per-step mode
        if len(seen) < 2 * k:
            assert weights(b) == pytest.approx([1.0, 1.0])
        else:
            recent = [sum(s[i] for s in seen[-k:]) / k for i in range(2)]
            prev = [sum(s[i] for s in seen[-2 * k : -k]) / k for i in range(2)]
            want = [2 * w for w in softmax([recent[i] / prev[i] for i in range(2)])]
            assert weights(b) == pytest.approx(want, rel=1e-5)
        seen.append(vals)


def test_dwa_rejects_bad_hyper_parameters() -> None:
    with pytest.raises(ValueError, match="temperature"):
        tb.create("dwa", tasks=2, temperature=0)
    with pytest.raises(ValueError, match="window"):
        tb.create("dwa", tasks=2, window=0)


def test_rlw_draws_softmax_of_gaussians_from_its_seed() -> None:
    b = tb.create("rlw", tasks=4, seed=123)
    gen = torch.Generator().manual_seed(123)
    for _ in range(3):
        b(leaf([1.0, 2.0, 3.0, 4.0]))
        z = torch.randn(4, generator=gen)
        assert weights(b) == pytest.approx(torch.softmax(z, 0).tolist(), rel=1e-6)
    # an absent task still consumes its draw, and the rest renormalise
    b([None, *leaf([2.0, 3.0, 4.0])])
    z = torch.randn(4, generator=gen)
    assert weights(b) == pytest.approx(torch.softmax(z[1:], 0).tolist(), rel=1e-6)


def test_rlw_default_seed_follows_torch_manual_seed() -> None:
    torch.manual_seed(7)
    a = tb.create("rlw", tasks=3)
    torch.manual_seed(7)
    b = tb.create("rlw", tasks=3)
    a(leaf([1.0, 1.0, 1.0]))
    b(leaf([1.0, 1.0, 1.0]))
    assert weights(a) == weights(b)


def test_uw_so_is_softmax_of_inverse_losses() -> None:
    b = tb.create("uw-so", tasks=3, temperature=0.5)
    L = [0.5, 1.0, 4.0]
    total = b(leaf(L))
    want = softmax([1 / v / 0.5 for v in L])
    assert weights(b) == pytest.approx(want, rel=1e-6)
    assert float(total) == pytest.approx(sum(w * v for w, v in zip(want, L)), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        tb.create("uw-so", tasks=2, temperature=-1)


def test_geometric_and_log_forms() -> None:
    L = [0.5, 2.0, 8.0]
    b = tb.create("geometric", tasks=3)
    assert float(b(leaf(L))) == pytest.approx(math.prod(L) ** (1 / 3), rel=1e-6)
    log = tb.create("geometric", tasks=3, form="log")
    assert float(log(leaf(L))) == pytest.approx(sum(map(math.log, L)), rel=1e-6)
    # the two differ only by the positive factor total / K
    ratio = [g / w for g, w in zip(weights(b), weights(log))]
    assert ratio == pytest.approx([math.prod(L) ** (1 / 3) / 3] * 3, rel=1e-6)
    with pytest.raises(ValueError, match="form"):
        tb.create("geometric", tasks=2, form="harmonic")


def test_stch_warmup_nadir_and_smooth_max() -> None:
    b = tb.create("stch", tasks=2, mu=0.5, warmup_epochs=2)
    for _ in range(2):
        for vals in ([2.0, 4.0], [4.0, 8.0]):
            total = b(leaf(vals))
            assert float(total) == pytest.approx(sum(map(math.log, vals)), rel=1e-6)
        b.epoch_end()
    assert b.nadir.tolist() == pytest.approx([3.0, 6.0])  # mean over the last warm-up epoch
    L = [1.5, 12.0]
    u = [math.log(L[0] / 3.0) / 0.5, math.log(L[1] / 6.0) / 0.5]
    total = b(leaf(L))
    want = 2 * 0.5 * math.log(sum(math.exp(x) for x in u))
    assert float(total) == pytest.approx(want, rel=1e-6)
    # as mu -> 0 the objective tends to K * max_i log(L_i / z_i)
    sharp = tb.create("stch", tasks=2, mu=1e-3, nadir=[3.0, 6.0])
    assert float(sharp(leaf(L))) == pytest.approx(2 * max(math.log(L[0] / 3), math.log(L[1] / 6)), rel=1e-3)


def test_stch_argument_errors() -> None:
    with pytest.raises(ValueError, match="mu"):
        tb.create("stch", tasks=2, mu=0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        tb.create("stch", tasks=2, warmup_epochs=0)
    with pytest.raises(ValueError, match="nadir"):
        tb.create("stch", tasks=2, nadir=[1.0, -1.0])
    b = tb.create("stch", tasks=["a", "b"], nadir={"a": 2.0, "b": 1.0})
    assert b.nadir.tolist() == [2.0, 1.0]


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


def test_per_task_values_accept_a_mapping_a_sequence_or_one_number() -> None:
    assert tb.create("static", tasks=["a", "b"], weights=0.5).static_weights.tolist() == [0.5, 0.5]
    b = tb.create("famo", tasks=["a", "b"], min_losses={"a": -1.0, "b": 0.0})
    assert b.min_losses.tolist() == [-1.0, 0.0]
    with pytest.raises(ValueError, match=r"min_losses must name exactly the tasks.*unknown \['z'\]"):
        tb.create("famo", tasks=["a", "b"], min_losses={"a": 0.0, "b": 0.0, "z": 1.0})
    with pytest.raises(ValueError, match="must be given"):
        b._per_task(None, "the things")
