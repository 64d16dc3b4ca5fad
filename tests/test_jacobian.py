"""The Jacobian engine: batched == per-task == chunked, fallback, task leaves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taskbalance.jacobian import jacobian, task_leaves, write_grads


def model_losses() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6))
    heads = nn.ModuleList(nn.Linear(6, 1) for _ in range(4))
    x = torch.randn(9, 5)
    z = enc(x)
    losses = torch.stack([h(z).pow(2).mean() for h in heads])
    return nn.ModuleList([enc, heads]), z, losses


def reference(losses: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    rows = []
    for i in range(losses.shape[0]):
        g = torch.autograd.grad(losses[i], inputs, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [(gi if gi is not None else torch.zeros_like(p)).reshape(-1) for gi, p in zip(g, inputs)]
            )
        )
    return torch.stack(rows)


@pytest.mark.parametrize("batched", [True, False, None])
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_all_paths_agree_with_autograd(batched: bool | None, chunk: int | None) -> None:
    model, z, losses = model_losses()
    params = list(model[0].parameters())
    want = reference(losses, params)
    got = jacobian(losses, params, batched=batched, chunk_size=chunk)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(
        jacobian(losses, [z], batched=batched, chunk_size=chunk), reference(losses, [z])
    )


def test_unused_input_gives_zero_columns() -> None:
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(3, requires_grad=True)
    j = jacobian(torch.stack([a.sum(), (2 * a).sum()]), [a, b])
    assert j.shape == (2, 5) and bool((j[:, 2:] == 0).all())


class NoVmap(torch.autograd.Function):
    """An op whose backward autograd cannot batch (no vmap rule)."""

    @staticmethod
    def forward(_ctx, x):  # type: ignore[no-untyped-def, override]
        return x * 2

    @staticmethod
    def backward(_ctx, g):  # type: ignore[no-untyped-def, override]
        return torch.from_numpy(g.detach().numpy() * 2).to(g.dtype)


def test_falls_back_to_per_task_when_batching_fails() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    y = NoVmap.apply(w)
    losses = torch.stack([y[0] * y[1], y.sum()])
    with pytest.warns(RuntimeWarning, match="falling back"):
        got = jacobian(losses, [w])
    torch.testing.assert_close(got, torch.tensor([[8.0, 4.0], [2.0, 2.0]]))
    y = NoVmap.apply(w)
    with pytest.raises(RuntimeError):
        jacobian(torch.stack([y[0], y[1]]), [w], batched=True)


def test_task_leaves_are_the_heads() -> None:
    model, z, losses = model_losses()
    heads = {id(p) for p in model[1].parameters()}
    assert {id(p) for p in task_leaves(losses, [z])} == heads
    assert {id(p) for p in task_leaves(losses, list(model[0].parameters()))} == heads


def test_write_grads_accumulates() -> None:
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    write_grads([p, q], torch.tensor([1.0, 2.0, 3.0]))
    write_grads([p, q], torch.tensor([1.0, 1.0, 1.0]))
    assert p.grad is not None and q.grad is not None
    assert p.grad.tolist() == [2.0, 3.0] and q.grad.tolist() == [4.0]
