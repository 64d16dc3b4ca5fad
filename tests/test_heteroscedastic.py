"""Heteroscedastic uncertainty losses (Kendall & Gal, NeurIPS 2017): the defining
likelihoods, their guards, half precision, and recovery of a known input-dependent
noise level on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import taskbalance as tb
from taskbalance import InvalidLossError
from taskbalance.losses import (
    HeteroscedasticHead,
    heteroscedastic_classification,
    heteroscedastic_regression,
)

F64 = torch.float64


# ------------------------------------------------------------------ regression
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.booleans(), st.integers(0, 2**31 - 1))
def test_regression_is_the_gaussian_negative_log_likelihood(
    b: int, d: int, per_sample: bool, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    pred, target = torch.randn(b, d, generator=g, dtype=F64), torch.randn(b, d, generator=g, dtype=F64)
    log_var = 3 * torch.randn(b, 1 if per_sample else d, generator=g, dtype=F64)
    nll = -torch.distributions.Normal(pred, torch.exp(0.5 * log_var)).log_prob(target) - 0.5 * math.log(
        2 * math.pi
    )
    got = heteroscedastic_regression(pred, target, log_var, reduction="none")
    torch.testing.assert_close(got, nll)
    torch.testing.assert_close(heteroscedastic_regression(pred, target, log_var), nll.mean())
    torch.testing.assert_close(heteroscedastic_regression(pred, target, log_var, reduction="sum"), nll.sum())


def test_regression_log_variance_is_optimal_at_the_squared_residual() -> None:
    residual = torch.tensor([[0.01], [1.0], [30.0]], dtype=F64)
    s = torch.log(residual.square()).requires_grad_(True)
    heteroscedastic_regression(torch.zeros_like(residual), residual, s, reduction="sum").backward()
    assert s.grad is not None
    torch.testing.assert_close(s.grad, torch.zeros_like(s), atol=1e-12, rtol=0)


def test_regression_down_weights_noisy_samples() -> None:
    """The gradient reaching the prediction is the residual divided by σ²."""
    pred = torch.zeros(2, 1, requires_grad=True)
    target = torch.ones(2, 1)
    log_var = torch.log(torch.tensor([[1.0], [100.0]]))
    heteroscedastic_regression(pred, target, log_var, reduction="sum").backward()
    assert pred.grad is not None
    torch.testing.assert_close(pred.grad, torch.tensor([[-1.0], [-0.01]]))


# -------------------------------------------------------------- classification
def test_classification_without_noise_is_the_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g)
    for shape in ((8, 1), (8, 5)):
        loss = heteroscedastic_classification(logits, target, torch.full(shape, -70.0))
        torch.testing.assert_close(loss, F.cross_entropy(logits, target))


def test_classification_matches_the_integral_it_estimates() -> None:
    """Two classes, one logit gap m and noise σ on each logit: the loss estimates
    -log E[sigmoid(m + σ(ε₁ - ε₀))], computed here by Gauss-Hermite quadrature."""
    m, sigma = 1.5, 2.0
    x, w = np.polynomial.hermite_e.hermegauss(80)  # ∫ f(x) e^(-x²/2) dx
    nodes, weights = torch.from_numpy(x), torch.from_numpy(w / w.sum())
    # ε₁ - ε₀ ~ N(0, 2)
    expected = -torch.log((weights * torch.sigmoid(m + sigma * math.sqrt(2) * nodes)).sum())
    logits = torch.tensor([[m, 0.0]], dtype=F64)
    log_var = torch.full((1, 1), 2 * math.log(sigma), dtype=F64)
    g = torch.Generator().manual_seed(0)
    got = heteroscedastic_classification(logits, torch.tensor([0]), log_var, samples=200_000, generator=g)
    assert abs(float(got) - float(expected)) < 5e-3


def test_classification_noise_helps_a_wrong_sample_and_hurts_a_right_one() -> None:
    logits = torch.tensor([[4.0, 0.0], [4.0, 0.0]])
    target = torch.tensor([0, 1])  # the second is confidently wrong
    log_var = torch.zeros(2, 1, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    heteroscedastic_classification(
        logits, target, log_var, samples=2000, generator=g, reduction="sum"
    ).backward()
    assert log_var.grad is not None
    assert float(log_var.grad[0, 0]) > 0 > float(log_var.grad[1, 0])


def test_classification_draws_are_repeatable_with_a_generator() -> None:
    logits, target, log_var = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.zeros(4, 1)
    a = heteroscedastic_classification(logits, target, log_var, generator=torch.Generator().manual_seed(3))
    b = heteroscedastic_classification(logits, target, log_var, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# ------------------------------------------------------------ precision, guards
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(16, 2, generator=g), 100 * torch.randn(16, 2, generator=g)
    log_var = torch.randn(16, 1, generator=g)
    ref = heteroscedastic_regression(pred, target, log_var)
    got = heteroscedastic_regression(pred.to(dtype), target.to(dtype), log_var.to(dtype))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=0)
    logits, labels = torch.randn(16, 4, generator=g), torch.randint(0, 4, (16,), generator=g)
    c = heteroscedastic_classification(logits.to(dtype), labels, log_var.to(dtype), generator=g)
    assert c.dtype == torch.float32 and torch.isfinite(c)


def test_extreme_log_variances_stay_finite() -> None:
    pred, target = torch.zeros(2, 1), torch.full((2, 1), 1e3)
    log_var = torch.tensor([[-1e4], [1e4]], requires_grad=True)
    loss = heteroscedastic_regression(pred, target, log_var)
    loss.backward()
    assert torch.isfinite(loss) and log_var.grad is not None and torch.isfinite(log_var.grad).all()


def test_errors_name_the_task_and_the_argument() -> None:
    p, t = torch.zeros(4, 2), torch.zeros(4, 2)
    with pytest.raises(
        InvalidLossError, match=r"task 'depth'.*pred has shape \(4, 2\) but target has \(4, 3\)"
    ):
        heteroscedastic_regression(p, torch.zeros(4, 3), torch.zeros(4, 1), task="depth")
    with pytest.raises(InvalidLossError, match=r"log_var has shape \(4, 3\).*per sample"):
        heteroscedastic_regression(p, t, torch.zeros(4, 3))
    with pytest.raises(InvalidLossError, match=r"log_var has shape \(4,\)"):
        heteroscedastic_regression(p, t, torch.zeros(4))
    with pytest.raises(InvalidLossError, match="log_var has NaN"):
        heteroscedastic_regression(p, t, torch.full((4, 1), math.nan))
    with pytest.raises(InvalidLossError, match="target must hold class indices"):
        heteroscedastic_classification(p, t[:, 0], torch.zeros(4, 1))
    with pytest.raises(InvalidLossError, match=r"logits must have shape \(B, C\)"):
        heteroscedastic_classification(torch.zeros(4), torch.zeros(4, dtype=torch.long), torch.zeros(4, 1))
    with pytest.raises(InvalidLossError, match=r"task 'label'.*class 4, outside 0..1"):
        heteroscedastic_classification(p, torch.tensor([0, 1, 4, 0]), torch.zeros(4, 1), task="label")
    with pytest.raises(ValueError, match="samples must be a positive int"):
        heteroscedastic_classification(p, torch.zeros(4, dtype=torch.long), torch.zeros(4, 1), samples=0)
    with pytest.raises(ValueError, match="reduction must be"):
        heteroscedastic_regression(p, t, torch.zeros(4, 1), reduction="max")  # type: ignore[arg-type]


def test_head_adds_a_log_variance_output() -> None:
    head = HeteroscedasticHead(nn.Linear(6, 2), in_features=6, outputs=2, init=math.log(4.0))
    pred, log_var = head(torch.randn(3, 6))
    assert pred.shape == (3, 2) and log_var.shape == (3, 2)
    torch.testing.assert_close(log_var, torch.full((3, 2), math.log(4.0)))
    conv = HeteroscedasticHead(nn.Conv2d(4, 1, 1), log_var=nn.Conv2d(4, 1, 1))  # per pixel
    out, s = conv(torch.randn(2, 4, 5, 5))
    assert out.shape == s.shape == (2, 1, 5, 5)
    with pytest.raises(ValueError, match="needs one of in_features=, constant=True or log_var="):
        HeteroscedasticHead(nn.Linear(2, 1))
    with pytest.raises(ValueError, match="give log_var= alone"):
        HeteroscedasticHead(nn.Linear(2, 1), 2, log_var=nn.Linear(2, 1))
    assert isinstance(tb.nn.HeteroscedasticHead(nn.Linear(2, 1), 2), HeteroscedasticHead)


def test_a_constant_log_variance_is_homoscedastic_uncertainty() -> None:
    """With ``constant=True`` the regression loss is uw's term ½e^(-s)·MSE + ½s."""
    head = HeteroscedasticHead(nn.Linear(3, 2), constant=True, outputs=1, init=0.7)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    pred, s = head(x)
    assert torch.equal(s, torch.full((8, 1), 0.7))
    loss = heteroscedastic_regression(pred, y, s)
    mse = F.mse_loss(pred, y)
    torch.testing.assert_close(loss, 0.5 * math.exp(-0.7) * mse + 0.5 * 0.7)
    loss.backward()
    assert head.log_var.value.grad is not None  # type: ignore[union-attr]


# ------------------------------------------------------------------ recovery
def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())


def test_regression_recovers_a_known_input_dependent_noise_level() -> None:
    """y = sin(3x) + σ(x) ε with σ(x) = 0.05 + 0.5 x²: the learned σ(x) follows it."""
    torch.manual_seed(0)
    x = torch.rand(4096, 1) * 2 - 1
    sigma = 0.05 + 0.5 * x.square()
    y = torch.sin(3 * x) + sigma * torch.randn_like(x)
    trunk = _mlp()
    noise = nn.Sequential(nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 1))
    head = HeteroscedasticHead(nn.Linear(32, 1), log_var=noise)
    opt = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(400):
        idx = torch.randint(0, 4096, (256,))
        pred, log_var = head(trunk(x[idx]))
        loss = heteroscedastic_regression(pred, y[idx], log_var)
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = torch.linspace(-0.95, 0.95, 39).unsqueeze(1)
    with torch.no_grad():
        _, s = head(trunk(grid))
    learned, true = torch.exp(0.5 * s), 0.05 + 0.5 * grid.square()
    rel = ((learned - true).abs() / true).squeeze(1)
    assert float(rel.median()) < 0.2, rel
    assert float(torch.corrcoef(torch.stack([learned.squeeze(1), true.squeeze(1)]))[0, 1]) > 0.95


def test_classification_learns_more_noise_where_labels_are_noisier() -> None:
    """Labels of a two-class problem flipped with probability 0.4·|x|: the learned σ(x)
    rises with |x|."""
    torch.manual_seed(1)
    x = torch.rand(4096, 1) * 2 - 1
    clean = (x[:, 0] > 0).long()
    flip = torch.rand(4096) < 0.4 * x[:, 0].abs()
    labels = torch.where(flip, 1 - clean, clean)
    trunk = _mlp()
    head = HeteroscedasticHead(nn.Linear(32, 2), in_features=32)
    opt = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        idx = torch.randint(0, 4096, (256,))
        logits, log_var = head(trunk(x[idx]))
        loss = heteroscedastic_classification(logits, labels[idx], log_var, samples=16, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = torch.linspace(0.1, 0.95, 18).unsqueeze(1)
    with torch.no_grad():
        s_pos = head(trunk(grid))[1].squeeze(1)
        s_neg = head(trunk(-grid))[1].squeeze(1)
    rank = torch.arange(18, dtype=torch.float32)
    for s in (s_pos, s_neg):
        order = s.argsort().argsort().float()
        assert float(torch.corrcoef(torch.stack([order, rank]))[0, 1]) > 0.7, s


# --------------------------------------------------------------- with balancers
def test_heteroscedastic_task_losses_combine_with_a_balancer() -> None:
    """Per-sample σ already sets each task's scale: sum the tasks with ``equal`` (or
    balance their gradients); ``uw`` refuses them, since the likelihood can be < 0."""
    torch.manual_seed(0)
    trunk = nn.Linear(3, 8)
    reg = HeteroscedasticHead(nn.Linear(8, 1), in_features=8)
    cls = HeteroscedasticHead(nn.Linear(8, 2), in_features=8)
    nn.init.zeros_(reg.head.weight)  # predicts 0: a good fit of targets near 0
    nn.init.zeros_(reg.head.bias)
    x, y, c = torch.randn(16, 3), torch.randn(16, 1) * 0.01, torch.randint(0, 2, (16,))
    z = trunk(x)
    pred, s = reg(z)
    logits, s_cls = cls(z)
    losses = {
        "depth": heteroscedastic_regression(pred, y, s - 10, task="depth"),
        "seg": heteroscedastic_classification(logits, c, s_cls, samples=10, task="seg"),
    }
    assert float(losses["depth"]) < 0  # a good fit with a small σ: negative log-likelihood
    total = tb.create("equal", tasks=["depth", "seg"])(losses)
    assert torch.isfinite(total)
    with pytest.raises(InvalidLossError, match="loss of task 'depth'"):
        tb.create("uw", tasks=["depth", "seg"])(losses)
    mgda = tb.create("mgda", tasks=["depth", "seg"])
    mgda.backward(losses, features=z)
    assert trunk.weight.grad is not None and torch.isfinite(trunk.weight.grad).all()
