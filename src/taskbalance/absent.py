"""Absent tasks' parameters do not move, whatever the optimiser.

A method with one learned value per task keeps them in one (K,) parameter (``log_vars``,
``log_scales``, GradNorm's ``weights_param``). A task absent from a step gets a zero
gradient there, not none, and an optimiser with momentum (Adam, AdamW, SGD with
momentum) still moves its entry. So every balancer notes which tasks were present in
the training calls since its parameters were last stepped, and two global optimiser
hooks (``torch.optim.optimizer.register_optimizer_step_pre_hook`` and ``..._post_hook``)
put the entries of the tasks that were absent from all those calls back after any
optimiser step that includes the parameters. Only the values are restored: the
optimiser's running moments of that entry still decay, as they would for a parameter
that received no gradient for a while.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from .base import Balancer

__all__ = ["track"]

_BALANCERS: weakref.WeakSet[Balancer] = weakref.WeakSet()
_SAVED: dict[int, list[tuple[torch.nn.Parameter, list[int], Tensor]]] = {}
_installed = False


def track(balancer: Balancer) -> None:
    """Watch ``balancer``'s per-task parameters across optimiser steps."""
    global _installed
    _BALANCERS.add(balancer)
    if not _installed:
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        register_optimizer_step_pre_hook(_before)
        register_optimizer_step_post_hook(_after)
        _installed = True


def _before(optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
    pending = [b for b in list(_BALANCERS) if b._present_since_step is not None]
    if not pending:  # the common case: no balancer trained since its last step
        return
    stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    saved = []
    for b in pending:
        params = [p for p in b._per_task_parameters() if id(p) in stepped]
        if not params:  # another optimiser: this window goes on
            continue
        absent = [j for j in range(b.num_tasks) if j not in b._present_since_step]  # type: ignore[operator]
        b._present_since_step = None  # these parameters step now: a new window starts
        if absent:
            saved += [(p, absent, p.detach()[absent].clone()) for p in params]
    if saved:
        _SAVED[id(optimizer)] = saved


def _after(optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
    with torch.no_grad():
        for p, absent, before in _SAVED.pop(id(optimizer), []):
            p[absent] = before
