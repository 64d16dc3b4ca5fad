r"""Rank-consistent balancing under ``torch.distributed``.

Under data parallelism every rank sees its own shard of the global batch. A balancer
that computed its weights from the local losses would give each replica a different
objective, and the replicas would drift apart. taskbalance makes the global batch the
unit instead, in the base class, so that no method has to know about processes:

* **Losses.** Each step, the K local task losses are all-reduced (one collective of
  2K numbers, together with a presence mask) and every rank continues with the global
  mean :math:`\bar L_i = \frac1R \sum_r L_i^{(r)}`. The mean replaces the local value
  in the forward pass but the gradient still flows into the local loss (see
  :func:`global_losses`), so once DDP averages the parameter gradients, each rank holds
  :math:`\sum_i \partial f/\partial L_i(\bar L)\,\nabla\bar L_i`, which is what a single
  process computes on the global batch. Every statistic a method keeps (loss histories,
  initial losses, moving averages, FAMO's logits) is a function of these global
  values, so it is the same on every rank without a per-method reduction.
* **Random draws.** A method's own generator (``self.generator``) takes rank 0's seed
  the first time it is used, so RLW's weights and PCGrad's orders agree.
* **Gradient methods, parameter mode.** The K × N Jacobian is all-reduced (mean) before
  aggregation; every rank then aggregates the same matrix into the same direction and
  accumulates it through autograd, where DDP's hooks average identical vectors.
* **Gradient methods, feature mode.** Samples on different ranks are different
  coordinates of the global feature Jacobian, so it is the ranks' local Jacobians side
  by side (scaled by 1/R). Gramian-based methods only need the K × K sum of the local
  Gramians; the others gather the columns. Each rank backpropagates its own slice.

Only DDP's gradient averaging is relied upon; the balancer never reduces the model's
gradients itself, so nothing is reduced twice. FSDP shards the shared parameters (and
FSDP2 reshards them during the per-task backward), so a per-task Jacobian of them does
not exist on any rank. Gradient methods therefore refuse FSDP parameters in parameter
mode and say to use ``features=``. Loss-based methods, and feature mode, work under
FSDP as under DDP.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "is_initialized",
    "active_group",
    "world_size",
    "global_losses",
    "all_reduce_mean",
    "broadcast_seed",
    "gather_columns",
    "ignore_in_ddp",
]


def is_initialized() -> bool:
    """Whether ``torch.distributed`` is available and initialised (any world size).

    Example:
        >>> is_initialized()
        False
    """
    return dist.is_available() and dist.is_initialized()


def active_group(group: Any = None) -> Any:
    """The process group to synchronise over, or ``None`` when there is nothing to do.

    ``None`` when ``torch.distributed`` is unavailable, not initialised, or the group
    has a single process; otherwise ``group`` (``None`` means the default group, which
    is returned as :data:`torch.distributed.group.WORLD`).

    Example:
        >>> active_group() is None  # a single process
        True
    """
    if not is_initialized():
        return None
    pg = dist.group.WORLD if group is None else group
    return pg if dist.get_world_size(pg) > 1 else None


def world_size(group: Any = None) -> int:
    """Number of processes in ``group`` (1 when not distributed).

    Example:
        >>> world_size()
        1
    """
    pg = active_group(group)
    return 1 if pg is None else dist.get_world_size(pg)


class _Replace(torch.autograd.Function):
    """Forward: ``value`` (exactly); backward: the gradient goes to ``local``."""

    @staticmethod
    def forward(_ctx: Any, _local: Tensor, value: Tensor) -> Tensor:
        return value.clone()

    @staticmethod
    def backward(_ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def global_losses(values: Tensor, index: Tensor | slice, names: tuple[str, ...], group: Any) -> Tensor:
    r"""Replace the local loss values by their mean over the ranks of ``group``.

    ``values`` holds the losses of the tasks present on this rank; ``index`` selects
    their places among the declared tasks ``names`` (a slice when all are present).
    The result has the global means as its value (bitwise the same on every rank) and
    passes its gradient straight to the local losses. A task present on some ranks and
    absent on others raises a ``ValueError`` on every rank (consistently, so no rank
    hangs).
    """
    k = len(names)
    world = dist.get_world_size(group)
    buf = values.new_zeros(2 * k)
    sums, counts_t = buf[:k], buf[k:]
    sums[index] = values.detach()
    counts_t[index] = 1.0
    dist.all_reduce(buf, group=group)
    counts = counts_t.tolist()
    partial = [(n, int(c)) for n, c in zip(names, counts) if 0 < c < world]
    if partial:
        name, c = partial[0]
        raise ValueError(
            f"task {name!r} has a loss on {c} of {world} ranks: under torch.distributed every rank must "
            "give the same tasks in a step (compute the task on every rank, e.g. with a zero-weight "
            "loss, or drop it on every rank)"
        )
    mean = sums[index] / world
    return _Replace.apply(values, mean)  # type: ignore[no-untyped-call,no-any-return]


def all_reduce_mean(tensor: Tensor, group: Any) -> Tensor:
    """The mean of ``tensor`` over the ranks of ``group`` (a new tensor, no autograd)."""
    out = tensor.detach().clone()
    dist.all_reduce(out, group=group)
    return out.div_(dist.get_world_size(group))


def broadcast_seed(seed: int, group: Any) -> int:
    """Rank 0's ``seed`` (the first rank of ``group``), on every rank."""
    buf = torch.tensor([seed], dtype=torch.int64)
    if dist.get_backend(group) == "nccl":
        buf = buf.cuda()
    dist.broadcast(buf, src=dist.get_global_rank(group, 0), group=group)
    return int(buf.item())


def gather_columns(jac: Tensor, group: Any) -> tuple[Tensor, int, int]:
    """Put the ranks' K × Nᵣ matrices side by side: ``(K × ΣNᵣ, offset of this rank, Nᵣ)``.

    The ranks may hold different numbers of columns (an uneven last batch).
    """
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    n = torch.tensor([jac.shape[1]], dtype=torch.long, device=jac.device)
    sizes_t = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes_t, n, group=group)
    sizes = [int(s.item()) for s in sizes_t]
    top = max(sizes)
    padded = jac.new_zeros(jac.shape[0], top)
    padded[:, : jac.shape[1]] = jac
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous(), group=group)
    full = torch.cat([p[:, :s] for p, s in zip(parts, sizes)], dim=1)
    return full, sum(sizes[:rank]), sizes[rank]


def ignore_in_ddp(model: nn.Module, balancer: nn.Module) -> None:
    """Tell ``DistributedDataParallel`` to leave a balancer held inside ``model`` alone.

    A balancer that is a submodule of the model (as in a LightningModule) would
    otherwise have its parameters registered with DDP's reducer. Its parameters get
    the same gradient on every rank by construction, and gradient methods such as
    GradNorm set theirs directly, outside DDP's hooks, which DDP reports as an
    unfinished reduction. Call before wrapping the model.

    Example:
        >>> import taskbalance as tb
        >>> model = nn.Module()
        >>> model.balancer = tb.create("uw", tasks=2)
        >>> ignore_in_ddp(model, model.balancer)
        >>> sorted(model._ddp_params_and_buffers_to_ignore)
        ['balancer.factor', 'balancer.log_vars']
    """
    prefix = next((name for name, m in model.named_modules() if m is balancer), None)
    if prefix is None:
        raise ValueError("the balancer is not a submodule of the model")
    names = [f"{prefix}.{n}" for n, _ in balancer.named_parameters()]
    names += [f"{prefix}.{n}" for n, _ in balancer.named_buffers()]
    existing = list(getattr(model, "_ddp_params_and_buffers_to_ignore", []))
    nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(  # type: ignore[no-untyped-call]
        model, existing + [n for n in names if n not in existing]
    )
