"""What a user porting a LibMTL, TorchJD or Nash-MTL script hits first (issue 13, item 5)."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb


def test_stacked_losses_are_accepted(method: str) -> None:
    """The (K,) tensor of losses of the Nash-MTL, LibMTL and TorchJD code."""
    kw = {"weights": [1.0, 0.5, 2.0]} if method == "static" else {}
    a, b = tb.create(method, tasks=3, **kw), tb.create(method, tasks=3, **kw)
    if method in ("rlw",):
        a, b = tb.create(method, tasks=3, seed=0), tb.create(method, tasks=3, seed=0)
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    torch.testing.assert_close(a(x * 1), b(list((x * 1).unbind())))


def test_a_misspelled_option_names_the_method_and_the_close_match() -> None:
    with pytest.raises(TypeError, match="mgda has no option 'normalisation'; did you mean 'normalization'"):
        tb.create("mgda", tasks=2, normalisation="l2")
    with pytest.raises(TypeError, match=r"Its options: .*temperature"):
        tb.create("dwa", tasks=2, temp=2.0)


def test_a_non_tensor_loss_reads_as_english() -> None:
    with pytest.raises(TypeError, match="loss of task '0' is an int, not a tensor"):
        tb.create("equal", tasks=2)([3, torch.ones((), requires_grad=True)])  # type: ignore[list-item]
