r"""Declared per-task state and the step context through which a method reads and writes it.

A method declares its state once, in ``__init__``, with
:meth:`~taskbalance.Balancer.add_state`:

* a tensor with one entry per task along ``task_dims`` (a running loss, a K × K
  similarity target, ...), registered as a buffer, so that it is checkpointed, moved
  with ``.to()`` and copied with the module;
* a :class:`~taskbalance.base.SeededGenerator`, saved in ``state_dict`` and given rank
  0's seed under ``torch.distributed``;
* any other value (a step count, a flag), saved in ``state_dict`` as it is.

Each call of a method then gets a :class:`Step`: which tasks are present, whether this
call may update statistics (not under ``torch.no_grad()``), and the declared tensors
restricted to the present tasks. :meth:`Step.get` reads the present tasks' entries and
:meth:`Step.set` writes them back, and does nothing during evaluation, so a method
never indexes by hand. Declared state needs no reduction across ranks: every rank
computes it from the same global losses (see :mod:`taskbalance.distributed`).

Example:
    >>> import torch, taskbalance as tb
    >>> class RunningMean(tb.Balancer):
    ...     '''Weights proportional to each task's running mean loss.'''
    ...     def __init__(self, tasks, **kw):
    ...         super().__init__(tasks, **kw)
    ...         self.add_state("mean", torch.ones(self.num_tasks))
    ...     def _combine(self, losses, step):
    ...         mean = 0.9 * step.get("mean") + 0.1 * losses.detach()
    ...         step.set("mean", mean)
    ...         w = mean / mean.sum() * len(losses)
    ...         return (w * losses).sum(), w
    >>> b = RunningMean(["a", "b", "c"])
    >>> x = torch.tensor([1.0, 3.0], requires_grad=True)
    >>> _ = b({"a": x[0], "c": x[1]})  # "b" absent: its mean is not touched
    >>> b.mean.tolist()
    [1.0, 1.0, 1.2000000476837158]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .base import Balancer

__all__ = ["Step", "Mode"]

Mode = Literal["loss", "params", "features"]
"""How a step balances: a weighted loss, or the gradients of the shared parameters or
of the shared features."""


@dataclass
class Step:
    """What one call of a method knows about itself: the present tasks, whether it may
    update statistics, and access to the declared per-task state of those tasks.

    Gradient methods also find here the values of the call that the base computes:
    ``mode``, the ``GradScaler``'s scale and the dtype of the Jacobian.
    """

    owner: Balancer
    #: the tasks present in this call, in declared order
    names: tuple[str, ...]
    #: index of the present tasks into per-task state (a slice when all are present)
    idx: Tensor | slice
    #: whether this call may update statistics (``False`` under ``torch.no_grad()``)
    updating: bool
    mode: Mode = "loss"
    #: the ``GradScaler``'s scale during a gradient method's backward (1 otherwise): a
    #: method that writes a gradient of its own parameters directly multiplies it by this
    grad_scale: float = 1.0
    #: the dtype of the Jacobian being aggregated (the precision of its entries)
    jac_dtype: torch.dtype = torch.float32
    #: the Jacobian aggregated in this step, for the step hooks (set by the base)
    hook_jac: Tensor | None = field(default=None, repr=False)

    @property
    def everyone(self) -> bool:
        """Whether every declared task is present."""
        return isinstance(self.idx, slice)

    def take(self, tensor: Tensor, dims: Sequence[int] = (0,)) -> Tensor:
        """``tensor`` restricted to the present tasks along ``dims`` (itself when all are)."""
        if isinstance(self.idx, slice):
            return tensor
        out = tensor
        for d in dims:
            out = out.index_select(d, self.idx)
        return out

    def get(self, name: str) -> Tensor:
        """The declared tensor ``name``, restricted to the present tasks (the buffer
        itself when all are present: read it, write it with :meth:`set`)."""
        return self.take(self.owner._state_tensor(name), self.owner._state_dims[name])

    def set(self, name: str, value: Tensor) -> None:
        """Write ``value`` as the present tasks' entries of ``name``; nothing happens
        when this call may not update statistics (evaluation)."""
        self.write(self.owner._state_tensor(name), value, self.owner._state_dims[name])

    def write(self, buf: Tensor, value: Tensor, dims: Sequence[int] = (0,)) -> None:
        """:meth:`set` for a tensor that is not declared state (a parameter, a gradient):
        ``value`` becomes the present tasks' entries of ``buf`` along ``dims``, in
        place, when this call may update statistics."""
        if not self.updating:
            return
        value = value.detach().to(buf.dtype)
        if isinstance(self.idx, slice) or not dims:
            buf.copy_(value.expand_as(buf))
            return
        index: list[Any] = [slice(None)] * buf.ndim
        for j, d in enumerate(dims):  # K x K state: rows idx[:, None], columns idx[None, :]
            view = [1] * len(dims)
            view[j] = -1
            index[d] = self.idx.view(view)
        buf[tuple(index)] = value

    def add(self, name: str, value: Tensor) -> None:
        """:meth:`set` ``name`` to its present entries plus ``value``."""
        self.set(name, self.get(name) + value)
