"""STCH: the smooth Tchebycheff scalarisation K μ log Σ exp(log(Lᵢ / zᵢ) / μ) after a warm-up
on Σ log Lᵢ that sets the nadir z; against the authors' code (Xi-L/STCH), and a warning when
epoch_end() is never called (issue 13)."""

from __future__ import annotations

import math

import pytest
import torch

import taskbalance as tb

from ..helpers import F64, close, leaf


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


def test_stch_without_epoch_end_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ported MultiMNIST script never called epoch_end(): STCH stayed in its warm-up
    (issue 13, item 5)."""
    monkeypatch.setattr(tb.STCH, "EPOCH_WARNING_STEPS", 30)
    b = tb.create("stch", tasks=2)
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(RuntimeWarning, match="no epoch_end"):
        for _ in range(60):
            b(list(x.unbind()))
    closed = tb.create("stch", tasks=2)
    for _ in range(60):  # closing epochs: no warning (warnings are errors in the suite)
        closed(list(x.unbind()))
        closed.epoch_end()


# The authors' code at commit a510c1e635a8db2697e2cc3671ec40fbe383d28e (see tests/helpers.py):
# Xi-L/STCH, STCH_MTL/LibMTL/weighting/STCH.py, STCH.backward (config defaults STCH_mu=1.0,
# STCH_warmup_epoch=4, also used for QM9), run batch by batch with the trainer's self.epoch, on the
# losses below (K=3) as leaf tensors; the weights are the losses' .grad. Their epochs
# 0..W-1 train on sum log L_i, epoch W does too and accumulates the nadir (mean loss of epoch W),
# STCH from epoch W+1: W+1 warm-up epochs, taskbalance's warmup_epochs = W + 1. Their loss value
# subtracts K * max_i log(L_i / z_i) (detached), which changes no gradient.
# Per name: (W, mu, losses[epoch][batch], weights per batch in order).
STCH = {
    "W1": (
        1,
        1.0,
        [
            [[2.0, 0.5, 1.2], [1.8, 0.6, 1.1]],
            [[1.5, 0.4, 1.0], [1.3, 0.45, 0.9], [1.4, 0.35, 0.95]],
            [[1.1, 0.5, 0.7], [0.9, 0.3, 0.8]],
            [[0.8, 0.35, 0.6]],
        ],
        [
            [0.5, 2.0, 0.8333333333333334],
            [0.5555555555555556, 1.6666666666666667, 0.9090909090909091],
            [0.6666666666666666, 2.5, 1.0],
            [0.7692307692307692, 2.2222222222222223, 1.1111111111111112],
            [0.7142857142857143, 2.857142857142857, 1.0526315789473684],
            [0.7728813559322036, 2.7050847457627114, 1.1389830508474579],
            [0.95878889823381, 3.355761143818334, 1.4129520605550885],
            [1.0312075983717777, 3.6092265943012207, 1.5196743554952514],
        ],
    ),
    "W2mu05": (
        2,
        0.5,
        [
            [[3.0, 0.2, 1.5]],
            [[2.5, 0.25, 1.4], [2.4, 0.22, 1.3]],
            [[2.0, 0.18, 1.2], [1.6, 0.2, 1.0]],
            [[1.5, 0.15, 0.9], [1.2, 0.19, 1.1]],
        ],
        [
            [0.3333333333333333, 5.0, 0.6666666666666666],
            [0.4, 4.0, 0.7142857142857143],
            [0.4166666666666667, 4.545454545454546, 0.7692307692307692],
            [0.5, 5.555555555555555, 0.8333333333333334],
            [0.625, 5.0, 1.0],
            [0.6989405085315834, 6.273039467153268, 1.1229259079218163],
            [0.4545454545454544, 6.459330143540669, 1.1157024793388428],
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(STCH))
def test_stch_matches_the_authors_code(name: str) -> None:
    warmup, mu, epochs, expected = STCH[name]
    b = tb.create("stch", tasks=3, mu=mu, warmup_epochs=warmup + 1)
    got = []
    for batches in epochs:
        for values in batches:
            x = torch.tensor(values, dtype=F64, requires_grad=True)
            b(list(x.unbind())).backward()
            assert x.grad is not None
            got.append(x.grad)
        b.epoch_end()
    # taskbalance keeps the nadir in a float32 buffer: agreement to ~3e-8
    close(torch.stack(got), expected, 1e-6)
