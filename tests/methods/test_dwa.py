"""DWA: wᵢ = K softmax(rᵢ / T) of the loss ratios rᵢ of the last two epochs (or windows);
against the paper's rule, the authors' code (lorenmt/mtan), and finite weights for extreme
finite losses (issue 12)."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..helpers import F64, close, leaf, softmax, stacked_weights, weights_of


def test_dwa_epoch_mode_matches_the_paper() -> None:
    b = tb.create("dwa", tasks=3, temperature=2.0)
    epochs = [[4.0, 2.0, 1.0], [3.0, 2.0, 1.5], [1.0, 2.5, 1.0], [1.0, 1.0, 1.0]]
    means: list[list[float]] = []
    for epoch in epochs:
        for scale in (0.5, 1.5):  # two steps whose average is the epoch value
            b([v * scale for v in leaf(epoch)])
            if len(means) < 2:
                assert weights_of(b) == pytest.approx([1.0, 1.0, 1.0])
            else:
                r = [means[-1][i] / means[-2][i] for i in range(3)]
                want = [3 * w for w in softmax([x / 2.0 for x in r])]
                assert weights_of(b) == pytest.approx(want, rel=1e-5)
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
            assert weights_of(b) == pytest.approx([1.0, 1.0])
        else:
            recent = [sum(s[i] for s in seen[-k:]) / k for i in range(2)]
            prev = [sum(s[i] for s in seen[-2 * k : -k]) / k for i in range(2)]
            want = [2 * w for w in softmax([recent[i] / prev[i] for i in range(2)])]
            assert weights_of(b) == pytest.approx(want, rel=1e-5)
        seen.append(vals)


def test_dwa_rejects_bad_hyper_parameters() -> None:
    with pytest.raises(ValueError, match="temperature"):
        tb.create("dwa", tasks=2, temperature=0)
    with pytest.raises(ValueError, match="window"):
        tb.create("dwa", tasks=2, window=0)


@pytest.mark.parametrize(
    ("first", "second", "dtype"), [(1e-20, 1e20, torch.float32), (1.0, 1e300, torch.float64)]
)
def test_dwa_weights_stay_finite_for_finite_losses(first: float, second: float, dtype: torch.dtype) -> None:
    """Issue 12, item 8."""
    for window in ("epoch", 1):
        b = tb.create("dwa", tasks=2, window=window)
        for v in (first, first, second, second, 1.0):
            b(
                [
                    torch.tensor(v, dtype=dtype, requires_grad=True),
                    torch.tensor(1.0, dtype=dtype, requires_grad=True),
                ]
            )
            b.epoch_end()
        w = torch.stack(list(b.weights.values()))
        assert bool(torch.isfinite(w).all()), (window, w)


# The authors' code at commit c36c30baa18968dec74fe9039abcfd4f132edfa1 (see tests/helpers.py):
# lorenmt/mtan, im2im_pred/utils.py, multi_task_trainer (opt.temp defaults to 2.0): the DWA lines
# (epochs 0 and 1 weight 1; then w_k = avg_cost[e-1] / avg_cost[e-2], lambda = 3 softmax(w / T))
# with avg_cost a float32 array accumulating cost / train_batch, copied verbatim for K=3.
# Per name: (T, losses[epoch][batch], lambda_weight per epoch).
DWA = {
    "T2": (
        2.0,
        [
            [[2.0, 0.5, 1.2], [1.8, 0.6, 1.1]],
            [[1.5, 0.4, 1.0], [1.3, 0.45, 0.9]],
            [[1.1, 0.5, 0.7], [0.9, 0.3, 0.8]],
            [[0.8, 0.35, 0.6], [0.7, 0.32, 0.5]],
            [[0.6, 0.3, 0.55], [0.62, 0.28, 0.4]],
        ],
        [
            [1.0, 1.0, 1.0],
            [1.0, 1.0, 1.0],
            [0.9791961908340454, 0.9969240427017212, 1.0238797664642334],
            [0.9498358368873596, 1.063940405845642, 0.9862236976623535],
            [0.9880048632621765, 1.0321894884109497, 0.9798057079315186],
        ],
    ),
    "T1": (
        1.0,
        [
            [[3.0, 0.2, 1.5], [2.6, 0.25, 1.45], [2.9, 0.21, 1.3]],
            [[2.5, 0.25, 1.4], [2.4, 0.22, 1.3], [2.0, 0.2, 1.2]],
            [[2.0, 0.18, 1.2], [1.6, 0.2, 1.0], [1.5, 0.19, 1.1]],
            [[1.5, 0.15, 0.9], [1.2, 0.19, 1.1], [1.3, 0.18, 1.0]],
        ],
        [
            [1.0, 1.0, 1.0],
            [1.0, 1.0, 1.0],
            [0.8989471197128296, 1.1017014980316162, 0.9993515610694885],
            [0.928492546081543, 1.0381319522857666, 1.0333755016326904],
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(DWA))
def test_dwa_matches_the_authors_code(name: str) -> None:
    temp, epochs, expected = DWA[name]
    b = tb.create("dwa", tasks=3, temperature=temp)
    for batches, w_auth in zip(epochs, expected):
        for values in batches:
            b([torch.tensor(v, dtype=F64, requires_grad=True) for v in values])
        close(stacked_weights(b), w_auth, 1e-6)  # float32 epoch averages on both sides
        b.epoch_end()
