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
  error names the task; a gradient method also checks that the task gradients are
  finite (one more synchronisation) before any of its state takes them in;
* :attr:`Balancer.weights` reports the weights used in the last step, detached:
  for every method, the weight of task *i* is ∂(total)/∂Lᵢ, the factor that
  multiplies task *i*'s gradient;
* ``state_dict``/``load_state_dict`` round-trip everything, non-tensor state included.
"""

from __future__ import annotations

import abc
import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .absent import track
from .distributed import active_group, broadcast_seed, global_losses
from .inputs import (
    TASK_TYPES,
    InvalidLossError,
    LossInput,
    SignRule,
    TaskSpec,
    check_number,
    check_values,
    collect_losses,
    parse_tasks,
    per_task,
    stack_losses,
)
from .state import Mode, Step

__all__ = [
    "Balancer",
    "SeededGenerator",
    "Step",
    "LossInput",
    "TaskSpec",
    "TASK_TYPES",
    "InvalidLossError",
    "SignRule",
    "parse_tasks",
]

StepHook = Callable[["Balancer", dict[str, Tensor]], None]
"""A step hook: called with the balancer and its stats after every step."""


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


class Balancer(nn.Module, metaclass=abc.ABCMeta):
    r"""Base class of every balancing method.

    A method implements one abstract method, :meth:`_combine` (loss-based methods), or
    ``_weights`` / ``_aggregate`` of :class:`~taskbalance.gradient.GradientBalancer`
    (gradient-based ones); everything else is optional. The extension points:

    * ``_combine(losses, step)``: the stacked losses of the tasks present, to the
      scalar training loss and the per-task weights
      :math:`w_i = \partial\,\text{total} / \partial L_i`;
    * :meth:`add_state` in ``__init__``: per-task tensors, random generators and
      other values, read and written in a call through its :class:`Step`
      (``step.get``/``step.set``), which handles the present tasks, evaluation and
      checkpointing;
    * :meth:`_number` and :meth:`_per_task`: validated hyper-parameters;
    * the class attributes :attr:`sign_rule` and :attr:`sign_reason` (losses of which
      sign the method needs), and :meth:`_validate_values` for a further check;
    * :meth:`epoch_end` and :meth:`after_step`, the public hooks of the training loop;
    * :meth:`_stats` (values for the step hooks) and :meth:`_on_load` (derived state
      to rebuild after ``load_state_dict``).

    Args:
        tasks: a mapping ``name -> "regression" | "classification"``, a sequence of
            task names, or the number of tasks.
        check: validate losses (finite, and of the sign the method needs) and, for a
            gradient method, the task gradients (finite). The check costs a host
            synchronisation per step (two for a gradient method); turn it off under
            CUDA graphs or ``torch.compile``. Shape, dtype and gradient checks are
            always made.
        on_nonfinite: ``"raise"`` (default) raises :class:`InvalidLossError` on a NaN
            or infinite loss; ``"skip"`` skips the step instead, touching no state:
            :meth:`forward` returns a zero loss connected to nothing and
            :attr:`skipped` is ``True`` until the next call. NaN or infinite task
            gradients under finite losses raise ``ValueError`` either way (a
            ``GradScaler`` step skips them instead: see ``backward``'s ``scaler``).
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
        self._state_dims: dict[str, tuple[int, ...]] = {}
        self._generators: dict[str, SeededGenerator] = {}
        self._values: list[str] = []

    # ------------------------------------------------------------------- state
    def add_state(
        self, name: str, default: Any, *, task_dims: Sequence[int] = (0,), persistent: bool = True
    ) -> Any:
        """Declare state of the method, once, in ``__init__``; returns what was declared.

        * a tensor is registered as a buffer ``self.<name>`` with one entry per task
          along each of ``task_dims`` (``()`` for state that is not per task); a call
          reads and writes the present tasks' entries with ``step.get(name)`` and
          ``step.set(name, value)`` (see :class:`Step`). ``persistent=False`` keeps it
          out of ``state_dict`` (state derived from the rest: rebuild it in
          :meth:`_on_load`);
        * a :class:`SeededGenerator` becomes ``self.<name>``: saved in ``state_dict``
          and given rank 0's seed under ``torch.distributed``;
        * any other value becomes the attribute ``self.<name>``, saved in
          ``state_dict`` as it is (a step count, a flag, a list).

        Example:
            >>> import torch, taskbalance as tb
            >>> b = tb.create("equal", tasks=2)
            >>> b.add_state("seen", torch.zeros(2)).tolist()
            [0.0, 0.0]
            >>> "seen" in b.state_dict()
            True
        """
        if name in self._state_dims or name in self._generators or name in self._values:
            raise ValueError(f"{type(self).__name__}: state {name!r} is declared twice")
        if isinstance(default, Tensor):
            dims = tuple(task_dims)
            for d in dims:
                if default.shape[d] != self.num_tasks:
                    raise ValueError(
                        f"{type(self).__name__}: state {name!r} has shape {tuple(default.shape)}; "
                        f"dimension {d} must have one entry per task ({self.num_tasks})"
                    )
            self.register_buffer(name, default, persistent=persistent)
            self._state_dims[name] = dims
        elif isinstance(default, SeededGenerator):
            self._generators[name] = default
            setattr(self, name, default)
        else:
            self._values.append(name)
            setattr(self, name, default)
        return default

    def _state_tensor(self, name: str) -> Tensor:
        buf = self._buffers.get(name)
        if buf is None:
            raise KeyError(f"{type(self).__name__} has no declared tensor state {name!r}")
        return buf

    # ------------------------------------------------------------------ inputs
    def _number(self, name: str, value: Any, **bounds: Any) -> float:
        """Hyper-parameter ``name`` as a finite float within ``bounds`` (``low``,
        ``high``, ``open_low``, ``open_high``), or a one-line ``ValueError`` naming the
        method, the argument and its range (:func:`~taskbalance.inputs.check_number`)."""
        return check_number(self.name or type(self).__name__, name, value, **bounds)

    def _per_task(
        self,
        values: Mapping[str, float] | Sequence[float] | float | None,
        what: str,
        default: float | None = None,
    ) -> list[float]:
        """One finite number per declared task (:func:`~taskbalance.inputs.per_task`)."""
        return per_task(self.name or type(self).__name__, self.task_names, values, what, default)

    def _collect(self, losses: LossInput, need_grad: bool = True) -> tuple[list[str], list[Tensor]]:
        """Task names and tensors of the tasks present, in declared order, checked."""
        return collect_losses(type(self).__name__, self.task_names, losses, need_grad)

    def _validate_values(self, names: Sequence[str], values: Tensor) -> bool:
        """Return ``False`` to skip the step; raise on an invalid loss value.

        One device-to-host copy of the K loss values (the step's only host
        synchronisation). A method with a further condition on its losses extends this.
        """
        return self._check_losses(names, values, self.sign_rule, self.sign_reason)

    def _check_losses(self, names: Sequence[str], values: Tensor, rule: SignRule, reason: str) -> bool:
        """:func:`~taskbalance.inputs.check_values` with this balancer's settings (nothing
        when ``check`` is off): for a method whose sign rule depends on its options."""
        if not self.check:
            return True
        return check_values(
            type(self).__name__,
            names,
            values,
            rule=rule,
            reason=reason,
            skip_nonfinite=self.on_nonfinite == "skip",
        )

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

    def _group(self) -> Any:
        """The process group to balance over, or ``None`` (a single process)."""
        return active_group(self.process_group) if self.sync_dist else None

    def _global_values(self, values: Tensor, idx: Tensor | slice) -> Tensor:
        """The losses of the global batch: under ``torch.distributed``, the mean over
        ranks as the value, with the gradient flowing into the local losses; otherwise
        ``values`` itself. Also gives the method's generator rank 0's seed once.
        """
        group = self._group()
        if group is None:
            return values
        if not self._seed_synced:
            for gen in self._generators.values():
                seed = broadcast_seed(gen.seed, group)
                if seed != gen.seed:
                    gen.seed, gen._gen = seed, None
            self._seed_synced = True
        return global_losses(values, idx, self.task_names, group)

    def _prepare(self, losses: LossInput, mode: Mode = "loss") -> tuple[Step, Tensor] | None:
        """Validate and stack the losses: the call's :class:`Step` and the stacked
        losses of the present tasks (global ones under torch.distributed); ``None``
        when the step is skipped."""
        names, tensors = self._collect(losses)
        values = stack_losses(tensors)
        idx = self._indices(names, values.device)
        if torch.is_grad_enabled():  # evaluation needs no collective: a rank may evaluate alone
            values = self._global_values(values, idx)
        self.skipped = not self._validate_values(names, values.detach())
        if self.skipped:
            return None
        if torch.is_grad_enabled() and not torch.compiler.is_compiling() and self._per_task_parameters():
            self._note_present(names)
        return Step(self, tuple(names), idx, torch.is_grad_enabled(), mode), values

    def _prepare_after(self, losses: LossInput) -> tuple[Step, Tensor] | None:
        """For an :meth:`after_step` hook: the losses re-evaluated on the batch of the
        last step (detached, global under torch.distributed, checked) and a :class:`Step`
        that may update state; ``None`` when the last step or this one is skipped."""
        if self.skipped:
            return None
        if self._last_weights is None:
            raise RuntimeError(f"{type(self).__name__}.after_step() called before any forward/backward step")
        names, tensors = self._collect(losses, need_grad=False)
        if tuple(names) != self._last_names:
            missing = sorted(set(self._last_names) ^ set(names))
            raise ValueError(
                f"after_step needs the same tasks as the last step; task {missing[0]!r} differs "
                f"(last step: {list(self._last_names)}, given: {names})"
            )
        new = torch.stack(tensors).detach()
        idx = self._indices(names, new.device)
        new = self._global_values(new, idx)
        if not self._validate_values(names, new):
            return None
        return Step(self, tuple(names), idx, True), new

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
    @abc.abstractmethod
    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        """Return ``(total, weights)`` for the stacked losses of the present tasks.

        ``step`` says which tasks are present and whether statistics may be updated,
        and reads and writes the declared state (:meth:`add_state`).
        """

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
        step, values = prepared
        total, weights = self._combine(values, step)
        if not step.updating:  # evaluation leaves what training reports untouched
            return total
        self._last_names = step.names
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
        del shared_params, features  # accepted so that one call works for every method
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
    def _on_load(self) -> None:
        """Hook: rebuild derived state after ``load_state_dict`` (no-op by default)."""

    def get_extra_state(self) -> dict[str, Any]:
        """Everything that is not a parameter or buffer (part of ``state_dict``)."""
        return {
            "tasks": list(self.task_names),
            "task_types": list(self.task_types),
            "last_names": list(self._last_names),
            "last_weights": self._last_weights,
            "method": {name.lstrip("_"): getattr(self, name) for name in self._values},
            "generator": next((g.state() for g in self._generators.values()), None),
            "generators": {name: g.state() for name, g in list(self._generators.items())[1:]},
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
        saved = state["method"]
        for name in self._values:
            key = name.lstrip("_")
            if key in saved:
                setattr(self, name, saved[key])
        gens = list(self._generators.values())
        if gens and state["generator"] is not None:
            gens[0].load(state["generator"])
        others = state.get("generators", {})  # absent in checkpoints of 0.1.0
        for name, gen in list(self._generators.items())[1:]:
            if name in others:
                gen.load(others[name])
        self._on_load()

    def extra_repr(self) -> str:
        return f"tasks={list(self.task_names)}"

    #: keyword arguments that make the method ready for a short generic run (the bench, the
    #: tests, the benchmark scripts), merged under the caller's own; empty where the
    #: defaults already are. One source for every such run, e.g. STCH's one-epoch warm-up.
    bench_kwargs: ClassVar[Mapping[str, Any]] = {}
