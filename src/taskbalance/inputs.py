"""What a balancer is given: its tasks, its hyper-parameters and its losses, checked.

Every check raises with a one-line message that names the task or the argument and
says what to do; :class:`~taskbalance.Balancer` calls these, and a method calls
:meth:`~taskbalance.Balancer._number` and :meth:`~taskbalance.Balancer._per_task`
for its own hyper-parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "TASK_TYPES",
    "TaskSpec",
    "LossInput",
    "SignRule",
    "InvalidLossError",
    "parse_tasks",
    "check_number",
    "per_task",
    "collect_losses",
    "stack_losses",
    "check_values",
]

TASK_TYPES: tuple[str, ...] = ("regression", "classification")

TaskSpec = Mapping[str, str] | Sequence[str] | int
"""Tasks: a mapping ``name -> type``, a sequence of names, or a number of tasks."""

LossInput = Mapping[str, Tensor] | Sequence[Tensor | None] | Tensor
"""Losses: a mapping ``name -> scalar tensor``, a sequence in declared order, or a
stacked (K,) tensor in declared order."""

SignRule = Literal["any", "nonnegative", "positive"]


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


def check_number(
    method: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a finite float within the given bounds, or a ``ValueError``
    that names the method, the argument and its range.

    Example:
        >>> check_number("dwa", "temperature", 2, low=0, open_low=True)
        2.0
    """
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
        raise ValueError(f"{method}: {name} must be a finite number {expected}, got {value!r}")
    return v


def per_task(
    method: str,
    task_names: Sequence[str],
    values: Mapping[str, float] | Sequence[float] | float | None,
    what: str,
    default: float | None = None,
) -> list[float]:
    """One finite number per declared task, from a mapping by task name, a sequence
    in declared order, one number for every task, or ``default`` when ``values`` is
    None; NaN and infinite values are refused with the task's name.

    Example:
        >>> per_task("static", ["a", "b"], {"b": 2, "a": 1}, "weights")
        [1.0, 2.0]
    """
    k = len(task_names)
    if values is None:
        if default is None:
            raise ValueError(f"{what} must be given")
        out = [float(default)] * k
    elif isinstance(values, (int, float)) and not isinstance(values, bool):
        out = [float(values)] * k
    elif isinstance(values, Mapping):
        missing = [n for n in task_names if n not in values]
        unknown = [n for n in values if n not in task_names]
        if missing or unknown:
            raise ValueError(
                f"{what} must name exactly the tasks {list(task_names)}; missing {missing}, unknown {unknown}"
            )
        out = [float(values[n]) for n in task_names]
    else:
        out = [float(v) for v in values]  # type: ignore[union-attr]
        if len(out) != k:
            raise ValueError(f"got {len(out)} {what} for {k} tasks")
    for n, v in zip(task_names, out):
        if not math.isfinite(v):
            raise ValueError(f"{method}: {what} of task {n!r} must be finite, got {v}")
    return out


def collect_losses(
    owner: str, task_names: Sequence[str], losses: LossInput, need_grad: bool = True
) -> tuple[list[str], list[Tensor]]:
    """Task names and tensors of the tasks present, in declared order, checked: a
    mapping by task name, a sequence in declared order (``None`` for an absent task) or
    a stacked (K,) tensor; every loss a floating-point scalar with a gradient when
    ``need_grad`` and grad mode is on. ``owner`` names the balancer in messages.

    Example:
        >>> import torch
        >>> collect_losses("EqualWeighting", ["a", "b"], {"b": torch.tensor(1.0)}, need_grad=False)
        (['b'], [tensor(1.)])
    """
    if isinstance(losses, Tensor) and losses.ndim == 1:  # stacked (K,), as in LibMTL and TorchJD
        losses = list(losses.unbind())
    if isinstance(losses, Mapping):
        unknown = [k for k in losses if k not in task_names]
        if unknown:
            raise KeyError(
                f"unknown task {unknown[0]!r}: this {owner} was declared with tasks {list(task_names)}"
            )
        present = [n for n in task_names if n in losses and losses[n] is not None]
        tensors = [losses[n] for n in present]
    elif isinstance(losses, (str, bytes)) or not isinstance(losses, Sequence):
        raise TypeError(
            "losses must be a mapping task -> scalar tensor or a sequence in "
            f"declared order, got {type(losses).__name__}"
        )
    else:
        if len(losses) != len(task_names):
            raise ValueError(
                f"got {len(losses)} losses for {len(task_names)} declared tasks "
                f"{list(task_names)}; use None for an absent task"
            )
        present = [n for n, v in zip(task_names, losses) if v is not None]
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


def stack_losses(tensors: Sequence[Tensor]) -> Tensor:
    """The losses of :func:`collect_losses` as one (K,) tensor, in float32 when they are
    half precision: 1/L, exp(-s)·L and the like overflow or vanish in float16 (the
    gradient flows back in the losses' dtype).

    Example:
        >>> import torch
        >>> stack_losses([torch.tensor(1.0, dtype=torch.float16), torch.tensor(2.0, dtype=torch.float16)])
        tensor([1., 2.])
    """
    values = torch.stack(list(tensors))
    return values.float() if values.dtype in (torch.float16, torch.bfloat16) else values


_SIGN_TEXT = {"positive": "> 0", "nonnegative": ">= 0"}


def check_values(
    owner: str,
    names: Sequence[str],
    values: Tensor,
    *,
    rule: SignRule = "any",
    reason: str = "",
    skip_nonfinite: bool = False,
) -> bool:
    """Return ``False`` to skip the step (a non-finite loss with ``skip_nonfinite``);
    raise :class:`InvalidLossError`, naming the task, on a non-finite loss or one of
    the wrong sign for ``rule``.

    One device-to-host copy of the K loss values (the step's only host
    synchronisation) and a check in Python: fewer kernel launches than
    reducing on the device, and the offending task is at hand for the message.

    Example:
        >>> import torch
        >>> check_values("DWA", ["a"], torch.tensor([2.0]), rule="positive")
        True
    """
    vals = values.tolist()
    nonfinite = [n for n, v in zip(names, vals) if not math.isfinite(v)]
    if nonfinite:
        if skip_nonfinite:
            return False
        v = vals[list(names).index(nonfinite[0])]
        raise InvalidLossError(
            f"loss of task {nonfinite[0]!r} is not finite ({v}); pass on_nonfinite='skip' "
            "to skip such steps without touching any state"
        )
    if rule == "any":
        return True
    for name, v in zip(names, vals):
        if v < 0 or (v == 0 and rule == "positive"):
            raise InvalidLossError(
                f"loss of task {name!r} is {v:g}, but {owner} needs losses {_SIGN_TEXT[rule]}: {reason}"
            )
    return True
