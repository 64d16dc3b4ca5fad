"""GradNorm: learned weights whose gradient is sign(Gᵢ - Ḡ rᵢ^α)·‖∇_W Lᵢ‖, renormalised to
sum to K; against LibMTL's GradNorm; no initial loss recorded on an overflowing step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taskbalance as tb

from ..helpers import (
    F64,
    TASKS,
    authors_jacobian,
    close,
    encoder_and_heads,
    make,
    stacked_weights,
    task_losses,
)


def test_gradnorm_weights_follow_the_paper_rule() -> None:
    enc, heads, x = encoder_and_heads()
    y = torch.randn(8, 3)
    b = make("gradnorm", alpha=1.0)
    opt = torch.optim.SGD([*enc.parameters(), *heads.parameters(), *b.parameters()], lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        z = enc(x)
        losses = task_losses(heads, z, y)
        b.backward(losses, shared_params=enc[0].parameters())
        # independent: G_i = ‖∇_W w_i L_i‖, target = mean(G)·r_i^α
        w = b.weights_param.detach()
        z2 = enc(x)
        again = task_losses(heads, z2, y)
        norms = torch.stack(
            [
                torch.cat(
                    [
                        g.reshape(-1)
                        for g in torch.autograd.grad(again[t], list(enc[0].parameters()), retain_graph=True)
                    ]
                ).norm()
                for t in TASKS
            ]
        )
        g = w * norms
        ratio = torch.stack([again[t] for t in TASKS]).detach() / b.initial_losses
        target = g.mean() * ratio / ratio.mean()
        torch.testing.assert_close(b.weights_param.grad, torch.sign(g - target) * norms, rtol=1e-4, atol=1e-6)
        opt.step()
    b.backward(task_losses(heads, enc(x), y), shared_params=enc[0].parameters())
    assert float(b.weights_param.detach().sum()) == pytest.approx(3.0, rel=1e-6)  # renormalised


def test_gradnorm_records_no_initial_loss_on_overflow() -> None:
    """Issue 12, item 12: a GradScaler overflow skips the step, L(0) included."""
    b = tb.create("gradnorm", tasks=2)
    w = nn.Parameter(torch.ones(2))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**20)
    b.backward([w[0] * 1e36 + 1, w[1] + 2], shared_params=[w], scaler=scaler)
    assert b.skipped
    assert not bool(b.seen.any())  # type: ignore[union-attr]


# The authors' code at commit 4336804847eaa5e0b924b743d76beec7ac3fdc97 (see tests/helpers.py):
# The paper has no official code; median-research-group/LibMTL, LibMTL/weighting/GradNorm.py,
# GradNorm.backward (config default alpha=1.5, parameter-gradient mode rep_grad=False), one step in
# epoch 1 on the Jacobians A, B, C with current losses L, train_loss_buffer[:, 0] = L(0) and
# loss_scale = s. LibMTL differs from taskbalance in parametrisation, not in the gradient:
# its weights are K softmax(s) (taskbalance: the weights themselves, clamped and renormalised to
# sum K), its L(0) is the mean loss of epoch 0 (taskbalance: the first step's loss), and during
# epoch 0 it trains on the plain sum without touching s (taskbalance updates from step 1).
# Per case: (L(0), L, s, weights, the shared gradient written, loss_scale.grad).
GRADNORM = {
    "A": (
        [2.0, 2.5],
        [0.8, 1.5],
        [1.0, 1.0],
        [1.0, 1.0],
        [0.19999999999999996, 0.7, 0.65],
        [1.3211534392242683, -1.3211534392242683],
    ),
    "B": (
        [1.5, 1.0, 1.2],
        [0.9, 0.4, 1.1],
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0],
        [1.0, 0.19999999999999996, 0.3, 1.0],
        [0.7476704086998753, 0.6020818071525742, -1.3497522158524495],
    ),
    "C": (
        [2.0, 1.0, 0.6],
        [1.2, 0.3, 0.5],
        [0.8, 1.1, 1.3],
        [0.7502663298651158, 1.0127536133961494, 1.236980056738735],
        [
            0.10510024530988088,
            0.2065898705901673,
            0.12178556368874063,
            0.8550481793854366,
            -0.05632354072505158,
        ],
        [0.9505207571978466, 0.8238595508160172, -1.774380308013864],
    ),
}


@pytest.mark.parametrize("case", sorted(GRADNORM))
def test_gradnorm_matches_the_authors_code(case: str) -> None:
    l0, current, s, w_auth, d_auth, grad_s = GRADNORM[case]
    g = authors_jacobian(case)
    k, n = g.shape
    b = tb.create("gradnorm", tasks=k, alpha=1.5).double()
    assert isinstance(b, tb.GradNorm)
    theta = torch.zeros(n, dtype=F64, requires_grad=True)

    def losses(values: list[float]) -> list[torch.Tensor]:
        return [g[i] @ theta + values[i] for i in range(k)]

    b.backward(losses(l0), shared_params=[theta])  # taskbalance takes L(0) from its first step
    theta.grad = None
    b.weights_param.grad = None
    z = torch.softmax(torch.tensor(s, dtype=F64), 0)
    with torch.no_grad():
        b.weights_param.copy_(k * z)
    b.backward(losses(current), shared_params=[theta])
    assert theta.grad is not None and b.weights_param.grad is not None
    close(theta.grad, d_auth, 1e-12)
    close(stacked_weights(b), w_auth, 1e-12)
    # chain rule through w = K softmax(s): dL/ds = K (diag z - z z^T) dL/dw
    close(k * (torch.diag(z) - torch.outer(z, z)) @ b.weights_param.grad, grad_s, 1e-12)
