"""Static weighting: fixed user weights, one per task, checked at construction."""

from __future__ import annotations

import pytest

import taskbalance as tb

from ..helpers import leaf


def test_static_weights_and_errors() -> None:
    b = tb.create("static", tasks=["a", "b"], weights=[2.0, 0.5])
    assert float(b(leaf([1.0, 4.0]))) == 4.0
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        tb.create("static", tasks=["a", "b"], weights={"a": 1.0})
    with pytest.raises(ValueError, match="got 1 static weights"):
        tb.create("static", tasks=["a", "b"], weights=[1.0])
    with pytest.raises(ValueError, match="task 'b' must be finite and >= 0"):
        tb.create("static", tasks=["a", "b"], weights=[1.0, -1.0])
