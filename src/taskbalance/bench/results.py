"""The bench's results, typed: one trained cell, and the summary over seeds that the
reports print.

Each type reads and writes the JSON the bench has always written (``to_dict`` and
``from_dict``): a cell file ``cells/PROBLEM/METHOD/seedS.json`` is a :class:`CellResult`
with its configuration under ``"config"``, and ``results.json`` is a
:class:`BenchResults`.

Example:
    >>> cell = CellResult(
    ...     metrics={"a": 0.5}, loss_curves={"a": [1.0, 0.5]}, weights={"a": [1.0, 1.0]},
    ...     sigma={}, time_per_step=0.002, steps=20)
    >>> CellResult.from_dict(cell.to_dict(), tasks=["a"]) == cell
    True
    >>> mean_std([1.0, 2.0, 3.0])
    MeanStd(mean=2.0, std=1.0)
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .problems import Metric

__all__ = [
    "MeanStd",
    "mean_std",
    "CellResult",
    "CellConfig",
    "MethodSummary",
    "ProblemSummary",
    "RunConfig",
    "BenchResults",
]


@dataclass(frozen=True)
class MeanStd:
    """A mean over seeds and its standard deviation (0 for one seed).

    Example:
        >>> MeanStd.from_dict({"mean": 1.5, "std": 0.25}).to_dict()
        {'mean': 1.5, 'std': 0.25}
    """

    mean: float
    std: float

    def to_dict(self) -> dict[str, float]:
        """``{"mean": ..., "std": ...}``, as the JSON files hold it."""
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MeanStd:
        """The inverse of :meth:`to_dict`."""
        return cls(_number(d["mean"], "mean"), _number(d["std"], "std"))


def mean_std(values: Sequence[float]) -> MeanStd:
    """Mean ± std over seeds (std 0 for one value).

    Example:
        >>> mean_std([0.5])
        MeanStd(mean=0.5, std=0.0)
    """
    return MeanStd(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return value


def _table(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a mapping, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class CellResult:
    """One trained model (one method, problem and seed) and its test metrics.

    ``loss_curves`` and ``weights`` hold each task's per-epoch mean training loss and
    weight; ``sigma`` the learned σ of an uncertainty method (empty otherwise);
    ``time_per_step`` is in seconds.
    """

    metrics: dict[str, float]
    loss_curves: dict[str, list[float]]
    weights: dict[str, list[float]]
    sigma: dict[str, float]
    time_per_step: float
    steps: int

    def to_dict(self) -> dict[str, Any]:
        """The cell's JSON (the caller adds its ``"config"``)."""
        return {
            "metrics": dict(self.metrics),
            "loss_curves": {t: list(v) for t, v in self.loss_curves.items()},
            "weights": {t: list(v) for t, v in self.weights.items()},
            "sigma": dict(self.sigma),
            "time_per_step": self.time_per_step,
            "steps": self.steps,
        }

    @classmethod
    def from_dict(cls, d: object, tasks: Sequence[str] | None = None) -> CellResult:
        """Read :meth:`to_dict`'s JSON (extra keys such as ``"config"`` are ignored);
        :class:`ValueError` for anything damaged, or metrics for other ``tasks``."""
        cell = _table(d, "a cell")
        metrics = _table(cell.get("metrics"), "metrics")
        if tasks is not None and set(metrics) != set(tasks):
            raise ValueError(f"the cell has metrics for {sorted(metrics)}, not for {sorted(tasks)}")
        steps = cell.get("steps")
        if not isinstance(steps, int):
            raise ValueError(f"steps must be an integer, got {steps!r}")
        return cls(
            metrics={t: _number(v, f"metric {t!r}") for t, v in metrics.items()},
            loss_curves=_table(cell.get("loss_curves"), "loss_curves"),
            weights=_table(cell.get("weights"), "weights"),
            sigma=_table(cell.get("sigma"), "sigma"),
            time_per_step=_number(cell.get("time_per_step"), "time_per_step"),
            steps=steps,
        )


@dataclass(frozen=True)
class CellConfig:
    """What a bench cell was trained with: a finished cell is reused only for the same.

    Example:
        >>> CellConfig("noisy-scales", "uw", 0, 15, False, None).to_dict()
        {'problem': 'noisy-scales', 'method': 'uw', 'seed': 0, 'epochs': 15, 'quick': False, 'arch': None}
    """

    problem: str
    method: str
    seed: int
    epochs: int
    quick: bool
    arch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``"config"`` of the cell's JSON."""
        return asdict(self)


@dataclass(frozen=True)
class MethodSummary:
    """One method on one problem over the seeds: a row of the report.

    ``delta_stl`` and ``delta_equal`` are Δm% against the single-task models and against
    equal weighting, paired by seed (``delta_equal`` is ``None`` when equal weighting
    was not run); ``weights`` and ``loss_curves`` are per-epoch means over seeds, and
    ``time_per_step`` the median over seeds (the first cells of a run also pay its
    start-up).
    """

    metrics: dict[str, MeanStd]
    delta_stl: MeanStd
    time_per_step: float
    sigma: dict[str, MeanStd] = field(default_factory=dict)
    weights: dict[str, list[float]] = field(default_factory=dict)
    loss_curves: dict[str, list[float]] = field(default_factory=dict)
    delta_equal: MeanStd | None = None

    def to_dict(self) -> dict[str, Any]:
        """The method's entry of ``results.json``."""
        out: dict[str, Any] = {
            "metrics": {t: v.to_dict() for t, v in self.metrics.items()},
            "delta_stl": self.delta_stl.to_dict(),
            "time_per_step": self.time_per_step,
            "sigma": {t: v.to_dict() for t, v in self.sigma.items()},
            "weights": {t: list(v) for t, v in self.weights.items()},
            "loss_curves": {t: list(v) for t, v in self.loss_curves.items()},
        }
        if self.delta_equal is not None:
            out["delta_equal"] = self.delta_equal.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MethodSummary:
        """The inverse of :meth:`to_dict` (the curves may be absent: a committed results
        file may be trimmed to the tables)."""
        return cls(
            metrics={t: MeanStd.from_dict(v) for t, v in d["metrics"].items()},
            delta_stl=MeanStd.from_dict(d["delta_stl"]),
            time_per_step=_number(d["time_per_step"], "time_per_step"),
            sigma={t: MeanStd.from_dict(v) for t, v in d.get("sigma", {}).items()},
            weights={t: list(v) for t, v in d.get("weights", {}).items()},
            loss_curves={t: list(v) for t, v in d.get("loss_curves", {}).items()},
            delta_equal=MeanStd.from_dict(d["delta_equal"]) if "delta_equal" in d else None,
        )


@dataclass(frozen=True)
class ProblemSummary:
    """Every method on one problem: a table of the report.

    ``true_sigma`` is each task's known noise std, where the problem has one.
    """

    description: str
    metrics: dict[str, Metric]
    methods: dict[str, MethodSummary]
    seeds: int
    true_sigma: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The problem's entry of ``results.json``."""
        return {
            "description": self.description,
            "metrics": {
                t: {"name": m.name, "higher_is_better": m.higher_is_better} for t, m in self.metrics.items()
            },
            "true_sigma": dict(self.true_sigma),
            "methods": {m: row.to_dict() for m, row in self.methods.items()},
            "seeds": self.seeds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProblemSummary:
        """The inverse of :meth:`to_dict` (``seeds`` absent: one)."""
        return cls(
            description=d["description"],
            metrics={t: Metric(m["name"], m["higher_is_better"]) for t, m in d["metrics"].items()},
            methods={m: MethodSummary.from_dict(row) for m, row in d["methods"].items()},
            seeds=int(d.get("seeds", 1)),
            true_sigma=dict(d.get("true_sigma") or {}),
        )


@dataclass(frozen=True)
class RunConfig:
    """What a ``taskbalance bench`` run was asked for (``epochs`` ``None``: each
    problem's own)."""

    problems: list[str]
    methods: list[str]
    seeds: list[int]
    epochs: int | None
    quick: bool
    arch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``"config"`` of ``results.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """The inverse of :meth:`to_dict` (``arch`` may be absent: runs before it existed)."""
        return cls(
            list(d["problems"]), list(d["methods"]), list(d["seeds"]), d["epochs"], d["quick"], d.get("arch")
        )


@dataclass(frozen=True)
class BenchResults:
    """A whole run: each problem's summary (keyed ``problem`` or ``problem@arch``) and
    the run's configuration; ``results.json`` holds :meth:`to_dict`."""

    problems: dict[str, ProblemSummary]
    config: RunConfig

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``results.json``."""
        return {
            "problems": {p: s.to_dict() for p, s in self.problems.items()},
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchResults:
        """Read ``results.json``.

        Example:
            >>> row = MethodSummary({"a": MeanStd(0.5, 0.0)}, MeanStd(0.0, 0.0), 0.001)
            >>> res = BenchResults(
            ...     {"p": ProblemSummary("a problem", {"a": Metric("rmse", False)}, {"uw": row}, seeds=1)},
            ...     RunConfig(["p"], ["uw"], [0], None, True))
            >>> BenchResults.from_dict(res.to_dict()) == res
            True
        """
        return cls(
            problems={p: ProblemSummary.from_dict(s) for p, s in d["problems"].items()},
            config=RunConfig.from_dict(d["config"]),
        )
