"""Equal weighting: the plain sum of the losses (weights 1), or their mean (weights 1/K)."""

from __future__ import annotations

import pytest

import taskbalance as tb

from ..helpers import leaf, weights_of


def test_equal_sum_and_mean() -> None:
    assert float(tb.create("equal", tasks=3)(leaf([1, 2, 3]))) == 6.0
    b = tb.create("equal", tasks=3, reduction="mean")
    assert float(b(leaf([1, 2, 3]))) == 2.0 and weights_of(b) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="reduction"):
        tb.create("equal", tasks=2, reduction="max")
