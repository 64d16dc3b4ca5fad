"""Geometric loss: the geometric mean (Π Lᵢ)^(1/K), or the sum of log-losses, which differ
only by the positive factor total / K in their gradients."""

from __future__ import annotations

import math

import pytest

import taskbalance as tb

from ..helpers import leaf, weights_of


def test_geometric_and_log_forms() -> None:
    L = [0.5, 2.0, 8.0]
    b = tb.create("geometric", tasks=3)
    assert float(b(leaf(L))) == pytest.approx(math.prod(L) ** (1 / 3), rel=1e-6)
    log = tb.create("geometric", tasks=3, form="log")
    assert float(log(leaf(L))) == pytest.approx(sum(map(math.log, L)), rel=1e-6)
    # the two differ only by the positive factor total / K
    ratio = [g / w for g, w in zip(weights_of(b), weights_of(log))]
    assert ratio == pytest.approx([math.prod(L) ** (1 / 3) / 3] * 3, rel=1e-6)
    with pytest.raises(ValueError, match="form"):
        tb.create("geometric", tasks=2, form="harmonic")
