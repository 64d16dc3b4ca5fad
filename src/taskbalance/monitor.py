r"""What to log while training: weights, σ, per-task gradient norms and cosines.

Every balancer calls its step hooks (:meth:`~taskbalance.Balancer.register_step_hook`)
after each step with a dictionary of detached 0-d tensors, so that any logger can take
them without this library knowing about it:

* ``weight/<task>``: the weight ∂total/∂Lᵢ used in the step (every method);
* ``sigma/<task>``: the learned noise scale σᵢ (the uncertainty methods);
* ``grad_norm/<task>`` and ``cosine/<a>,<b>``: the norm of each task's gradient and the
  cosine between every pair (gradient methods, from the Jacobian they already have:
  under torch.distributed the global one, except in feature mode for Gramian-based
  methods, which only reduce the Gramian: there it is this rank's samples). The rows are the
  gradients of what the method differentiates: the task losses, or their transforms
  for DB-MTL (log Lᵢ), GradNorm (wᵢLᵢ) and IMTL (e^{sᵢ}Lᵢ), whose cosines are the
  same as the losses'. Loss-based methods
  have no per-task gradients; :func:`task_gradient_stats` computes them on demand.

Nothing is copied to the host unless the hook does it (``float(v)``), so a hook that
logs every *n* steps costs nothing in between.

Example:
    >>> import torch, taskbalance as tb
    >>> b = tb.create("uw", tasks=["depth", "seg"])
    >>> seen = []
    >>> handle = b.register_step_hook(lambda balancer, stats: seen.append(sorted(stats)))
    >>> x = torch.ones(2, requires_grad=True)
    >>> _ = b({"depth": x[0], "seg": x[1]})
    >>> seen[0]
    ['sigma/depth', 'sigma/seg', 'weight/depth', 'weight/seg']
    >>> handle.remove()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .jacobian import jacobian

__all__ = ["gradient_stats", "task_gradient_stats", "TensorBoardHook"]


def gradient_stats(jac: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    r"""Norms of the rows of ``jac`` (K × N) and the cosine of every pair of rows.

    :math:`\|g_i\|` under ``grad_norm/<name>`` and
    :math:`g_i\cdot g_j / (\|g_i\|\|g_j\|)` under ``cosine/<a>,<b>`` (0 when a
    gradient is zero), computed from the Gramian in float64.

    Example:
        >>> stats = gradient_stats(torch.tensor([[3.0, 4.0], [0.0, 1.0]]), ["a", "b"])
        >>> float(stats["grad_norm/a"]), round(float(stats["cosine/a,b"]), 4)
        (5.0, 0.8)
    """
    j = jac.detach().to(torch.float64)
    gram = j @ j.T
    norms = gram.diagonal().clamp(min=0).sqrt()
    cos = gram / (norms[:, None] * norms[None, :]).clamp(min=torch.finfo(torch.float64).tiny)
    out = {f"grad_norm/{n}": norms[i].to(jac.dtype) for i, n in enumerate(names)}
    for i, a in enumerate(names):
        for k in range(i + 1, len(names)):
            out[f"cosine/{a},{names[k]}"] = cos[i, k].to(jac.dtype)
    return out


def task_gradient_stats(
    losses: Mapping[str, Tensor], inputs: Iterable[Tensor], *, retain_graph: bool = True
) -> dict[str, Tensor]:
    """:func:`gradient_stats` of the task losses w.r.t. ``inputs`` (one Jacobian).

    For loss-based methods, which never form per-task gradients: call it every few
    steps, before ``backward`` (the graph is kept by default).

    Example:
        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> stats = task_gradient_stats({"a": w[0] * 2, "b": w.sum()}, [w])
        >>> float(stats["grad_norm/a"]), round(float(stats["cosine/a,b"]), 4)
        (2.0, 0.7071)
    """
    names = list(losses)
    jac = jacobian(torch.stack([losses[n] for n in names]), list(inputs), retain_graph=retain_graph)
    return gradient_stats(jac, names)


class TensorBoardHook:
    """A step hook that writes the stats to a TensorBoard ``SummaryWriter``.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (or anything with
            ``add_scalar(tag, value, step)``).
        every: write every ``every`` steps (the values are read from the device only then).
        prefix: prepended to every tag.

    Example:
        >>> import torch, taskbalance as tb
        >>> class Printer:
        ...     def add_scalar(self, tag, value, step):
        ...         print(tag, round(value, 3), step)
        >>> b = tb.create("equal", tasks=["a"])
        >>> _ = b.register_step_hook(tb.monitor.TensorBoardHook(Printer()))
        >>> _ = b({"a": torch.ones((), requires_grad=True)})
        balancer/weight/a 1.0 1
    """

    def __init__(self, writer: Any, every: int = 1, prefix: str = "balancer/") -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.writer = writer
        self.every = int(every)
        self.prefix = prefix
        self.step = 0

    def __call__(self, _balancer: Any, stats: Mapping[str, Tensor]) -> None:
        self.step += 1
        if self.step % self.every:
            return
        for tag, value in stats.items():
            self.writer.add_scalar(self.prefix + tag, float(value), self.step)
