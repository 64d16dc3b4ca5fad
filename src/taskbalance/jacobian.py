r"""Per-task gradients: the Jacobian of the task losses, batched and chunked.

:func:`jacobian` returns the K × N matrix whose row *i* is :math:`\nabla_\theta L_i`,
flattened over the given inputs (shared parameters, or shared features). It runs one
vectorised backward pass (``torch.autograd.grad(..., is_grads_batched=True)``) over
chunks of the identity, and falls back to one backward per task when autograd cannot
batch the graph; both give the same matrix (tested). Gradients stay on their device
and dtype.

:func:`task_leaves` finds the leaves between the losses and the shared inputs, i.e. the
task-specific parameters, so that a gradient method can give them their ordinary
gradient in the same call without a hand-written parameter list.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "gramian",
    "add_gramian",
    "jacobian",
    "task_leaves",
    "leaves_behind",
    "write_grads",
    "UnusedInputError",
]


class UnusedInputError(ValueError):
    """Some inputs get no gradient from any of the losses (``indices``: their positions)."""

    def __init__(self, indices: list[int]) -> None:
        super().__init__(f"inputs {indices} get no gradient from any loss")
        self.indices = indices


def _flat(grads: Sequence[Tensor | None], inputs: Sequence[Tensor], rows: int) -> Tensor:
    """Concatenate flattened gradients (``None``: the input is unused, zeros)."""
    return torch.cat(
        [
            g.reshape(rows, -1) if g is not None else x.new_zeros(rows, x.numel())
            for g, x in zip(grads, inputs)
        ],
        dim=1,
    )


def jacobian(
    losses: Tensor,
    inputs: Sequence[Tensor],
    *,
    batched: bool | None = None,
    chunk_size: int | None = None,
    retain_graph: bool = True,
    require_used: bool = False,
    wrt: Sequence[Any] | None = None,
) -> Tensor:
    r"""The K × N Jacobian of the stacked ``losses`` (K,) w.r.t. ``inputs``.

    Args:
        losses: a vector of K task losses, in the autograd graph.
        inputs: tensors to differentiate against (parameters or features); the columns
            are their flattened gradients, concatenated in order. An input a loss does
            not depend on gets zeros.
        batched: ``True`` forces the vectorised pass, ``False`` the per-task loop,
            ``None`` (default) tries the vectorised pass and falls back to the loop.
        chunk_size: at most this many tasks per vectorised pass (bounds the memory of
            the batched backward to ``chunk_size`` gradient copies); default all K.
        retain_graph: keep the graph for a later backward (default ``True``).
        require_used: raise :class:`UnusedInputError` when an input gets no gradient
            from any loss (instead of a zero block).
        wrt: what autograd differentiates against, one per input, when that is not the
            input tensor itself (a ``torch.autograd.graph.GradientEdge``); the inputs
            then give the shapes only.

    Example:
        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> losses = torch.stack([w[0] * w[1], w.pow(2).sum()])
        >>> jacobian(losses, [w])
        tensor([[2., 1.],
                [2., 4.]])
    """
    k = losses.shape[0]
    targets = list(inputs) if wrt is None else list(wrt)
    used = [False] * len(inputs)
    if batched is not False and k > 1:
        try:
            jac = _batched(losses, inputs, targets, chunk_size or k, retain_graph, used)
        except (RuntimeError, NotImplementedError) as exc:
            if batched:
                raise
            warnings.warn(
                f"batched per-task gradients failed ({type(exc).__name__}: {exc}); "
                "falling back to one backward pass per task",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            _check_used(used, require_used)
            return jac
    rows = []
    for i in range(k):
        grads = torch.autograd.grad(
            losses[i], targets, retain_graph=retain_graph or i < k - 1, allow_unused=True
        )
        _mark(used, grads)
        rows.append(_flat(grads, inputs, 1))
    _check_used(used, require_used)
    return torch.cat(rows, dim=0)


def _mark(used: list[bool], grads: Sequence[Tensor | None]) -> None:
    for j, g in enumerate(grads):
        used[j] = used[j] or g is not None


def _check_used(used: list[bool], require: bool) -> None:
    if require and not all(used):
        raise UnusedInputError([j for j, u in enumerate(used) if not u])


def _batched(
    losses: Tensor,
    inputs: Sequence[Tensor],
    targets: Sequence[Any],
    chunk: int,
    retain_graph: bool,
    used: list[bool],
) -> Tensor:
    k = losses.shape[0]
    eye = torch.eye(k, dtype=losses.dtype, device=losses.device)
    blocks = []
    for start in range(0, k, chunk):
        rows = eye[start : start + chunk]
        last = start + chunk >= k
        grads = torch.autograd.grad(
            losses,
            targets,
            grad_outputs=rows,
            is_grads_batched=True,
            retain_graph=retain_graph or not last,
            allow_unused=True,
        )
        _mark(used, grads)
        blocks.append(_flat(grads, inputs, rows.shape[0]))
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=0)


#: the largest float64 block formed while accumulating a Gramian (bytes)
GRAM_BLOCK_BYTES = 2**22


def add_gramian(gram: Tensor, rows: Tensor) -> None:
    """``gram += rows rowsᵀ`` in float64, a block of columns at a time.

    ``rows`` (K, n) keeps its dtype; at most :data:`GRAM_BLOCK_BYTES` of float64 exist
    at once, so a float32 Jacobian is never copied whole to float64.

    Example:
        >>> g = torch.zeros(2, 2, dtype=torch.float64)
        >>> add_gramian(g, torch.tensor([[1.0, 2.0], [0.0, 3.0]]))
        >>> g
        tensor([[5., 6.],
                [6., 9.]], dtype=torch.float64)
    """
    k, n = rows.shape
    step = max(1, GRAM_BLOCK_BYTES // (8 * max(k, 1)))
    for start in range(0, n, step):
        block = rows[:, start : start + step].to(torch.float64)
        gram.addmm_(block, block.T)


def gramian(
    losses: Tensor, inputs: Sequence[Tensor], *, max_bytes: int | None = None, require_used: bool = False
) -> tuple[Tensor, list[Tensor | None] | None]:
    r"""The K × K Gramian G = J Jᵀ of ``losses`` (K,) w.r.t. ``inputs``, without the K × N J.

    The per-task gradients are taken in vectorised backward passes over groups of
    inputs, each group's at most ``max_bytes`` (one input at least; ``None``: all in one
    pass); each input's (K, nᵢ) block is added to G in float64 and dropped. With one pass
    the blocks are returned too (``w @ block`` is then the direction, with no further
    backward); with several, ``None``: take the direction as the gradient of Σ wᵢ Lᵢ.
    The graph is retained. An input no loss depends on adds nothing (and its block is
    ``None``).

    Example:
        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> g, blocks = gramian(torch.stack([w.sum(), (w * w).sum()]), [w])
        >>> g
        tensor([[ 2.,  6.],
                [ 6., 20.]], dtype=torch.float64)
    """
    k = losses.shape[0]
    groups: list[list[int]] = [[]]
    held = 0
    for j, x in enumerate(inputs):
        size = k * x.numel() * x.element_size()
        if groups[-1] and max_bytes is not None and held + size > max_bytes:
            groups.append([])
            held = 0
        groups[-1].append(j)
        held += size
    eye = torch.eye(k, dtype=losses.dtype, device=losses.device)
    gram = torch.zeros(k, k, dtype=torch.float64, device=losses.device)
    keep = len(groups) == 1
    blocks: list[Tensor | None] = [None] * len(inputs)
    used = [False] * len(inputs)
    for group in groups:
        grads = torch.autograd.grad(
            losses,
            [inputs[j] for j in group],
            grad_outputs=eye,
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
        for j, g in zip(group, grads):
            if g is None:
                continue
            used[j] = True
            rows = g.reshape(k, -1)
            add_gramian(gram, rows)
            if keep:
                blocks[j] = rows
    _check_used(used, require_used)
    return gram, blocks if keep else None


def task_leaves(losses: Tensor, stop: Sequence[Any]) -> list[Tensor]:
    """Leaves that require grad between ``losses`` and the shared ``stop`` tensors (or
    ``GradientEdge``s).

    Walks the autograd graph from ``losses`` without entering ``stop`` (shared
    parameters, or the shared features and everything behind them).

    Example:
        >>> enc, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
        >>> z = enc(torch.ones(1, 2))
        >>> loss = head(z).sum().reshape(1)
        >>> sorted(p.numel() for p in task_leaves(loss, [z]))  # the head's bias and weight
        [1, 2]
    """
    stop_ids = {id(t) for t in stop}
    stop_nodes = {_node(t) for t in stop}
    stop_nodes.discard(None)
    leaves = _leaves([losses.grad_fn], stop_nodes, stop_ids)
    leaves.reverse()
    return leaves


def leaves_behind(edges: Sequence[Any]) -> list[Tensor]:
    """The leaves that require grad behind ``edges`` (tensors or ``GradientEdge``s).

    Example:
        >>> enc = torch.nn.Linear(2, 2)
        >>> z = enc(torch.ones(1, 2))
        >>> sorted(p.numel() for p in leaves_behind([z]))  # the encoder's bias and weight
        [2, 4]
    """
    return _leaves([_node(e) for e in edges], set(), set())


def _node(t: Any) -> Any:
    """The autograd node of a tensor or a ``GradientEdge``."""
    return t.grad_fn if isinstance(t, Tensor) else t.node


def _leaves(start: list[Any], stop_nodes: set[Any], stop_ids: set[int]) -> list[Tensor]:
    """The leaves reached from ``start`` without entering ``stop_nodes`` or collecting a
    tensor in ``stop_ids``, in the order of a depth-first walk."""
    seen: set[Any] = set()
    leaves: list[Tensor] = []
    stack = list(start)
    while stack:
        node = stack.pop()
        if node is None or node in seen or node in stop_nodes:
            continue
        seen.add(node)
        var = getattr(node, "variable", None)
        if var is not None:
            if id(var) not in stop_ids:
                leaves.append(var)
            continue
        stack.extend(n for n, _ in node.next_functions)
    return leaves


def write_grads(params: Sequence[Tensor], flat: Tensor) -> None:
    """Accumulate the flat vector ``flat`` into ``p.grad`` of each of ``params``, in order.

    Example:
        >>> p = torch.zeros(2, requires_grad=True)
        >>> write_grads([p], torch.tensor([1.0, 2.0]))
        >>> p.grad
        tensor([1., 2.])
    """
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.add_(g)
