"""Mixed precision: a ``GradScaler`` step that says whether it was taken.

A balancer's post-step hook (:meth:`~taskbalance.Balancer.after_step`, FAMO's logit
update) must only run when the optimiser really stepped. With a ``GradScaler`` a step
is skipped when the gradients overflow, and the scaler only says so by lowering its
scale; :func:`step` turns that into a boolean.

Example:
    >>> import torch, taskbalance as tb
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> scaler = torch.amp.GradScaler("cpu", init_scale=1e38)  # overflows at once
    >>> scaler.scale(model(torch.ones(1, 2)).sum() * 100).backward()
    >>> tb.amp.step(scaler, opt)
    False
"""

from __future__ import annotations

import torch

__all__ = ["step"]


def step(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """``scaler.step(optimizer)`` then ``scaler.update()``; ``True`` if the step was taken.

    A skipped step (non-finite gradients) is the one case where the scaler lowers its
    scale. One host synchronisation (reading the scale), which ``scaler.step`` makes anyway.
    """
    before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return not scaler.is_enabled() or scaler.get_scale() >= before
