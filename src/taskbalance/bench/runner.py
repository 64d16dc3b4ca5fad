"""The benchmark runner: methods × problems × seeds, resumable, with Δm%.

Each cell (problem, method, seed) trains one model and is saved as its own JSON file
the moment it finishes (written to a temporary file, then renamed), so an interrupted
run loses at most the cell in progress and never leaves a half-written file; running
again into the same ``--out`` skips every finished cell whose configuration matches.

Δm% follows Maninis et al. (CVPR 2019) and the multi-task literature since:

.. math::
    \\Delta m\\% = \\frac{100}{K}\\sum_{k=1}^{K} (-1)^{h_k}\\,\\frac{M_{m,k} - M_{b,k}}{M_{b,k}},

with :math:`h_k = 1` when higher is better for task k, against a baseline b: the
single-task models (one model per task, same architecture, trained on that task
alone), or equal weighting. Lower is better; negative means better than the baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..base import Balancer
from ..registry import create, get_method, options
from .problems import ArchNet, LoadedProblem, MTLNet, get_problem
from .results import (
    BenchResults,
    CellConfig,
    CellResult,
    MeanStd,
    MethodSummary,
    ProblemSummary,
    RunConfig,
    mean_std,
)

__all__ = [
    "train_model",
    "TrainedModel",
    "train_cell",
    "run_bench",
    "aggregate",
    "delta_m",
    "write_atomic",
    "save_cell",
    "read_cell",
    "STL",
    "parse_method",
]

STL = "single-task"


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def delta_m(metrics: dict[str, float], base: dict[str, float], higher: dict[str, bool]) -> float:
    """Δm% of ``metrics`` against ``base`` (see the module docstring).

    Example:
        >>> delta_m({"a": 0.9, "b": 2.0}, {"a": 0.8, "b": 2.5}, {"a": True, "b": False})
        -16.25
    """
    terms = [(-1 if higher[k] else 1) * (metrics[k] - base[k]) / base[k] for k in base]
    return round(100 * sum(terms) / len(terms), 10)


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """A bench method: a registered name, optionally with options after colons.

    ``name:key=value[:key=value...]``; a value is a number, a ``+``-separated list of
    numbers, ``true``/``false``, or else a string. The spec is also the cell's folder
    name, so ``famo`` and ``famo:gamma=0.001`` are separate rows of the report.

    Example:
        >>> parse_method("famo:gamma=0.001")
        ('famo', {'gamma': 0.001})
        >>> parse_method("static:weights=0.3+0.7")
        ('static', {'weights': [0.3, 0.7]})
    """
    name, *parts = spec.split(":")
    cls = get_method(name)
    valid = options(cls)
    kwargs: dict[str, Any] = {}
    for part in parts:
        key, eq, text = part.partition("=")
        if not eq or not key:
            raise ValueError(f"method {spec!r}: options are written key=value after a colon, got {part!r}")
        if key not in valid:
            raise ValueError(
                f"method {spec!r}: {name} has no option {key!r}; its options: {', '.join(valid)}"
            )
        kwargs[key] = _value(text)
    return name, kwargs


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        if "+" in text.lstrip("+-"):
            return [float(v) for v in text.split("+")]
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text


def _method_kwargs(method: str) -> dict[str, Any]:
    """The method's :attr:`~taskbalance.Balancer.bench_kwargs` merged with the options of
    ``method`` (see :func:`parse_method`).

    Example:
        >>> _method_kwargs("stch"), _method_kwargs("stch:warmup_epochs=3:mu=0.5")
        ({'warmup_epochs': 1}, {'warmup_epochs': 3, 'mu': 0.5})
    """
    name, given = parse_method(method)
    return dict(get_method(name).bench_kwargs) | given


@dataclass
class TrainedModel:
    """What :func:`train_model` returns: the trained model and balancer, and each task's
    per-epoch mean training loss and weight."""

    model: MTLNet
    balancer: Balancer
    loss_curves: dict[str, list[float]]
    weights: dict[str, list[float]]
    time_per_step: float
    steps: int
    #: the test metrics before training, where the problem scores the model relative to
    #: them (``loss-ratio``); empty otherwise
    initial: dict[str, float]


def train_model(
    data: LoadedProblem,
    method: str,
    seed: int,
    epochs: int,
    device: str = "cpu",
    task: str | None = None,
    arch: str | None = None,
    *,
    balancer_lr: float | None = None,
    lr_schedule: Literal["constant", "cosine"] = "constant",
) -> TrainedModel:
    """The bench's training loop: train one model with ``method`` (or on ``task`` alone,
    with equal weighting) on ``data``.

    Adam at the problem's learning rate with β = (0.9, 0.99) for the method's own
    parameters (β2 = 0.99: the log-variances' gradients shrink by orders of magnitude as
    they converge, and the default 0.999 remembers the early large ones too long), at
    ``balancer_lr`` (default 0.1 for loss-based methods, the problem's rate for gradient
    ones). ``lr_schedule="cosine"`` anneals every rate to 0 over the epochs. Gradient-based
    methods balance the gradients of the shared features (the cheap MGDA-UB mode) where
    they support it, else those of the shared parameters; FAMO gets its
    :meth:`~taskbalance.Balancer.after_step`.

    Example:
        >>> from taskbalance.bench.problems import get_problem
        >>> data = get_problem("noisy-tasks").load(quick=True)
        >>> run = train_model(data, "uw", seed=0, epochs=2)
        >>> run.steps, len(run.loss_curves["cls"]), sorted(run.balancer.sigma)
        (8, 2, ['cls', 'reg_1', 'reg_10', 'reg_3'])
    """
    problem = data.problem
    torch.manual_seed(seed)
    model = data.model(arch).to(device)
    tasks = {task: problem.tasks[task]} if task else dict(problem.tasks)
    balancer: Balancer = create(
        "equal" if task else parse_method(method)[0],
        tasks=tasks,
        **({} if task else _method_kwargs(method)),
    ).to(device)
    if balancer_lr is None:
        balancer_lr = 0.1 if balancer.kind == "loss" else problem.lr
    opt = torch.optim.Adam(
        [
            {"params": model.parameters(), "lr": problem.lr},
            *balancer.param_groups(lr=balancer_lr, betas=(0.9, 0.99)),
        ]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs) if lr_schedule == "cosine" else None
    features = balancer.kind == "gradient" and bool(getattr(balancer, "supports_features", False))
    uses_after_step = type(balancer).after_step is not Balancer.after_step
    initial = data.evaluate(model) if any(m.name == "loss-ratio" for m in problem.metrics.values()) else {}
    gen = torch.Generator().manual_seed(seed)
    train = data.train
    n = len(train)
    curves: dict[str, list[float]] = {t: [] for t in tasks}
    weights: dict[str, list[float]] = {t: [] for t in tasks}
    steps, start = 0, time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        sums = {t: 0.0 for t in tasks}
        wsum = {t: 0.0 for t in tasks}
        batches = 0
        for i in range(0, n, problem.batch_size):
            idx = perm[i : i + problem.batch_size]
            x = train.x[idx].to(device)
            y = {t: train.y[t][idx].to(device) for t in tasks}
            z, out = model(x)
            losses = {t: problem.loss(t, out[t], y[t]) for t in tasks}
            opt.zero_grad(set_to_none=True)
            if balancer.kind == "gradient":
                if features and z is not None:
                    balancer.backward(losses, features=z)
                else:
                    balancer.backward(losses, shared_params=model.shared_parameters())
            else:
                balancer.backward(losses)
            opt.step()
            if uses_after_step:
                with torch.no_grad():
                    _, out = model(x)
                    balancer.after_step({t: problem.loss(t, out[t], y[t]) for t in tasks})
            for t in tasks:
                sums[t] += float(losses[t].detach())
                wsum[t] += float(balancer.weights[t]) if t in balancer.weights else 0.0
            batches += 1
            steps += 1
        balancer.epoch_end()
        if sched is not None:
            sched.step()
        if isinstance(model, ArchNet):
            model.epoch_end()
        for t in tasks:
            curves[t].append(sums[t] / batches)
            weights[t].append(wsum[t] / batches)
    elapsed = time.perf_counter() - start
    return TrainedModel(model, balancer, curves, weights, elapsed / max(steps, 1), steps, initial)


def train_cell(
    data: LoadedProblem,
    method: str,
    seed: int,
    epochs: int,
    device: str = "cpu",
    task: str | None = None,
    arch: str | None = None,
) -> CellResult:
    """Train one model with ``method`` (or on ``task`` alone) by :func:`train_model`
    and evaluate it on the test split.

    Returns the test metrics (a ``loss-ratio`` divided by the untrained model's), the
    per-epoch training losses and weights, the learned σ where there is one, and the
    mean time per step.

    Example:
        >>> from taskbalance.bench.problems import get_problem
        >>> data = get_problem("gradnorm-toy").load(quick=True)
        >>> cell = train_cell(data, "equal", seed=0, epochs=1)
        >>> sorted(cell.metrics), cell.steps, all(0 < v < 1 for v in cell.metrics.values())
        (['t0', 't1'], 4, True)
    """
    run = train_model(data, method, seed, epochs, device, task, arch)
    metrics = data.evaluate(run.model)
    problem = data.problem
    if run.initial:
        metrics = {
            t: metrics[t] / run.initial[t] if problem.metrics[t].name == "loss-ratio" else v
            for t, v in metrics.items()
        }
    sigma = getattr(run.balancer, "sigma", None)
    return CellResult(
        metrics={t: metrics[t] for t in run.loss_curves},
        loss_curves=run.loss_curves,
        weights=run.weights,
        sigma={k: float(v) for k, v in sigma.items()} if sigma is not None else {},
        time_per_step=run.time_per_step,
        steps=run.steps,
    )


def _progress(done: int, total: int, label: str, t0: float) -> None:
    width = 28
    filled = int(width * done / max(total, 1))
    eta = (time.perf_counter() - t0) / max(done, 1) * (total - done)
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label[:40]:<40} eta {eta:4.0f}s"
    )
    sys.stderr.flush()


def run_bench(
    problems: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    out: str | os.PathLike[str],
    epochs: int | None = None,
    device: str = "cpu",
    quick: bool = False,
    data_path: str | None = None,
    progress: bool = True,
    on_cell: Callable[[str, str, int], None] | None = None,
    arch: str | None = None,
) -> BenchResults:
    """Run every (problem, method, seed) cell and the single-task baselines into ``out``.

    ``arch`` picks a :mod:`taskbalance.nn` architecture for the problems that allow one;
    their results are keyed ``problem@arch``. Returns the aggregated results (also
    written to ``out/results.json``).
    """
    root = Path(out)
    cells: list[CellConfig] = []
    for p in problems:
        ep = get_problem(p).epochs if epochs is None else epochs
        for s in seeds:
            cells += [CellConfig(p, m, s, ep, quick, arch) for m in [*methods, STL]]
    t0 = time.perf_counter()
    done = 0
    loaded: dict[str, LoadedProblem] = {}
    for config in cells:
        path = _cell_path(root, config.problem, arch, config.method, config.seed)
        if read_cell(path, config.to_dict(), list(get_problem(config.problem).tasks)) is not None:
            done += 1
            continue
        if progress:
            _progress(done, len(cells), f"{config.problem} {config.method} seed {config.seed}", t0)
        if config.problem not in loaded:
            loaded[config.problem] = get_problem(config.problem).load(quick=quick, path=data_path)
        data = loaded[config.problem]
        if config.method == STL:
            result = _single_task(data, config, device)
        else:
            result = train_cell(data, config.method, config.seed, config.epochs, device, arch=arch)
        save_cell(path, config.to_dict(), result)
        done += 1
        if on_cell is not None:
            on_cell(config.problem, config.method, config.seed)
    if progress:
        _progress(done, len(cells), "done", t0)
        sys.stderr.write("\n")
    return aggregate(root, problems, methods, seeds, epochs, quick, arch)


def _single_task(data: LoadedProblem, config: CellConfig, device: str) -> CellResult:
    """The single-task baseline: one model per task, as one cell."""
    parts = {
        t: train_cell(data, config.method, config.seed, config.epochs, device, task=t, arch=config.arch)
        for t in data.tasks
    }
    return CellResult(
        metrics={t: r.metrics[t] for t, r in parts.items()},
        loss_curves={t: r.loss_curves[t] for t, r in parts.items()},
        weights={},
        sigma={},
        time_per_step=sum(r.time_per_step for r in parts.values()),
        steps=next(iter(parts.values())).steps,
    )


def save_cell(path: Path, config: Mapping[str, Any], result: CellResult) -> None:
    """Write a finished cell with its ``config`` (atomically), as :func:`read_cell` reads it."""
    write_atomic(path, json.dumps({**result.to_dict(), "config": dict(config)}, indent=1))


def read_cell(path: Path, config: Mapping[str, Any], tasks: Sequence[str]) -> CellResult | None:
    """A finished cell written for ``config``; ``None`` if it is missing, written for
    another configuration, or damaged in any way (then it is computed again).

    Example:
        >>> import tempfile
        >>> cell = CellResult({"a": 1.0}, {"a": [2.0]}, {"a": [1.0]}, {}, 0.01, 4)
        >>> path = Path(tempfile.mkdtemp()) / "seed0.json"
        >>> save_cell(path, {"seed": 0}, cell)
        >>> read_cell(path, {"seed": 0}, ["a"]) == cell, read_cell(path, {"seed": 1}, ["a"])
        (True, None)
    """
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(cell, dict) or cell.get("config") != dict(config):
        return None
    try:
        return CellResult.from_dict(cell, tasks)
    except ValueError:
        return None


def _key(problem: str, arch: str | None) -> str:
    return problem if arch is None else f"{problem}@{arch}"


def _cell_path(root: Path, problem: str, arch: str | None, method: str, seed: int) -> Path:
    return root / "cells" / _key(problem, arch) / method / f"seed{seed}.json"


def aggregate(
    root: Path,
    problems: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    epochs: int | None,
    quick: bool,
    arch: str | None = None,
) -> BenchResults:
    """Mean ± std over seeds, Δm% against single-task and equal weighting, per problem,
    from the cells in ``root``; also written to ``root/results.json``."""
    summaries: dict[str, ProblemSummary] = {}
    for p_name in problems:
        problem = get_problem(p_name)
        higher = {t: m.higher_is_better for t, m in problem.metrics.items()}
        cells: dict[str, list[CellResult]] = {}
        for m in [*methods, STL]:
            cells[m] = []
            for s in seeds:
                path = _cell_path(root, p_name, arch, m, s)
                cells[m].append(CellResult.from_dict(json.loads(path.read_text())))
        rows: dict[str, MethodSummary] = {}
        for m, runs in cells.items():
            rows[m] = MethodSummary(
                metrics={t: mean_std([r.metrics[t] for r in runs]) for t in problem.tasks},
                delta_stl=_delta(runs, cells[STL], higher),
                # the median: the first cells of a run also pay its start-up (up to 50x a step)
                time_per_step=statistics.median(r.time_per_step for r in runs),
                sigma={t: mean_std([r.sigma[t] for r in runs]) for t in runs[0].sigma},
                weights={
                    t: [statistics.mean(v) for v in zip(*(r.weights[t] for r in runs))]
                    for t in runs[0].weights
                },
                loss_curves={
                    t: [statistics.mean(v) for v in zip(*(r.loss_curves[t] for r in runs))]
                    for t in runs[0].loss_curves
                },
                delta_equal=_delta(runs, cells["equal"], higher) if "equal" in cells else None,
            )
        summaries[_key(p_name, arch)] = ProblemSummary(
            description=problem.description,
            metrics=dict(problem.metrics),
            methods=rows,
            seeds=len(seeds),
            true_sigma=problem.true_sigma,
        )
    results = BenchResults(
        summaries, RunConfig(list(problems), list(methods), list(seeds), epochs, quick, arch)
    )
    write_atomic(root / "results.json", json.dumps(results.to_dict(), indent=1))
    return results


def _delta(runs: Sequence[CellResult], base: Sequence[CellResult], higher: dict[str, bool]) -> MeanStd:
    """Δm% of ``runs`` against ``base``, paired by seed: mean ± std."""
    return mean_std([delta_m(r.metrics, b.metrics, higher) for r, b in zip(runs, base)])
