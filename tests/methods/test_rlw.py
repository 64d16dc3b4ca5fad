"""RLW: weights softmax(z), z ~ N(0, 1) drawn from the method's own seeded generator; the
expected weights 1/K under torch.no_grad() without drawing (issue 12); the draw breaks a
fullgraph torch.compile capture (a documented limitation)."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..helpers import leaf, make, weights_of


def test_rlw_draws_softmax_of_gaussians_from_its_seed() -> None:
    b = tb.create("rlw", tasks=4, seed=123)
    gen = torch.Generator().manual_seed(123)
    for _ in range(3):
        b(leaf([1.0, 2.0, 3.0, 4.0]))
        z = torch.randn(4, generator=gen)
        assert weights_of(b) == pytest.approx(torch.softmax(z, 0).tolist(), rel=1e-6)
    # an absent task still consumes its draw, and the rest renormalise
    b([None, *leaf([2.0, 3.0, 4.0])])
    z = torch.randn(4, generator=gen)
    assert weights_of(b) == pytest.approx(torch.softmax(z[1:], 0).tolist(), rel=1e-6)


def test_rlw_default_seed_follows_torch_manual_seed() -> None:
    torch.manual_seed(7)
    a = tb.create("rlw", tasks=3)
    torch.manual_seed(7)
    b = tb.create("rlw", tasks=3)
    a(leaf([1.0, 1.0, 1.0]))
    b(leaf([1.0, 1.0, 1.0]))
    assert weights_of(a) == weights_of(b)


def test_rlw_evaluation_does_not_draw_from_the_training_stream() -> None:
    """Issue 12, item 2."""
    a, b = tb.create("rlw", tasks=2, seed=3), tb.create("rlw", tasks=2, seed=3)
    x = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        total = a(list(torch.tensor([2.0, 4.0]).unbind()))
    assert float(total) == pytest.approx(3.0)  # the expected weights 1/K
    a(list(x.unbind()))
    b(list(x.unbind()))
    assert torch.equal(torch.stack(list(a.weights.values())), torch.stack(list(b.weights.values())))


def _losses(step: int) -> dict[str, torch.Tensor]:
    x = torch.tensor([1.0 + step, 2.0, 0.5 * (step + 1)], requires_grad=True)
    return {"a": x[0] * 1, "b": x[1] * 1, "c": x[2] * 1}


# dynamo inspects the inputs' .grad while guarding, which warns for non-leaf losses
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_rlw_draws_with_its_own_generator_which_dynamo_cannot_trace() -> None:
    """Documented limitation: RLW's generator call breaks a fullgraph capture (every other
    loss-based method compiles: tests/test_compile.py)."""
    torch._dynamo.reset()
    b = make("rlw", check=False)
    b(_losses(0))  # the generator exists before compiling
    compiled = torch.compile(b, fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match=r"(?i)generator|proxy|unsupported"):
        compiled(_losses(1))
