"""Parameter mode of the Gramian methods without the K × N Jacobian (issue 16).

The Gramian accumulated block by block equals J Jᵀ of the explicit Jacobian on models
that are not plain MLPs, and every Gramian method's step equals the explicit path's.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import taskbalance as tb
from taskbalance.gradient.core import GramianBalancer
from taskbalance.jacobian import add_gramian, gramian, jacobian

from .helpers import benchmark_script, make

K = 3
GRAMIAN_METHODS = [m for m in tb.methods("gradient") if issubclass(tb.get_method(m), GramianBalancer)]


class Tied(nn.Module):
    """A weight used twice (tied encoder and decoder) and a frozen layer."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(6, 6)
        self.frozen = nn.Linear(6, 6).requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.w(x))
        return self.frozen(F.linear(h, self.w.weight.T)) + self.w(h)


def _encoder(kind: str) -> tuple[nn.Module, Tensor]:
    g = torch.Generator().manual_seed(0)
    if kind == "resnet18":  # the README memory table's model: residual blocks, GroupNorm, 1 × 1 convolutions
        return benchmark_script("gramian_memory").resnet18(4), torch.randn(2, 3, 4, 4, generator=g)
    if kind == "conv-batchnorm":
        enc = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
        return enc, torch.randn(5, 2, 6, 6, generator=g)
    if kind == "conv-groupnorm":
        enc = nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten())
        return enc, torch.randn(5, 2, 6, 6, generator=g)
    if kind == "attention":

        class Attn(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
                self.norm = nn.LayerNorm(8)

            def forward(self, x: Tensor) -> Tensor:
                return self.norm(x + self.attn(x, x, x, need_weights=False)[0]).flatten(1)

        return Attn(), torch.randn(5, 4, 8, generator=g)
    if kind == "tied-frozen":
        return Tied(), torch.randn(5, 6, generator=g)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8)), torch.randn(5, 6, generator=g)


KINDS = ["mlp", "conv-batchnorm", "conv-groupnorm", "attention", "tied-frozen", "resnet18"]


def _losses(kind: str, dtype: torch.dtype = torch.float64) -> tuple[nn.Module, list[nn.Module], Tensor]:
    torch.manual_seed(0)
    enc, x = _encoder(kind)
    enc = enc.to(dtype)
    z = enc(x.to(dtype))
    heads = [nn.Linear(z.shape[1], 1).to(dtype) for _ in range(K)]
    targets = torch.randn(K, x.shape[0], generator=torch.Generator().manual_seed(1), dtype=dtype)
    losses = torch.stack([F.mse_loss(h(z).squeeze(1), t) for h, t in zip(heads, targets)])
    return enc, heads, losses


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("max_bytes", [None, 1])  # one pass; one parameter per pass
def test_gramian_is_j_jt_of_the_explicit_jacobian(kind: str, max_bytes: int | None) -> None:
    enc, _, losses = _losses(kind)
    params = [p for p in enc.parameters() if p.requires_grad]
    jac = jacobian(losses, params, batched=False)
    gram, blocks = gramian(losses, params, max_bytes=max_bytes)
    torch.testing.assert_close(gram, jac @ jac.T, rtol=1e-12, atol=1e-14)
    if max_bytes is None:
        assert blocks is not None
        torch.testing.assert_close(torch.cat([b for b in blocks if b is not None], 1), jac)
    else:
        assert blocks is None  # several passes: the blocks are not kept


def _step(name: str, kind: str, **kw: object) -> tuple[Tensor, Tensor]:
    enc, heads, losses = _losses(kind)
    b = make(name, tasks=K, **kw)
    b.backward(list(losses.unbind()), shared_params=enc.parameters())
    grad = torch.cat([p.grad.reshape(-1) for p in enc.parameters() if p.grad is not None])
    head_grad = torch.cat([p.grad.reshape(-1) for h in heads for p in h.parameters()])
    return torch.cat([grad, head_grad]), torch.stack(list(b.weights.values()))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_every_gramian_method_takes_the_explicit_paths_step(name: str, kind: str) -> None:
    explicit, w_explicit = _step(name, kind, batched=False)  # the per-task Jacobian path
    engine, w_engine = _step(name, kind)
    several, w_several = _step(name, kind, max_jacobian_bytes=1)  # one backward per parameter
    for got, w in ((engine, w_engine), (several, w_several)):
        assert float(F.cosine_similarity(got, explicit, dim=0)) >= 0.9999
        torch.testing.assert_close(got, explicit, rtol=1e-7, atol=1e-9)  # the step length too
        torch.testing.assert_close(w, w_explicit, rtol=1e-7, atol=1e-9)


def test_add_gramian_never_copies_the_whole_block_to_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    import taskbalance.jacobian as jmod

    monkeypatch.setattr(jmod, "GRAM_BLOCK_BYTES", 8 * 3 * 5)  # 5 columns of K = 3 at a time
    rows = torch.randn(3, 23, dtype=torch.float32)
    gram = torch.zeros(3, 3, dtype=torch.float64)
    add_gramian(gram, rows)
    torch.testing.assert_close(gram, rows.double() @ rows.double().T)


def test_max_jacobian_bytes_is_checked() -> None:
    with pytest.raises(ValueError, match="max_jacobian_bytes must be a positive integer or None"):
        tb.create("upgrad", tasks=2, max_jacobian_bytes=0)
    assert tb.create("mgda", tasks=2, max_jacobian_bytes=None).max_jacobian_bytes is None


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_parameter_mode_never_forms_the_jacobian(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import taskbalance.gradient.core as core

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the K × N Jacobian was formed")

    monkeypatch.setattr(core, "jacobian", refuse)
    enc, _, losses = _losses("mlp")
    make(name, tasks=K).backward(list(losses.unbind()), shared_params=enc.parameters())
    assert all(p.grad is not None for p in enc.parameters())
