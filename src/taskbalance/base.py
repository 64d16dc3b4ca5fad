"""The :class:`Balancer` base: task bookkeeping, loss validation, weights and state.

Every method in taskbalance is a :class:`Balancer`. The base class owns what is the
same for all of them, so that a method file only states its formula:

* tasks are declared once, by name (``{"depth": "regression", "seg": "classification"}``
  or ``["depth", "seg"]``) or by count (``3`` gives the names ``"0"``, ``"1"``, ``"2"``);
* losses arrive as a mapping by task name or as a sequence in declared order
  (``None`` in a sequence marks an absent task). A task absent from a call is left
  out of it: it gets no gradient and its statistics are not touched;
* every loss is checked (scalar, floating point, has a gradient, finite, and of the
  sign the method needs) with one host synchronisation per step at most, and the
  error names the task;
* :attr:`Balancer.weights` reports the weights used in the last step, detached:
  for every method, the weight of task *i* is ∂(total)/∂Lᵢ, the factor that
  multiplies task *i*'s gradient;
* ``state_dict``/``load_state_dict`` round-trip everything, non-tensor state included.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .absent import track
from .distributed import active_group, broadcast_seed, global_losses

__all__ = [
    "Balancer",
    "SeededGenerator",
    "LossInput",
    "TaskSpec",
    "TASK_TYPES",
    "InvalidLossError",
    "parse_tasks",
]

TASK_TYPES: tuple[str, ...] = ("regression", "classification")

TaskSpec = Mapping[str, str] | Sequence[str] | int
"""Tasks: a mapping ``name -> type``, a sequence of names, or a number of tasks."""

LossInput = Mapping[str, Tensor] | Sequence[Tensor | None] | Tensor
"""Losses: a mapping ``name -> scalar tensor``, a sequence in declared order, or a
stacked (K,) tensor in declared order."""

SignRule = Literal["any", "nonnegative", "positive"]

StepHook = Callable[["Balancer", dict[str, Tensor]], None]
"""A step hook: called with the balancer and its stats after every step."""


class InvalidLossError(ValueError):
    """A task loss that the balancer cannot use; the message names the task."""


def parse_tasks(tasks: TaskSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Normalise a task declaration into ``(names, types)``.

    A mapping gives each task's type (``"regression"`` or ``"classification"``); a
    sequence of names or a count declares regression tasks.

    Example:
        >>> parse_tasks({"depth": "regression", "seg": "classification"})
        (('depth', 'seg'), ('regression', 'classification'))
        >>> parse_tasks(2)
        (('0', '1'), ('regression', 'regression'))
    """
    if isinstance(tasks, bool):
        raise TypeError("tasks must be a mapping name -> type, a sequence of names or an int")
    if isinstance(tasks, int):
        if tasks < 1:
            raise ValueError(f"the number of tasks must be at least 1, got {tasks}")
        names: tuple[str, ...] = tuple(str(i) for i in range(tasks))
        return names, ("regression",) * tasks
    if isinstance(tasks, Mapping):
        names = tuple(tasks.keys())
        types = tuple(tasks.values())
    elif isinstance(tasks, AbstractSet):
        raise TypeError(
            f"tasks is a {type(tasks).__name__}, whose order changes from one process to the next "
            "(PYTHONHASHSEED), so losses given as a sequence would go to the wrong tasks: "
            f"pass a list or tuple, e.g. tasks={sorted(map(str, tasks))!r}"
        )
    elif isinstance(tasks, (str, bytes)) or not isinstance(tasks, Iterable):
        raise TypeError(
            f"tasks must be a mapping name -> type, a sequence of names or an int, got {type(tasks).__name__}"
        )
    else:
        names = tuple(tasks)
        types = ("regression",) * len(names)
    if not names:
        raise ValueError("at least one task must be declared")
    for name, kind in zip(names, types):
        if not isinstance(name, str) or not name:
            raise TypeError(f"task names must be non-empty strings, got {name!r}")
        if kind not in TASK_TYPES:
            raise ValueError(f"task {name!r} has type {kind!r}; expected one of {', '.join(TASK_TYPES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {list(names)}")
    return names, types


class SeededGenerator:
    """A method's own random generator, created on the device where it is first used.

    Seeded from ``seed`` (by default drawn from torch's global generator, so
    ``torch.manual_seed`` makes runs repeatable); :meth:`state` and :meth:`load`
    round-trip it through a balancer's ``state_dict``.

    Example:
        >>> g = SeededGenerator(seed=0)
        >>> a = torch.rand(2, generator=g.get(torch.device("cpu")))
        >>> saved = g.state()
        >>> b = torch.rand(2, generator=g.get(torch.device("cpu")))
        >>> g.load(saved)
        >>> torch.equal(b, torch.rand(2, generator=g.get(torch.device("cpu"))))
        True
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63
        ):
            raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
        self.seed = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else int(seed)
        self._gen: torch.Generator | None = None
        self._pending: tuple[str, Tensor] | None = None

    def get(self, device: torch.device) -> torch.Generator:
        """The generator on ``device`` (restoring a loaded state on first use)."""
        gen = self._gen
        if gen is None or gen.device != device:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            if self._pending is not None and self._pending[0] == device.type:
                gen.set_state(self._pending[1])
            self._pending = None
            self._gen = gen
        return gen

    def state(self) -> dict[str, Any]:
        """Seed, device type and generator state."""
        if self._gen is not None:
            return {"seed": self.seed, "device": self._gen.device.type, "state": self._gen.get_state()}
        pending = self._pending
        return {
            "seed": self.seed,
            "device": pending[0] if pending else None,
            "state": pending[1] if pending else None,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`; applied when the generator is next used."""
        self.seed = int(state["seed"])
        self._gen = None
        self._pending = (state["device"], state["state"]) if state["state"] is not None else None


_SIGN_TEXT = {"positive": "> 0", "nonnegative": ">= 0"}


class Balancer(nn.Module):
    r"""Base class of every balancing method.

    A subclass implements :meth:`_combine`, which maps the stacked losses of the tasks
    present in a call to the scalar training loss and the per-task weights
    :math:`w_i = \partial\,\text{total} / \partial L_i`.

    Args:
        tasks: a mapping ``name -> "regression" | "classification"``, a sequence of
            task names, or the number of tasks.
        check: validate losses (finite, and of the sign the method needs). The check
            costs one host synchronisation per step; turn it off under CUDA graphs
            or ``torch.compile``. Shape, dtype and gradient checks are always made.
        on_nonfinite: ``"raise"`` (default) raises :class:`InvalidLossError` on a NaN
            or infinite loss; ``"skip"`` skips the step instead, touching no state:
            :meth:`forward` returns a zero loss connected to nothing and
            :attr:`skipped` is ``True`` until the next call.
        sync_dist: under ``torch.distributed`` with more than one process, balance the
            global batch: losses (and, for gradient methods, per-task gradients) are
            reduced over ``process_group`` so that every rank computes the same weights
            and the run equals one process on the global batch (default ``True``; see
            :mod:`taskbalance.distributed`). ``False`` balances each rank on its shard.
            Under ``torch.no_grad()`` (evaluation) nothing is synchronised, so one rank
            may evaluate alone.
        process_group: the group to synchronise over (default: the whole world).

    Example:
        >>> import torch, taskbalance as tb
        >>> balancer = tb.create("equal", tasks=["a", "b"])
        >>> x = torch.ones(2, requires_grad=True)
        >>> balancer({"a": x[0] * 2, "b": x[1] * 3})
        tensor(5., grad_fn=<SumBackward0>)
        >>> {k: float(v) for k, v in balancer.weights.items()}
        {'a': 1.0, 'b': 1.0}
    """

    #: registry name, set by :func:`taskbalance.registry.register`
    name: ClassVar[str] = ""
    #: ``"loss"`` methods weight losses; ``"gradient"`` methods combine gradients
    kind: ClassVar[str] = "loss"
    #: which losses the objective stays bounded for
    sign_rule: SignRule = "any"
    #: why the sign is needed, completed by the error message
    sign_reason: str = ""

    def __init__(
        self,
        tasks: TaskSpec,
        *,
        check: bool = True,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        sync_dist: bool = True,
        process_group: Any = None,
    ) -> None:
        super().__init__()
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        self.task_names, self.task_types = parse_tasks(tasks)
        self.num_tasks = len(self.task_names)
        self.check = bool(check)
        self.on_nonfinite = on_nonfinite
        self._position = {n: i for i, n in enumerate(self.task_names)}
        self._index_cache: dict[tuple[tuple[int, ...], torch.device], Tensor] = {}
        self._last_names: tuple[str, ...] = ()
        self._last_weights: Tensor | None = None
        self.skipped = False
        self._step_hooks: OrderedDict[int, StepHook] = OrderedDict()
        self.sync_dist = bool(sync_dist)
        self.process_group = process_group
        self._seed_synced = False

    # ------------------------------------------------------------------ inputs
    def _number(
        self,
        name: str,
        value: Any,
        *,
        low: float | None = None,
        high: float | None = None,
        open_low: bool = False,
        open_high: bool = False,
    ) -> float:
        """``value`` as a finite float within the given bounds, or a ``ValueError``
        that names the method, the argument and its range."""
        lo = "" if low is None else f"{'>' if open_low else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if open_high else '<='} {high:g}"
        expected = " and ".join(x for x in (lo, hi) if x) or "finite"
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(v)
            and (low is None or (v > low if open_low else v >= low))
            and (high is None or (v < high if open_high else v <= high))
        )
        if not ok:
            method = self.name or type(self).__name__
            raise ValueError(f"{method}: {name} must be a finite number {expected}, got {value!r}")
        return v

    def _per_task(
        self,
        values: Mapping[str, float] | Sequence[float] | float | None,
        what: str,
        default: float | None = None,
    ) -> list[float]:
        """One finite number per declared task, from a mapping by task name, a sequence
        in declared order, one number for every task, or ``default`` when ``values`` is
        None; NaN and infinite values are refused with the task's name.
        """
        k = self.num_tasks
        if values is None:
            if default is None:
                raise ValueError(f"{what} must be given")
            out = [float(default)] * k
        elif isinstance(values, (int, float)) and not isinstance(values, bool):
            out = [float(values)] * k
        elif isinstance(values, Mapping):
            missing = [n for n in self.task_names if n not in values]
            unknown = [n for n in values if n not in self._position]
            if missing or unknown:
                raise ValueError(
                    f"{what} must name exactly the tasks {list(self.task_names)}; missing {missing}, "
                    f"unknown {unknown}"
                )
            out = [float(values[n]) for n in self.task_names]
        else:
            out = [float(v) for v in values]  # type: ignore[union-attr]
            if len(out) != k:
                raise ValueError(f"got {len(out)} {what} for {k} tasks")
        for n, v in zip(self.task_names, out):
            if not math.isfinite(v):
                raise ValueError(
                    f"{self.name or type(self).__name__}: {what} of task {n!r} must be finite, got {v}"
                )
        return out

    def _collect(self, losses: LossInput, need_grad: bool = True) -> tuple[list[str], list[Tensor]]:
        """Task names and tensors of the tasks present, in declared order, checked."""
        if isinstance(losses, Tensor) and losses.ndim == 1:  # stacked (K,), as in LibMTL and TorchJD
            losses = list(losses.unbind())
        if isinstance(losses, Mapping):
            unknown = [k for k in losses if k not in self._position]
            if unknown:
                raise KeyError(
                    f"unknown task {unknown[0]!r}: this {type(self).__name__} was declared "
                    f"with tasks {list(self.task_names)}"
                )
            present = [n for n in self.task_names if n in losses and losses[n] is not None]
            tensors = [losses[n] for n in present]
        elif isinstance(losses, (str, bytes)) or not isinstance(losses, Sequence):
            raise TypeError(
                "losses must be a mapping task -> scalar tensor or a sequence in "
                f"declared order, got {type(losses).__name__}"
            )
        else:
            if len(losses) != self.num_tasks:
                raise ValueError(
                    f"got {len(losses)} losses for {self.num_tasks} declared tasks "
                    f"{list(self.task_names)}; use None for an absent task"
                )
            present = [n for n, v in zip(self.task_names, losses) if v is not None]
            tensors = [v for v in losses if v is not None]
        if not present:
            raise ValueError("no task loss given: at least one task must be present")
        grad_on = need_grad and torch.is_grad_enabled()
        for n, t in zip(present, tensors):
            if not isinstance(t, Tensor):
                kind = type(t).__name__
                article = "an" if kind[:1].lower() in "aeiou" else "a"
                raise TypeError(f"loss of task {n!r} is {article} {kind}, not a tensor")
            if t.ndim != 0:
                raise InvalidLossError(
                    f"loss of task {n!r} has shape {tuple(t.shape)}; expected a scalar "
                    "(reduce it first, e.g. with .mean())"
                )
            if not t.is_floating_point():
                raise InvalidLossError(f"loss of task {n!r} has dtype {t.dtype}; expected floating point")
            if grad_on and not t.requires_grad:
                raise InvalidLossError(
                    f"loss of task {n!r} does not require grad (computed under no_grad or "
                    "from detached tensors): the balancer cannot train on it"
                )
        return present, tensors

    def _indices(self, present: Sequence[str], device: torch.device) -> Tensor | slice:
        """Index of the present tasks into per-task state (a slice when all are)."""
        if len(present) == self.num_tasks:
            return slice(None)
        key = (tuple(self._position[n] for n in present), device)
        idx = self._index_cache.get(key)
        if idx is None:
            idx = torch.tensor(key[0], dtype=torch.long, device=device)
            self._index_cache[key] = idx
        return idx

    @staticmethod
    def _take(state: Tensor, idx: Tensor | slice) -> Tensor:
        """Per-task ``state`` of the present tasks (``state`` itself when all are)."""
        return state if isinstance(idx, slice) else state[idx]

    def _validate_values(self, names: Sequence[str], values: Tensor) -> bool:
        """Return ``False`` to skip the step; raise on an invalid loss value.

        One device-to-host copy of the K loss values (the step's only host
        synchronisation) and a check in Python: fewer kernel launches than
        reducing on the device, and the offending task is at hand for the message.
        """
        if not self.check:
            return True
        vals = values.tolist()
        nonfinite = [n for n, v in zip(names, vals) if not math.isfinite(v)]
        if nonfinite:
            if self.on_nonfinite == "skip":
                return False
            v = vals[list(names).index(nonfinite[0])]
            raise InvalidLossError(
                f"loss of task {nonfinite[0]!r} is not finite ({v}); pass on_nonfinite='skip' "
                "to skip such steps without touching any state"
            )
        rule = self.sign_rule
        if rule == "any":
            return True
        for name, v in zip(names, vals):
            if v < 0 or (v == 0 and rule == "positive"):
                raise InvalidLossError(
                    f"loss of task {name!r} is {v:g}, but {type(self).__name__} needs "
                    f"losses {_SIGN_TEXT[rule]}: {self.sign_reason}"
                )
        return True

    def _group(self) -> Any:
        """The process group to balance over, or ``None`` (a single process)."""
        return active_group(self.process_group) if self.sync_dist else None

    def _global_values(self, names: Sequence[str], values: Tensor, idx: Tensor | slice) -> Tensor:
        """The losses of the global batch: under ``torch.distributed``, the mean over
        ranks as the value, with the gradient flowing into the local losses; otherwise
        ``values`` itself. Also gives the method's generator rank 0's seed once.
        """
        group = self._group()
        if group is None:
            return values
        if not self._seed_synced:
            gen = getattr(self, "generator", None)
            if isinstance(gen, SeededGenerator):
                seed = broadcast_seed(gen.seed, group)
                if seed != gen.seed:
                    gen.seed, gen._gen = seed, None
            self._seed_synced = True
        return global_losses(values, idx, self.task_names, group)

    def _prepare(self, losses: LossInput) -> tuple[list[str], Tensor, Tensor | slice] | None:
        """Validate and stack the losses; ``None`` when the step is skipped."""
        names, tensors = self._collect(losses)
        values = torch.stack(tensors)
        if values.dtype in (torch.float16, torch.bfloat16):
            # half-precision losses are combined in float32: 1/L, exp(-s)·L and the like
            # overflow or vanish in half precision; the gradient flows back in their dtype
            values = values.float()
        idx = self._indices(names, values.device)
        if torch.is_grad_enabled():  # evaluation needs no collective: a rank may evaluate alone
            values = self._global_values(names, values, idx)
        self.skipped = not self._validate_values(names, values.detach())
        if self.skipped:
            return None
        if torch.is_grad_enabled() and not torch.compiler.is_compiling() and self._per_task_parameters():
            self._note_present(names)
        return names, values, idx

    #: positions of the tasks present in a training call since the per-task parameters
    #: were last stepped (None: no call yet); see :mod:`taskbalance.absent`
    _present_since_step: set[int] | None = None

    def _per_task_parameters(self) -> list[nn.Parameter]:
        """The method's own parameters with one entry per task (first dimension K)."""
        return [p for p in self.parameters(recurse=False) if p.ndim >= 1 and p.shape[0] == self.num_tasks]

    def _note_present(self, names: Sequence[str]) -> None:
        """Record the tasks of this training call, so that an optimiser step leaves the
        parameters of the tasks absent from every call since the last one where they were."""
        if self._present_since_step is None:
            track(self)
            self._present_since_step = set()
        self._present_since_step.update(self._position[n] for n in names)

    # ----------------------------------------------------------------- compute
    def _combine(self, losses: Tensor, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        """Return ``(total, weights)`` for the stacked losses of the present tasks.

        ``idx`` indexes per-task state (parameters, buffers) of those tasks.
        """
        raise NotImplementedError

    def _updating(self) -> bool:
        """Whether this call may update running statistics (not under no_grad)."""
        return torch.is_grad_enabled()

    def forward(self, losses: LossInput) -> Tensor:
        """Combine the task losses into the scalar training loss.

        Under ``torch.no_grad()`` (evaluation) no statistic, random stream or reported
        weight changes: :attr:`weights` keeps the last training step's.

        Args:
            losses: a mapping ``task -> scalar loss`` or a sequence in declared order.

        Returns:
            The scalar loss to backpropagate. When ``on_nonfinite="skip"`` and a loss
            is not finite, a zero that depends on nothing (check :attr:`skipped`).
        """
        prepared = self._prepare(losses)
        if prepared is None:
            given = losses.values() if isinstance(losses, Mapping) else losses
            first = next(t for t in given if t is not None)
            return torch.zeros((), dtype=first.dtype, device=first.device, requires_grad=True)
        names, values, idx = prepared
        total, weights = self._combine(values, idx)
        if not self._updating():  # evaluation leaves what training reports untouched
            return total
        self._last_names = tuple(names)
        self._last_weights = weights.detach()
        if self._step_hooks:
            self._run_step_hooks({})
        return total

    def backward(
        self,
        losses: LossInput,
        shared_params: Iterable[Tensor] | None = None,
        features: Tensor | Sequence[Tensor] | None = None,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> Tensor:
        """Backpropagate the balanced objective; works for every method.

        For loss-based methods this is ``self(losses).backward()`` (or
        ``scaler.scale(self(losses)).backward()`` with a ``GradScaler``): every
        parameter, shared or task-specific, gets the gradient of the weighted total, so
        ``shared_params`` and ``features`` are accepted and not needed.

        With an enabled ``scaler``, the state before the step is kept so that
        :meth:`undo_step` (called by :func:`taskbalance.amp.step` when the scaler skips
        the step on an overflow) can restore it: an overflow touches no state.

        Returns:
            The total loss, detached.
        """
        if scaler is not None and scaler.is_enabled():
            self._before_step = copy.deepcopy(self.state_dict())
        total: Tensor = self(losses)
        if not self.skipped:
            torch.autograd.backward(scaler.scale(total) if scaler is not None else total)
        return total.detach()

    def undo_step(self) -> None:
        """Restore the state from before the last ``backward(..., scaler=...)`` step.

        For a step that a ``GradScaler`` skipped on an overflow: the statistics the
        step recorded (DWA's epoch sums, STCH's nadir, FAMO's losses, RLW's random
        stream) are put back, and :attr:`skipped` is set, so that :meth:`after_step`
        does nothing. :func:`taskbalance.amp.step` calls it when given the balancer.

        Example:
            >>> import torch, taskbalance as tb
            >>> b = tb.create("rlw", tasks=2, seed=0)
            >>> scaler = torch.amp.GradScaler("cpu")
            >>> x = torch.ones(2, requires_grad=True)
            >>> _ = b.backward(list(x.unbind()), scaler=scaler)
            >>> b.undo_step()  # as if the overflowed step never happened
            >>> b.skipped
            True
        """
        if self._before_step is None:
            raise RuntimeError("undo_step() needs a previous backward(..., scaler=...) step")
        self.load_state_dict(self._before_step)
        self._before_step = None
        self.skipped = True

    _before_step: dict[str, Any] | None = None

    # ------------------------------------------------------------------ output
    @property
    def weights(self) -> dict[str, Tensor]:
        """Weights used in the last step, by task, as detached 0-d tensors.

        The weight of task *i* is ∂(total)/∂Lᵢ. Tasks absent from the last call
        are absent here. Empty before the first call.
        """
        if self._last_weights is None:
            return {}
        return dict(zip(self._last_names, self._last_weights.unbind()))

    def param_groups(self, lr: float = 1e-2, **options: Any) -> list[dict[str, Any]]:
        """Optimiser parameter groups for the method's own learnable parameters.

        Weight decay is 0: decaying log-variances or scales would bias them towards
        their initial value. Empty for methods without parameters.

        Example:
            >>> import torch, taskbalance as tb
            >>> b = tb.create("uw", tasks=2)
            >>> opt = torch.optim.Adam([*b.param_groups(lr=1e-2)])
            >>> opt.param_groups[0]["weight_decay"]
            0.0
        """
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        return [{"params": params, "lr": lr, **options, "weight_decay": 0.0}]

    # ------------------------------------------------------------------- hooks
    def register_step_hook(self, hook: StepHook) -> RemovableHandle:
        """Call ``hook(balancer, stats)`` after every step that was not skipped.

        ``stats`` maps names to detached 0-d tensors (see :mod:`taskbalance.monitor`):
        ``weight/<task>`` always, ``sigma/<task>`` for the uncertainty methods,
        ``grad_norm/<task>`` and ``cosine/<a>,<b>`` for gradient methods. Returns a
        handle whose ``remove()`` unregisters the hook.

        Example:
            >>> import torch, taskbalance as tb
            >>> b = tb.create("equal", tasks=["a", "b"])
            >>> h = b.register_step_hook(lambda _, s: print({k: float(v) for k, v in s.items()}))
            >>> _ = b({"a": torch.ones((), requires_grad=True), "b": torch.ones((), requires_grad=True)})
            {'weight/a': 1.0, 'weight/b': 1.0}
        """
        handle = RemovableHandle(self._step_hooks)
        self._step_hooks[handle.id] = hook
        return handle

    def _stats(self) -> dict[str, Tensor]:
        """Method-specific values for the step hooks (e.g. ``sigma/<task>``)."""
        return {}

    def _run_step_hooks(self, extra: Mapping[str, Tensor]) -> None:
        stats = {f"weight/{n}": w for n, w in self.weights.items()}
        stats.update(self._stats())
        stats.update(extra)
        for hook in list(self._step_hooks.values()):
            hook(self, stats)

    def epoch_end(self) -> None:
        """Hook: call once at the end of every training epoch (no-op by default).

        Methods with per-epoch statistics (``dwa``, ``stch``) close the epoch here.
        """

    def after_step(self, losses: LossInput) -> None:
        """Hook: call after ``optimizer.step()`` with the losses re-evaluated on the
        same batch (no-op by default). ``famo`` updates its task logits here.
        """

    # ------------------------------------------------------------------- state
    def _extra_state(self) -> dict[str, Any]:
        """Non-tensor state of a subclass, saved in ``state_dict`` (a method's
        :class:`SeededGenerator`, kept as ``self.generator``, is saved by the base)."""
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved."""

    def get_extra_state(self) -> dict[str, Any]:
        """Everything that is not a parameter or buffer (part of ``state_dict``)."""
        return {
            "tasks": list(self.task_names),
            "task_types": list(self.task_types),
            "last_names": list(self._last_names),
            "last_weights": self._last_weights,
            "method": self._extra_state(),
            "generator": gen.state()
            if isinstance(gen := getattr(self, "generator", None), SeededGenerator)
            else None,
        }

    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state` (copied: the balancer never shares a tensor
        with the state dict it was loaded from); the declared tasks and their types
        must match."""
        state = copy.deepcopy(state)
        if list(state["tasks"]) != list(self.task_names):
            raise ValueError(
                f"state was saved for tasks {state['tasks']}, this balancer has {list(self.task_names)}"
            )
        saved_types = state.get("task_types")  # absent in checkpoints of 0.1.0
        if saved_types is not None and list(saved_types) != list(self.task_types):
            diff = [
                f"{n!r}: saved {a!r}, declared {b!r}"
                for n, a, b in zip(self.task_names, saved_types, self.task_types)
                if a != b
            ]
            raise ValueError(
                f"state was saved for other task types ({'; '.join(diff)}): declare the tasks "
                "with the types they were trained with"
            )
        self._last_names = tuple(state["last_names"])
        self._last_weights = state["last_weights"]
        self._load_extra_state(state["method"])
        gen = getattr(self, "generator", None)
        if isinstance(gen, SeededGenerator) and state["generator"] is not None:
            gen.load(state["generator"])

    def extra_repr(self) -> str:
        return f"tasks={list(self.task_names)}"

    #: keyword arguments that make the method ready for a short generic run (the bench, the
    #: tests, the benchmark scripts), merged under the caller's own; empty where the
    #: defaults already are. One source for every such run, e.g. STCH's one-epoch warm-up.
    bench_kwargs: ClassVar[Mapping[str, Any]] = {}
