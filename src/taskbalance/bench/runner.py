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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..base import Balancer
from ..registry import create, get_method, options
from .problems import ArchNet, Problem, Split, get_problem

__all__ = [
    "train_cell",
    "run_bench",
    "delta_m",
    "write_atomic",
    "save_cell",
    "read_cell",
    "mean_std",
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


def _method_kwargs(method: str, problem: Problem) -> dict[str, Any]:
    """The bench's defaults for ``method`` (see :func:`parse_method`) merged with its options."""
    name, given = parse_method(method)
    kwargs: dict[str, Any] = {}
    if name == "stch":
        kwargs["warmup_epochs"] = 1
    if name == "static":
        kwargs["weights"] = [1.0] * len(problem.tasks)
    return kwargs | given


def train_cell(
    problem: Problem,
    train: Split,
    test: Split,
    method: str,
    seed: int,
    epochs: int,
    device: str = "cpu",
    task: str | None = None,
    arch: str | None = None,
) -> dict[str, Any]:
    """Train one model with ``method`` (or on ``task`` alone) and evaluate it.

    Gradient-based methods balance the gradients of the shared features (the cheap
    MGDA-UB mode) except DB-MTL, which needs the shared parameters. Returns the test
    metrics, per-epoch training losses and weights, learned σ where there is one, and
    the mean time per step.
    """
    torch.manual_seed(seed)
    model = problem.model(arch).to(device)
    tasks = {task: problem.tasks[task]} if task else dict(problem.tasks)
    balancer: Balancer = create(
        "equal" if task else parse_method(method)[0],
        tasks=tasks,
        **({} if task else _method_kwargs(method, problem)),
    ).to(device)
    opt = torch.optim.Adam(
        [
            {"params": model.parameters(), "lr": problem.lr},
            *balancer.param_groups(lr=0.1 if balancer.kind == "loss" else problem.lr, betas=(0.9, 0.99)),
        ]
    )
    features = balancer.kind == "gradient" and bool(getattr(balancer, "supports_features", False))
    uses_after_step = type(balancer).after_step is not Balancer.after_step
    initial = (
        problem.evaluate(model, test) if any(m == "loss-ratio" for m, _ in problem.metrics.values()) else {}
    )
    gen = torch.Generator().manual_seed(seed)
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
        if isinstance(model, ArchNet):
            model.epoch_end()
        for t in tasks:
            curves[t].append(sums[t] / batches)
            weights[t].append(wsum[t] / batches)
    elapsed = time.perf_counter() - start
    metrics = problem.evaluate(model, test)
    if initial:
        metrics = {
            t: metrics[t] / initial[t] if problem.metrics[t][0] == "loss-ratio" else v
            for t, v in metrics.items()
        }
    sigma = getattr(balancer, "sigma", None)
    return {
        "metrics": {t: metrics[t] for t in tasks},
        "loss_curves": curves,
        "weights": weights,
        "sigma": {k: float(v) for k, v in sigma.items()} if sigma is not None else {},
        "time_per_step": elapsed / max(steps, 1),
        "steps": steps,
    }


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
) -> dict[str, Any]:
    """Run every (problem, method, seed) cell and the single-task baselines into ``out``.

    ``arch`` picks a :mod:`taskbalance.nn` architecture for the problems that allow one;
    their results are keyed ``problem@arch``. Returns the aggregated results (also
    written to ``out/results.json``).
    """
    root = Path(out)
    cells: list[tuple[str, str, int]] = []
    for p in problems:
        for s in seeds:
            cells += [(p, m, s) for m in methods]
            cells.append((p, STL, s))
    t0 = time.perf_counter()
    done = 0
    loaded: dict[str, tuple[Problem, Split, Split]] = {}
    for p_name, method, seed in cells:
        problem = get_problem(p_name)
        ep = problem.epochs if epochs is None else epochs
        config = {
            "problem": p_name,
            "method": method,
            "seed": seed,
            "epochs": ep,
            "quick": quick,
            "arch": arch,
        }
        path = root / "cells" / _key(p_name, arch) / method / f"seed{seed}.json"
        if read_cell(path, config, list(problem.tasks)) is not None:
            done += 1
            continue
        if progress:
            _progress(done, len(cells), f"{p_name} {method} seed {seed}", t0)
        if p_name not in loaded:
            problem_obj = get_problem(p_name)
            train, test = problem_obj.load(quick=quick, path=data_path)
            loaded[p_name] = (problem_obj, train, test)
        problem, train, test = loaded[p_name]
        if method == STL:
            parts = [
                train_cell(problem, train, test, method, seed, ep, device, task=t, arch=arch)
                for t in problem.tasks
            ]
            result: dict[str, Any] = {
                "metrics": {t: r["metrics"][t] for t, r in zip(problem.tasks, parts)},
                "loss_curves": {t: r["loss_curves"][t] for t, r in zip(problem.tasks, parts)},
                "weights": {},
                "sigma": {},
                "time_per_step": sum(r["time_per_step"] for r in parts),
                "steps": parts[0]["steps"],
            }
        else:
            result = train_cell(problem, train, test, method, seed, ep, device, arch=arch)
        save_cell(path, config, result)
        done += 1
        if on_cell is not None:
            on_cell(p_name, method, seed)
    if progress:
        _progress(done, len(cells), "done", t0)
        sys.stderr.write("\n")
    return aggregate(root, problems, methods, seeds, epochs, quick, arch)


def save_cell(path: Path, config: dict[str, Any], result: dict[str, Any]) -> None:
    """Write a finished cell with its ``config`` (atomically), as :func:`read_cell` reads it."""
    result["config"] = config
    write_atomic(path, json.dumps(result, indent=1))


def read_cell(path: Path, config: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any] | None:
    """A finished cell written for ``config``; ``None`` if it is missing, written for
    another configuration, or damaged in any way (then it is computed again)."""
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(cell, dict) or cell.get("config") != config:
        return None
    metrics = cell.get("metrics")
    if not isinstance(metrics, dict) or set(metrics) != set(tasks):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        return None
    for key in ("loss_curves", "weights", "sigma"):
        if not isinstance(cell.get(key), dict):
            return None
    if not isinstance(cell.get("time_per_step"), (int, float)) or not isinstance(cell.get("steps"), int):
        return None
    return cell


def _key(problem: str, arch: str | None) -> str:
    return problem if arch is None else f"{problem}@{arch}"


def aggregate(
    root: Path,
    problems: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    epochs: int | None,
    quick: bool,
    arch: str | None = None,
) -> dict[str, Any]:
    """Mean ± std over seeds, Δm% against single-task and equal weighting, per problem."""
    results: dict[str, Any] = {"problems": {}}
    for p_name in problems:
        problem = get_problem(p_name)
        higher = {t: h for t, (_, h) in problem.metrics.items()}
        rows: dict[str, Any] = {}
        cells: dict[str, list[dict[str, Any]]] = {}
        for m in [*methods, STL]:
            cells[m] = [
                json.loads((root / "cells" / _key(p_name, arch) / m / f"seed{s}.json").read_text())
                for s in seeds
            ]
        for m, runs in cells.items():
            per_seed_stl = [delta_m(r["metrics"], c["metrics"], higher) for r, c in zip(runs, cells[STL])]
            row = {
                "metrics": {t: mean_std([r["metrics"][t] for r in runs]) for t in problem.tasks},
                "delta_stl": mean_std(per_seed_stl),
                "time_per_step": statistics.mean(r["time_per_step"] for r in runs),
                "sigma": {t: mean_std([r["sigma"][t] for r in runs]) for t in runs[0]["sigma"]},
                "weights": {
                    t: [statistics.mean(v) for v in zip(*(r["weights"][t] for r in runs))]
                    for t in runs[0]["weights"]
                },
                "loss_curves": {
                    t: [statistics.mean(v) for v in zip(*(r["loss_curves"][t] for r in runs))]
                    for t in runs[0]["loss_curves"]
                },
            }
            if "equal" in cells:
                row["delta_equal"] = mean_std(
                    [delta_m(r["metrics"], c["metrics"], higher) for r, c in zip(runs, cells["equal"])]
                )
            rows[m] = row
        results["problems"][_key(p_name, arch)] = {
            "description": problem.description,
            "metrics": {t: {"name": n, "higher_is_better": h} for t, (n, h) in problem.metrics.items()},
            "true_sigma": dict(
                zip([f"reg_{s:g}" for s in problem.info.get("noise", ())], problem.info.get("noise", ()))
            ),
            "methods": rows,
            "seeds": len(seeds),
        }
    results["config"] = {
        "problems": list(problems),
        "methods": list(methods),
        "seeds": list(seeds),
        "epochs": epochs,
        "quick": quick,
        "arch": arch,
    }
    write_atomic(root / "results.json", json.dumps(results, indent=1))
    return results


def mean_std(values: list[float]) -> dict[str, float]:
    """``{"mean": ..., "std": ...}`` over seeds (std 0 for one value)."""
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
