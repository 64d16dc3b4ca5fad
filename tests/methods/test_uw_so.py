"""UW-SO: weights softmax(1 / (T Lᵢ)) of the inverse detached losses, temperature T."""

from __future__ import annotations

import pytest

import taskbalance as tb

from ..helpers import leaf, softmax, weights_of


def test_uw_so_is_softmax_of_inverse_losses() -> None:
    b = tb.create("uw-so", tasks=3, temperature=0.5)
    L = [0.5, 1.0, 4.0]
    total = b(leaf(L))
    want = softmax([1 / v / 0.5 for v in L])
    assert weights_of(b) == pytest.approx(want, rel=1e-6)
    assert float(total) == pytest.approx(sum(w * v for w, v in zip(want, L)), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        tb.create("uw-so", tasks=2, temperature=-1)
