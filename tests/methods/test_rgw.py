"""RGW (random gradient weighting, Lin et al. TMLR 2022, LibMTL's ``RGW``): a random
convex combination of the task gradients for the shared part, the plain sum for the
heads, and the same draws as RLW for the same seed."""

from __future__ import annotations

import torch
from torch import nn

import taskbalance as tb


def _model() -> tuple[nn.Linear, nn.ModuleList, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Linear(4, 6), nn.ModuleList(nn.Linear(6, 1) for _ in range(3)), torch.randn(8, 4)


def test_shared_gradient_is_the_random_convex_combination_and_heads_get_the_sum() -> None:
    enc, heads, x = _model()
    losses = [h(enc(x)).square().mean() for h in heads]
    shared = list(enc.parameters())
    rows = [torch.autograd.grad(loss, shared, retain_graph=True) for loss in losses]
    jac = torch.stack([torch.cat([g.flatten() for g in row]) for row in rows])
    head_grads = [torch.autograd.grad(sum(losses), list(h.parameters()), retain_graph=True) for h in heads]
    b = tb.create("rgw", tasks=3, seed=7)
    b.backward(losses, shared_params=list(enc.parameters()))
    w = torch.stack(list(b.weights.values()))
    # LibMTL's draw: softmax of a standard normal vector, fresh each step
    z = torch.randn(3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(w, torch.softmax(z, 0))
    got = torch.cat([p.grad.flatten() for p in enc.parameters()])  # type: ignore[union-attr]
    torch.testing.assert_close(got, w @ jac)
    for h, expected in zip(heads, head_grads):
        for p, g in zip(h.parameters(), expected):
            torch.testing.assert_close(p.grad, g)


def test_same_seed_draws_the_weights_of_rlw_step_after_step() -> None:
    rgw, rlw = tb.create("rgw", tasks=4, seed=3), tb.create("rlw", tasks=4, seed=3)
    w = torch.zeros(4, requires_grad=True)
    for step in range(5):
        losses = [w[i] * (i + 1) + step for i in range(4)]
        rgw.backward(losses, shared_params=[w])
        rlw(losses)
        torch.testing.assert_close(
            torch.stack(list(rgw.weights.values())), torch.stack(list(rlw.weights.values()))
        )


def test_absent_tasks_keep_the_stream_and_weights_sum_to_one() -> None:
    b = tb.create("rgw", tasks=["a", "b", "c"], seed=1)
    w = torch.zeros(3, requires_grad=True)
    b.backward({"a": w[0] + 1, "c": w[2] + 1}, shared_params=[w])
    assert set(b.weights) == {"a", "c"}
    torch.testing.assert_close(sum(b.weights.values()), torch.tensor(1.0))
    z = torch.randn(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.stack(list(b.weights.values())), torch.softmax(z[[0, 2]], 0))


def test_evaluation_draws_nothing() -> None:
    b = tb.create("rgw", tasks=3, seed=2)
    with torch.no_grad():
        _, weights = b.aggregate(torch.eye(3))
    torch.testing.assert_close(weights, torch.full((3,), 1 / 3))
    w = torch.zeros(3, requires_grad=True)
    b.backward([w[0], w[1], w[2]], shared_params=[w])
    z = torch.randn(3, generator=torch.Generator().manual_seed(2))  # still the first draw
    torch.testing.assert_close(torch.stack(list(b.weights.values())), torch.softmax(z, 0))
