"""The base of gradient-based methods: Jacobian, aggregation, write-back."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.distributed as dist
from torch import Tensor
from typing_extensions import override

from ..base import Balancer, LossInput, Step, TaskSpec
from ..distributed import all_reduce_mean, gather_columns, is_initialized
from ..jacobian import (
    UnusedInputError,
    add_gramian,
    gramian,
    jacobian,
    leaves_behind,
    task_leaves,
    write_grads,
)
from ..monitor import gradient_stats

__all__ = ["GradientBalancer", "Mode", "capped", "row_norms"]

Mode = Literal["params", "features"]


class GradientBalancer(Balancer):
    r"""Base of the gradient-based methods.

    :meth:`backward` computes the per-task gradients (the K × N Jacobian) of the task
    objectives with respect to the shared parameters or the shared features, lets the
    method aggregate them into one direction, and writes it back; every other leaf
    of the graph (the task-specific heads, the method's own parameters) gets the
    ordinary gradient of the summed objectives in the same call.

    A subclass implements the abstract ``_aggregate(jac, losses, step)`` (or, through
    :class:`GramianBalancer`, ``_weights(gramian, losses, step)``); optionally
    ``_objectives(losses, step)`` to transform the losses first (IMTL's scaled losses,
    DB-MTL's log losses, GradNorm's weighted losses), ``_head_objective(objectives,
    step)`` for what the task-specific leaves train on, ``_own_leaves()`` for the
    method's own parameters, and ``supports_features = False`` with
    ``_features_reason()`` for a method defined on parameter gradients only. The
    values of the call (mode, a ``GradScaler``'s scale, the Jacobian's dtype) are on
    ``step``.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        batched: per-task gradients in one vectorised backward (``True``), one backward
            per task (``False``), or the vectorised pass with a per-task fallback
            (``None``, default).
        chunk_size: at most this many tasks per vectorised backward (memory bound).
        check, on_nonfinite: see :class:`~taskbalance.Balancer`.
    """

    kind = "gradient"
    #: whether the method makes sense on features (per-sample gradients of one batch)
    supports_features: ClassVar[bool] = True

    def __init__(
        self, tasks: TaskSpec, *, batched: bool | None = None, chunk_size: int | None = None, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        self.batched = batched
        self.chunk_size = chunk_size

    @override
    def forward(self, losses: LossInput) -> Tensor:
        """Gradient-based methods have no scalar loss to return: use :meth:`backward`."""
        raise TypeError(
            f"{type(self).__name__} ({self.name!r}) is a gradient-based method: it combines "
            "per-task gradients, not losses. Call balancer.backward(losses, shared_params=...) "
            "or balancer.backward(losses, features=...) instead of balancer(losses).backward()."
        )

    # ------------------------------------------------------------- overridable
    def _objectives(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor | None]:  # noqa: ARG002
        """Per-task objectives to differentiate, and d objective_i / d L_i (None: 1).
        A default hook: IMTL, DB-MTL and GradNorm override it."""
        return losses, None

    @abc.abstractmethod
    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        """Return ``(direction (N,), weights (K,))`` from the Jacobian (K, N)."""

    @override
    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        raise TypeError(f"{type(self).__name__} combines gradients: use backward()")

    def _head_objective(self, objectives: Tensor, step: Step) -> Tensor:  # noqa: ARG002
        """What the task-specific leaves are trained on (default: the sum; DB-MTL
        overrides it)."""
        return objectives.sum()

    def _own_leaves(self) -> set[int]:
        """Ids of leaves that must not get the head objective's gradient."""
        return set()

    def aggregate(self, jac: Tensor, losses: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Combine a given Jacobian (K × N, all tasks, declared order) into ``(direction, weights)``.

        The same computation as a :meth:`backward` step (stateful methods update their
        state), without autograd: for analysing a method or using it on gradients you
        computed yourself. ``losses`` (K,) is needed by loss-dependent variants.

        Example:
            >>> import torch, taskbalance as tb
            >>> d, w = tb.create("mgda", tasks=2).aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
            >>> d
            tensor([0.5000, 0.5000])
        """
        if jac.ndim != 2 or jac.shape[0] != self.num_tasks:
            raise ValueError(f"expected a Jacobian of shape ({self.num_tasks}, N), got {tuple(jac.shape)}")
        if losses is None:
            losses = torch.ones(self.num_tasks, dtype=jac.dtype, device=jac.device)
        step = Step(self, self.task_names, slice(None), torch.is_grad_enabled(), "params")
        return self._aggregate_any(jac, losses, step)

    # ------------------------------------------------------------------- step
    def backward(
        self,
        losses: LossInput,
        shared_params: Iterable[Tensor] | None = None,
        features: Tensor | Sequence[Tensor] | None = None,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> Tensor:
        """Balance the per-task gradients of the shared parameters (or features).

        Args:
            losses: task losses (mapping or sequence), as for every balancer.
            shared_params: the shared parameters; their ``.grad`` receives the balanced
                direction (accumulated, like ``loss.backward()``).
            features: alternatively, the shared representation(s) the task heads read:
                the per-task gradients are taken w.r.t. them (cheap: only the heads are
                differentiated per task) and the balanced feature gradient is then
                backpropagated once through the encoder.
            scaler: a ``GradScaler`` for float16 training. The per-task gradients are
                taken of the scaled objectives and unscaled before aggregating; what is
                written to ``.grad`` is scaled again, so ``scaler.step(optimizer)``
                unscales it as usual. When the unscaled Jacobian is not finite, nothing
                is aggregated and no state changes (:attr:`skipped` is ``True``); non-finite
                gradients are written so that ``scaler.step`` skips the step and
                ``scaler.update`` lowers the scale.

        Under ``torch.distributed`` (see :mod:`taskbalance.distributed`) every rank
        aggregates the global per-task gradients and writes the same direction through
        autograd, so a ``DistributedDataParallel`` model averages as usual.

        Returns:
            Σ wᵢ Lᵢ, detached (for logging).
        """
        if (shared_params is None) == (features is None):
            raise ValueError(
                f"{type(self).__name__}.backward needs exactly one of shared_params= or features="
            )
        if not torch.is_grad_enabled():
            raise RuntimeError(
                f"{type(self).__name__}.backward was called under torch.no_grad() (or inference "
                "mode): there is no graph to balance; call it in the training step, and use "
                "balancer(losses) for evaluation of a loss-based method"
            )
        if features is not None:
            if not self.supports_features:
                raise ValueError(
                    f"{type(self).__name__} ({self.name!r}) cannot balance feature gradients: "
                    f"{self._features_reason()}; pass shared_params= instead"
                )
            inputs = _unique([features] if isinstance(features, Tensor) else list(features))
            for i, f in enumerate(inputs):
                if not isinstance(f, Tensor) or not f.requires_grad:
                    raise ValueError(
                        f"features= tensor {i} does not require grad (detached, or computed under "
                        "no_grad): pass the encoder's output as computed in this forward pass"
                    )
            mode: Mode = "features"
        else:
            assert shared_params is not None
            inputs = _unique([p for p in shared_params if p.requires_grad])
            mode = "params"
        if not inputs:
            raise ValueError("no shared tensor requires grad: nothing to balance")
        prepared = self._prepare(losses, mode)
        if prepared is None:
            return torch.zeros((), device=inputs[0].device)
        step, values = prepared
        names = list(step.names)
        group = self._group()
        if mode == "params" and group is not None:
            _refuse_sharded(inputs)
        grad_scale: float | None = None
        if scaler is not None and scaler.is_enabled():
            grad_scale = scaler.get_scale()
            step.grad_scale = grad_scale
        objectives, scale = self._objectives(values, step)
        scaled = objectives if scaler is None or grad_scale is None else scaler.scale(objectives)
        wrt = [_behind_ddp_sink(t) for t in inputs] if mode == "features" else None
        # on one process only: under torch.distributed the direction must reach the
        # shared parameters through autograd, where DDP's hooks see it
        if mode == "params" and not is_initialized() and self._uses_gramian_engine():
            done = self._gramian_backward(scaled, objectives, inputs, values, step, grad_scale, scale)
            if done is not None:
                return done
        try:
            jac = jacobian(
                scaled, inputs, batched=self.batched, chunk_size=self.chunk_size, require_used=True, wrt=wrt
            )
        except UnusedInputError as exc:
            raise _unused(exc, mode, inputs, names) from None
        if mode == "params" and group is not None:
            _refuse_sharded(inputs, after_backward=True)
        if grad_scale is not None:
            jac = jac / grad_scale
        result = self._direction(jac, values.detach(), step, group, guard=grad_scale is not None)
        if result is None:  # an overflow under a GradScaler: let the scaler see it
            self.skipped = True
            direction = torch.full_like(jac[0], math.inf)
        else:
            direction, weights = result
        if grad_scale is not None:
            direction = direction * grad_scale
        own = self._own_leaves()
        heads = [t for t in task_leaves(objectives, inputs if wrt is None else wrt) if id(t) not in own]
        if heads:
            torch.autograd.backward(
                self._head_objective(scaled, step), inputs=heads, retain_graph=mode == "features"
            )
        if mode == "params" and not is_initialized():
            write_grads(inputs, direction)
        else:  # through autograd, so that DDP's hooks (if any) see every shared gradient
            grads, offset = [], 0
            for f in inputs:
                grads.append(direction[offset : offset + f.numel()].view_as(f).to(f.dtype))
                offset += f.numel()
            # behind a DDP sink, the sink also leads to the heads: restrict the pass to the
            # leaves behind the features, or the heads' hooks would fire a second time
            behind = None
            if wrt is not None and any(not isinstance(e, Tensor) for e in wrt):
                behind = leaves_behind(wrt) or None
            torch.autograd.backward(inputs, grads, inputs=behind)
        if result is None:
            return torch.zeros((), device=inputs[0].device)
        if scale is not None:
            weights = weights * scale.detach()
        self._last_names = tuple(names)
        self._last_weights = weights.detach()
        if self._step_hooks:
            hook_jac = step.hook_jac if step.hook_jac is not None else jac
            self._run_step_hooks(gradient_stats(hook_jac, names))
        return (self._last_weights * values.detach()).sum()

    def _features_reason(self) -> str:
        return "it is defined on parameter gradients only"

    def _uses_gramian_engine(self) -> bool:
        """Whether parameter mode takes the Gramian without the Jacobian (see
        :class:`GramianBalancer`)."""
        return False

    def _gramian_backward(
        self,
        scaled: Tensor,
        objectives: Tensor,
        inputs: list[Tensor],
        values: Tensor,
        step: Step,
        grad_scale: float | None,
        scale: Tensor | None,
    ) -> Tensor | None:
        """Parameter mode of a Gramian method without the K × N Jacobian.

        G = J Jᵀ is accumulated block by block (:func:`~taskbalance.jacobian.gramian`),
        the method's weights w come from G alone, and the direction wᵀJ is ``w @ block``
        for each parameter (one pass) or the gradient of Σ wᵢ Lᵢ (several passes, when
        J exceeds ``max_jacobian_bytes``). ``None`` when the vectorised backward is not
        supported by the graph: the caller then takes the Jacobian path.
        """
        budget = getattr(self, "max_jacobian_bytes", None)
        try:
            gram, blocks = gramian(scaled, inputs, max_bytes=budget, require_used=True)
        except UnusedInputError as exc:
            raise _unused(exc, "params", inputs, step.names) from None
        except (RuntimeError, NotImplementedError):
            if self.batched:
                raise
            return None  # e.g. an op without a vmap rule: the Jacobian path falls back per task
        if grad_scale is not None:
            gram = gram / (grad_scale * grad_scale)
        dtype = inputs[0].dtype  # the blocks' dtype: gradients have their parameter's
        step.jac_dtype = dtype
        if grad_scale is not None and not bool(torch.isfinite(gram).all()):
            weights = None
        else:
            assert isinstance(self, GramianBalancer)
            _check_finite(self, gram)
            weights = self._weights(gram, values.detach().to(torch.float64), step)
        own = self._own_leaves()
        heads = [t for t in task_leaves(objectives, inputs) if id(t) not in own]
        if weights is None:  # an overflow under a GradScaler: let the scaler see it
            self.skipped = True
            grads: list[Tensor] = [torch.full_like(p, math.inf) for p in inputs]
        elif blocks is not None:
            # the blocks are of the scaled objectives: w @ block is the scaled direction;
            # each block is dropped once used, so that J and the direction never coexist whole
            grads = []
            for j, p in enumerate(inputs):
                b, blocks[j] = blocks[j], None
                grads.append(
                    torch.zeros_like(p) if b is None else _combine_rows(weights, b).view_as(p).to(p.dtype)
                )
                del b
        else:
            total = (weights.to(scaled.dtype) * scaled).sum()
            found = torch.autograd.grad(total, inputs, retain_graph=bool(heads), allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(inputs, found)]
        if heads:
            torch.autograd.backward(self._head_objective(scaled, step), inputs=heads)
        for p, g in zip(inputs, grads):
            if p.grad is None:
                p.grad = g.detach()
            else:
                p.grad.add_(g)
        if weights is None:
            return torch.zeros((), device=inputs[0].device)
        weights = weights.to(dtype if dtype not in _HALF else torch.float32)
        if scale is not None:
            weights = weights * scale.detach()
        self._last_names = step.names
        self._last_weights = weights.detach()
        return (self._last_weights * values.detach()).sum()

    def _direction(
        self, jac: Tensor, losses: Tensor, step: Step, group: Any, guard: bool
    ) -> tuple[Tensor, Tensor] | None:
        """Aggregate the local Jacobian, globally under torch.distributed; ``None``
        when ``guard`` is set and what would be aggregated is not finite."""
        if group is not None and step.mode == "features":
            return self._aggregate_sharded(jac, losses, step, group, guard)
        if group is not None:
            jac = all_reduce_mean(jac, group)
        if guard and not _finite(jac):
            return None
        if self._step_hooks:
            step.hook_jac = jac
        return self._aggregate_any(jac, losses, step, finite=guard)

    def _aggregate_any(
        self, jac: Tensor, losses: Tensor, step: Step, finite: bool = False
    ) -> tuple[Tensor, Tensor]:
        """:meth:`_aggregate` of a Jacobian of any dtype: a half-precision one is
        aggregated in float32 and its direction returned in its own dtype (recorded as
        ``step.jac_dtype``, the precision its entries really have). Non-finite entries are
        refused first (under ``check``), unless the caller has already seen that
        ``finite`` holds (a GradScaler's guard)."""
        step.jac_dtype = jac.dtype
        if self.check and not finite and not _finite(jac):  # before any state takes it in
            raise ValueError(
                f"{type(self).__name__}: the task gradients have NaN or inf entries; check the task "
                "gradients, or use a GradScaler step that skips such steps"
            )
        return in_float32(jac, lambda j: self._aggregate(j, losses, step))

    def _aggregate_sharded(
        self, jac: Tensor, losses: Tensor, step: Step, group: Any, guard: bool
    ) -> tuple[Tensor, Tensor] | None:
        """Feature mode under torch.distributed: this rank's samples are its own columns
        of the global feature Jacobian, which is the ranks' Jacobians side by side
        divided by R. Aggregate it, and return this rank's slice times R (DDP divides
        the encoder's gradient by R again)."""
        world = dist.get_world_size(group)
        full, offset, n = gather_columns(jac, group)
        if guard and not _finite(full):
            return None
        full = full / world
        if self._step_hooks:
            step.hook_jac = full
        direction, weights = self._aggregate_any(full, losses, step, finite=guard)
        return direction[offset : offset + n] * world, weights


_HALF = (torch.float16, torch.bfloat16)


def _combine_rows(weights: Tensor, rows: Tensor) -> Tensor:
    """``weights @ rows`` in ``rows``' dtype, or in float32 for a half-precision ``rows``."""
    dtype = torch.float32 if rows.dtype in _HALF else rows.dtype
    return weights.to(dtype) @ rows.to(dtype)


def _unused(exc: UnusedInputError, mode: Mode, inputs: Sequence[Tensor], names: Sequence[str]) -> ValueError:
    """The user-facing error for shared tensors that no present task's loss depends on."""
    arg = "features=" if mode == "features" else "shared_params="
    shapes = ", ".join(f"{i} (shape {tuple(inputs[i].shape)})" for i in exc.indices[:4])
    return ValueError(
        f"{arg} tensor {shapes} gets no gradient from any task present in this call "
        f"({', '.join(names)}): the losses were not computed from it. Pass the tensors of "
        "this forward pass that the task losses depend on"
        + (" (only the shared encoder's parameters)" if mode == "params" else "")
    )


def in_float32(jac: Tensor, aggregate: Callable[[Tensor], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """``aggregate(jac)``, with a float16 or bfloat16 ``jac`` promoted to float32 (weights
    of a rank-deficient problem can exceed float16's range) and the direction returned
    in ``jac``'s dtype."""
    if jac.dtype not in (torch.float16, torch.bfloat16):
        return aggregate(jac)
    direction, weights = aggregate(jac.float())
    return direction.to(jac.dtype), weights


def capped(w: Tensor, gramian: Tensor, max_norm: float | None) -> Tensor:
    """``w`` scaled down so that the direction Gᵀw, of norm √(wᵀMw), is at most
    ``max_norm`` (``None``: ``w`` as is). Nash-MTL's and FairGrad's norm cap."""
    if max_norm is None:
        return w
    dnorm = (w @ gramian @ w).clamp(min=0).sqrt()
    return w * (max_norm / dnorm.clamp(min=torch.finfo(gramian.dtype).tiny)).clamp(max=1.0)


def row_norms(jac: Tensor) -> Tensor:
    """‖row‖ of a K × N matrix without overflow or underflow: each row divided by its
    largest entry first (squares of 1e30 overflow float32, of 1e-30 vanish)."""
    top = jac.abs().amax(dim=1, keepdim=True)
    safe = torch.where(top > 0, top, torch.ones_like(top))
    out: Tensor = (jac / safe).norm(dim=1) * top.squeeze(1)
    return out


def _unique(tensors: list[Tensor]) -> list[Tensor]:
    """``tensors`` without repeats (the same tensor twice would get the direction twice)."""
    seen: set[int] = set()
    out = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _behind_ddp_sink(t: Tensor) -> Any:
    """What to differentiate against for a feature tensor ``t``.

    ``DistributedDataParallel`` (with ``find_unused_parameters=True`` or a static graph)
    passes a module's outputs through an identity autograd node, ``_DDPSink``: the
    returned features are then new tensors that the task losses, computed from the
    module's other outputs, do not depend on. Their gradient is taken at the sink's
    input instead (a ``GradientEdge``); writing the balanced gradient into ``t`` still
    goes through the sink, as DDP expects.
    """
    node = t.grad_fn
    if node is None or "DDPSink" not in type(node).__name__:
        return t
    from torch.autograd.graph import GradientEdge

    upstream, nr = node.next_functions[t.output_nr]  # one edge per tensor output
    return t if upstream is None else GradientEdge(upstream, nr)


def _refuse_sharded(params: Sequence[Tensor], after_backward: bool = False) -> None:
    """Parameter mode needs each rank to hold whole shared parameters.

    FSDP1 and FSDP2 parameters outside forward are sharded (flat or DTensor). FSDP2 hands
    out whole parameters during forward, but its backward hook reshards them, freeing
    their storage, once the per-task gradients are taken (``after_backward``).
    """
    for p in params:
        freed = after_backward and p.untyped_storage().size() == 0 and p.numel() > 0
        if freed or getattr(p, "_is_flat_param", False) or type(p).__name__ == "DTensor":
            raise ValueError(
                "the shared parameters are sharded (FSDP): no rank holds their per-task gradients, "
                "so a gradient method cannot aggregate them; pass features= (the shared "
                "representation) instead, or use DistributedDataParallel"
            )


class GramianBalancer(GradientBalancer):
    """A gradient method whose weights depend on the task Gramian M = J Jᵀ only.

    The Gramian is formed in float64 (K × K, cheap) for the solvers' sake; the
    direction is ``weights @ J`` in J's dtype. In parameter mode (outside
    torch.distributed, with no step hooks) J is never held whole: each parameter's (K, nᵢ) block of per-task
    gradients is added to M and, when the blocks of all parameters fit in
    ``max_jacobian_bytes``, kept for the direction; otherwise the parameters are taken
    in groups of at most that many bytes, one vectorised backward each, and the
    direction is the gradient of Σ wᵢ Lᵢ (one more backward).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        max_jacobian_bytes: the most bytes of per-task gradients held at once in
            parameter mode (default 256 MiB; ``None``: no limit).
    """

    def __init__(self, tasks: TaskSpec, *, max_jacobian_bytes: int | None = 2**28, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        if max_jacobian_bytes is not None and (
            not isinstance(max_jacobian_bytes, int)
            or isinstance(max_jacobian_bytes, bool)
            or max_jacobian_bytes < 1
        ):
            raise ValueError(
                f"max_jacobian_bytes must be a positive integer or None, got {max_jacobian_bytes!r}"
            )
        self.max_jacobian_bytes = max_jacobian_bytes

    def _uses_gramian_engine(self) -> bool:
        return not self._step_hooks and self.batched is not False

    @abc.abstractmethod
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        """The weights (K,) of the present tasks from their Gramian (K × K, float64)."""

    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        return self._from_gramian(_gramian(jac), jac, losses, step)

    def _from_gramian(
        self, gramian: Tensor, jac: Tensor, losses: Tensor, step: Step
    ) -> tuple[Tensor, Tensor]:
        """``(w @ jac, w)`` with the method's weights ``w`` for ``gramian``."""
        _check_finite(self, gramian)
        w = self._weights(gramian, losses.to(torch.float64), step).to(jac.dtype)
        return w @ jac, w

    def _aggregate_sharded(
        self, jac: Tensor, losses: Tensor, step: Step, group: Any, guard: bool
    ) -> tuple[Tensor, Tensor] | None:
        """Feature mode under torch.distributed: the global Gramian is the sum of the
        ranks' Gramians over R² (K × K numbers to reduce), and this rank's slice of
        the global direction, times R, is ``w @ J_local``."""
        gramian = _gramian(jac)
        dist.all_reduce(gramian, group=group)
        gramian /= dist.get_world_size(group) ** 2
        if guard and not bool(torch.isfinite(gramian).all()):
            return None
        step.jac_dtype = jac.dtype
        return in_float32(jac, lambda j: self._from_gramian(gramian, j, losses, step))


def _finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite, by one summing pass (a NaN or inf entry
    makes its row's sum NaN or inf; only then, or on an overflowing sum of finite
    entries, are the entries looked at one by one): a tenth of ``isfinite(t).all()``."""
    return bool(torch.isfinite(t.sum(-1)).all()) or bool(torch.isfinite(t).all())


def _check_finite(balancer: Balancer, gramian: Tensor) -> None:
    """Refuse a Gramian with NaN or inf entries before a method's state takes it in (a
    moving average fed one NaN would stay NaN for the rest of training). With
    ``check=False`` nothing is checked here: a NaN may then reach a method's state,
    and a solver refuses it only if the method calls one."""
    if balancer.check and not bool(torch.isfinite(gramian).all()):
        raise ValueError(
            f"{type(balancer).__name__}: the task gradients have NaN or inf entries (their Gramian is not "
            "finite); check the task gradients, or use a GradScaler step that skips such steps"
        )


def _gramian(jac: Tensor) -> Tensor:
    """``J Jᵀ`` in float64 (K × K, the solvers' precision), formed a block of columns
    at a time so that J is never copied whole to float64."""
    gram = torch.zeros(jac.shape[0], jac.shape[0], dtype=torch.float64, device=jac.device)
    add_gramian(gram, jac)
    return gram
