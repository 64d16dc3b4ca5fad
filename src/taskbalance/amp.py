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

from .base import Balancer

__all__ = ["step"]


def step(
    scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer, balancer: Balancer | None = None
) -> bool:
    """``scaler.step(optimizer)`` then ``scaler.update()``; ``True`` if the step was taken.

    A skipped step (non-finite gradients) is the one case where the scaler lowers its
    scale. One host synchronisation (reading the scale), which ``scaler.step`` makes anyway.
    Given the ``balancer`` whose ``backward(..., scaler=scaler)`` made the step, a
    skipped step is undone there too (:meth:`~taskbalance.Balancer.undo_step`): the
    statistics that loss-based methods record in the step (DWA, STCH, FAMO, RLW) are
    restored, so an overflow touches no state.
    """
    before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    taken = not scaler.is_enabled() or scaler.get_scale() >= before
    if not taken and balancer is not None and balancer._before_step is not None:
        balancer.undo_step()
    return taken
