"""GradDrop: per coordinate, only the gradients of one sign are kept (leak 1 keeps all);
against TorchJD's GradDrop with the same random stream."""

from __future__ import annotations

import torch

import taskbalance as tb

from ..helpers import cosine, jacobian_cases, random_jacobians, torchjd_aggregation
from ..properties import aggregate


def test_graddrop_keeps_one_sign_per_coordinate() -> None:
    jac = jacobian_cases(torch.float64)["random-5"]
    d, w = aggregate("graddrop", jac, seed=1)
    pos, neg = jac.clamp(min=0).sum(0), jac.clamp(max=0).sum(0)
    assert bool((((d - pos).abs() < 1e-12) | ((d - neg).abs() < 1e-12)).all())
    assert bool(((w >= 0) & (w <= 1)).all())
    full, _ = aggregate("graddrop", jac, leak=1.0)
    torch.testing.assert_close(full, jac.sum(0))


def test_graddrop_matches_torchjd_with_the_same_random_stream() -> None:
    aggregation = torchjd_aggregation()
    for i, jac in enumerate(random_jacobians()):
        ours, _ = tb.create("graddrop", tasks=jac.shape[0], seed=i).aggregate(jac)  # type: ignore[attr-defined]
        torch.manual_seed(i)
        theirs = aggregation.GradDrop()(jac)
        assert cosine(ours, theirs.double()) >= 0.999
