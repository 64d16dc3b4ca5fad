"""Learned weights against a grid of static weights, on two-task pairs (``taskbalance bench --grid``).

Kendall, Gal & Cipolla (CVPR 2018, figure 2 and table 1) claim that the weights
uncertainty weighting learns do as well as the best static weights that a grid search
finds, and better than equal weighting, because the tasks' losses differ in scale and
noise. This module trains, for each two-task pair, static weights over a grid and the
learned methods with the same budget and seeds, and reports where each learned method
lands among the grid points.

The grid is w_A = 0, 0.1, ..., 1 (w_B = 1 − w_A) and, for pairs whose losses differ in
scale, the ratios w_A / w_B = 10^k for k = −5..5 (k ≠ 0), normalised to w_A + w_B = 1.
Points are ranked by Δm% against equal weighting (lower is better). A learned method is
called better (worse) than equal weighting when its mean Δm% is below (above) zero by
more than twice its seed spread and by at least 0.1 points, and within the spread of
the best grid point when the gap is at most twice the larger of the two spreads.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .problems import LoadedProblem, Metric, Problem, get_problem
from .results import CellResult, MeanStd, mean_std
from .runner import delta_m, read_cell, save_cell, train_cell, write_atomic

__all__ = [
    "Pair",
    "PAIRS",
    "LEARNED",
    "GridPoint",
    "LearnedMethod",
    "PairResult",
    "GridResults",
    "grid_points",
    "run_grid",
    "grid_markdown",
    "plot_grid",
    "write_grid_reports",
]


@dataclass(frozen=True)
class Pair:
    """Two tasks of a built-in problem, with the budget the grid trains them for."""

    problem: str
    tasks: tuple[str, str]
    epochs: int
    log_ratios: bool  # the losses differ in scale: add log-spaced ratios to the grid
    physical_units: bool = False  # QM9: train on the targets in their own units
    why: str = ""

    @property
    def name(self) -> str:
        return f"{self.problem}[{'+'.join(self.tasks)}]"

    def build(self) -> Problem:
        """The restricted problem."""
        return get_problem(self.problem).restrict(list(self.tasks), physical_units=self.physical_units)


#: the pairs of ``--grid``, by the name ``--problems`` selects them with
PAIRS: dict[str, Pair] = {
    "noisy-scales": Pair(
        "noisy-scales", ("reg_3", "reg_300"), 20, True, why="noise std 3 and 300: losses 10⁴ apart"
    ),
    "multi-mnist": Pair("multi-mnist", ("left", "right"), 3, False, why="two digit classifiers of one scale"),
    "census": Pair("census", ("income", "never_married"), 5, False, why="two binary classifiers"),
    "qm9": Pair(
        "qm9", ("mu", "r2"), 5, True, True, why="dipole moment (Debye) and R² (Bohr²): losses about 10⁴ apart"
    ),
}

#: differences in Δm% smaller than this are called level, whatever the seed spread
NEGLIGIBLE = 0.1

#: the learned methods ``--grid`` places among the grid points by default
LEARNED = ("equal", "uw", "uw-revised", "uw-simplified", "famo", "nash-mtl", "upgrad")


def grid_points(log_ratios: bool) -> list[tuple[float, float]]:
    """The static weights (w_A, w_B) of the grid, sorted by w_A.

    Example:
        >>> len(grid_points(False)), len(grid_points(True))
        (11, 21)
        >>> grid_points(False)[:2]
        [(0.0, 1.0), (0.1, 0.9)]
    """
    points = {(round(i / 10, 1), round(1 - i / 10, 1)) for i in range(11)}
    if log_ratios:
        for k in range(-5, 6):
            if k:
                r = 10.0**k
                points.add((r / (1 + r), 1 / (1 + r)))
    return sorted(points)


def _ms_table(d: Mapping[str, Any]) -> dict[str, MeanStd]:
    return {t: MeanStd.from_dict(v) for t, v in d.items()}


@dataclass(frozen=True)
class GridPoint:
    """One static weighting (w_A, w_B) on a pair, over the seeds: each task's metric,
    Δm% against equal weighting (paired by seed) and the weights of the last epoch."""

    w: tuple[float, float]
    metrics: dict[str, MeanStd]
    delta_equal: MeanStd
    weights: dict[str, MeanStd]

    def to_dict(self) -> dict[str, Any]:
        """The grid point's entry of ``grid.json``."""
        return {
            "w": list(self.w),
            "metrics": {t: v.to_dict() for t, v in self.metrics.items()},
            "delta_equal": self.delta_equal.to_dict(),
            "weights": {t: v.to_dict() for t, v in self.weights.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GridPoint:
        """The inverse of :meth:`to_dict`."""
        a, b = d["w"]
        return cls(
            (a, b), _ms_table(d["metrics"]), MeanStd.from_dict(d["delta_equal"]), _ms_table(d["weights"])
        )


@dataclass(frozen=True)
class LearnedMethod:
    """A learned method on a pair, as a :class:`GridPoint`, with its rank among the grid
    points: 1 + the number of grid points with a lower mean Δm%."""

    metrics: dict[str, MeanStd]
    delta_equal: MeanStd
    weights: dict[str, MeanStd]
    rank: int

    def to_dict(self) -> dict[str, Any]:
        """The method's entry of ``grid.json``."""
        return {
            "metrics": {t: v.to_dict() for t, v in self.metrics.items()},
            "delta_equal": self.delta_equal.to_dict(),
            "weights": {t: v.to_dict() for t, v in self.weights.items()},
            "rank": self.rank,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LearnedMethod:
        """The inverse of :meth:`to_dict`."""
        return cls(
            _ms_table(d["metrics"]),
            MeanStd.from_dict(d["delta_equal"]),
            _ms_table(d["weights"]),
            int(d["rank"]),
        )


@dataclass(frozen=True)
class PairResult:
    """The grid and the learned methods on one pair (``name`` is ``problem[a+b]``)."""

    name: str
    tasks: tuple[str, str]
    why: str
    epochs: int
    metrics: dict[str, Metric]
    grid: list[GridPoint]
    learned: dict[str, LearnedMethod]

    @property
    def best(self) -> GridPoint:
        """The grid point with the lowest mean Δm% against equal weighting."""
        return min(self.grid, key=lambda g: g.delta_equal.mean)

    def to_dict(self) -> dict[str, Any]:
        """The pair's entry of ``grid.json``."""
        return {
            "name": self.name,
            "tasks": list(self.tasks),
            "why": self.why,
            "epochs": self.epochs,
            "metrics": {
                t: {"name": m.name, "higher_is_better": m.higher_is_better} for t, m in self.metrics.items()
            },
            "grid": [g.to_dict() for g in self.grid],
            "learned": {m: e.to_dict() for m, e in self.learned.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PairResult:
        """The inverse of :meth:`to_dict`."""
        a, b = d["tasks"]
        return cls(
            name=d["name"],
            tasks=(a, b),
            why=d["why"],
            epochs=int(d["epochs"]),
            metrics={t: Metric(m["name"], m["higher_is_better"]) for t, m in d["metrics"].items()},
            grid=[GridPoint.from_dict(g) for g in d["grid"]],
            learned={m: LearnedMethod.from_dict(e) for m, e in d["learned"].items()},
        )


@dataclass(frozen=True)
class GridResults:
    """A ``--grid`` run: each pair's result (keyed by the name ``--problems`` selects it
    with), the seeds, ``quick`` and ``epochs`` it was asked for (``None``: each pair's
    own), the wall time of the call and the training time of every cell it used."""

    pairs: dict[str, PairResult]
    seeds: list[int]
    quick: bool
    epochs: int | None
    wall_s: float
    train_s: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``grid.json``."""
        return {
            "pairs": {p: r.to_dict() for p, r in self.pairs.items()},
            "config": {"seeds": list(self.seeds), "quick": self.quick, "epochs": self.epochs},
            "wall_s": self.wall_s,
            "train_s": self.train_s,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GridResults:
        """Read ``grid.json``."""
        cfg = d["config"]
        return cls(
            pairs={p: PairResult.from_dict(r) for p, r in d["pairs"].items()},
            seeds=list(cfg["seeds"]),
            quick=bool(cfg["quick"]),
            epochs=cfg["epochs"],
            wall_s=float(d["wall_s"]),
            train_s=float(d["train_s"]),
        )


def _spec(w: tuple[float, float]) -> str:
    return f"static:weights={w[0]:.6g}+{w[1]:.6g}"


def _x(w: tuple[float, float], lo: float, hi: float) -> float:
    """The plot position of a grid point: log10(w_A / w_B), the ends one step outside."""
    if w[0] == 0:
        return lo - 1
    if w[1] == 0:
        return hi + 1
    return math.log10(w[0] / w[1])


def run_grid(
    pairs: list[str],
    methods: list[str],
    seeds: list[int],
    out: str | Path,
    *,
    quick: bool = False,
    epochs: int | None = None,
    device: str = "cpu",
    data_path: str | None = None,
    progress: bool = True,
) -> GridResults:
    """Train the grid and ``methods`` on each pair; write ``grid.json`` and return it.

    Cells go to ``out/grid-cells/PAIR/SPEC/seedS.json`` (resumable, as in
    :func:`~taskbalance.bench.runner.run_bench`).
    """
    root = Path(out)
    results: dict[str, PairResult] = {}
    t0 = time.perf_counter()
    total = sum(len(grid_points(PAIRS[p].log_ratios)) + len(methods) for p in pairs) * len(seeds)
    done, train_s = 0, 0.0
    for pname in pairs:
        pair = PAIRS[pname]
        problem = pair.build()
        ep = pair.epochs if epochs is None else epochs
        points = grid_points(pair.log_ratios)
        specs = [_spec(w) for w in points] + list(methods)
        data: LoadedProblem | None = None
        cells: dict[str, list[CellResult]] = {}
        for spec in specs:
            cells[spec] = []
            for seed in seeds:
                config = {"pair": pair.name, "method": spec, "seed": seed, "epochs": ep, "quick": quick}
                path = root / "grid-cells" / pair.name / spec / f"seed{seed}.json"
                cell = read_cell(path, config, list(pair.tasks))
                if cell is None:
                    if data is None:
                        data = problem.load(quick=quick, path=data_path)
                    cell = train_cell(data, spec, seed, ep, device)
                    save_cell(path, config, cell)
                cells[spec].append(cell)
                train_s += cell.time_per_step * cell.steps
                done += 1
                if progress:
                    eta = (time.perf_counter() - t0) / done * (total - done)
                    sys.stderr.write(f"\r{done}/{total} {pair.name} {spec[:30]:<30} eta {eta:5.0f}s")
        if progress:
            sys.stderr.write("\n")
        higher = {t: problem.metrics[t].higher_is_better for t in pair.tasks}
        base = cells["equal"] if "equal" in cells else cells[_spec((0.5, 0.5))]

        grid = [GridPoint(w, *_row(cells[_spec(w)], base, higher)) for w in points]
        learned = {}
        for m in methods:
            row = _row(cells[m], base, higher)
            rank = 1 + sum(g.delta_equal.mean < row[1].mean for g in grid)
            learned[m] = LearnedMethod(*row, rank=rank)
        results[pname] = PairResult(
            name=pair.name,
            tasks=pair.tasks,
            why=pair.why,
            epochs=ep,
            metrics={t: problem.metrics[t] for t in pair.tasks},
            grid=grid,
            learned=learned,
        )
    grid_results = GridResults(
        results,
        seeds=list(seeds),
        quick=quick,
        epochs=epochs,
        wall_s=time.perf_counter() - t0,  # of this call (finished cells are read, not trained)
        train_s=train_s,  # of every cell, whenever it was trained
    )
    write_atomic(root / "grid.json", json.dumps(grid_results.to_dict(), indent=1))
    return grid_results


def _row(
    runs: Sequence[CellResult], base: Sequence[CellResult], higher: dict[str, bool]
) -> tuple[dict[str, MeanStd], MeanStd, dict[str, MeanStd]]:
    """Mean ± std over seeds of one grid point or method: each task's metric, its Δm%
    against ``base`` and each task's weight in the last epoch."""
    d = [delta_m(r.metrics, b.metrics, higher) for r, b in zip(runs, base)]
    return (
        {t: mean_std([r.metrics[t] for r in runs]) for t in higher},
        mean_std(d),
        {t: mean_std([r.weights[t][-1] for r in runs]) for t in higher},
    )


def _w(w: tuple[float, float]) -> str:
    return f"{w[0]:.3g} / {w[1]:.3g}"


def grid_markdown(results: GridResults) -> str:
    """The summary table (one row per pair) and one sentence per pair on the claim."""
    seeds = len(results.seeds)
    pairs = results.pairs
    methods = list(next(iter(pairs.values())).learned) if pairs else []
    lines = [
        f"Δm% against equal weighting (lower is better; mean over {seeds} seeds) of the best static "
        "weights (w_A / w_B) found by the grid, and of each learned method with its rank among the "
        "grid points (1 = better than every grid point):",
        "",
        "| pair (A + B) | epochs | grid points | best grid point | " + " | ".join(methods) + " |",
        "|---|---|---|---|" + "---|" * len(methods),
    ]
    sentences = []
    for res in pairs.values():
        best = res.best
        cells = [f"{res.learned[m].delta_equal.mean:+.2f} ({res.learned[m].rank})" for m in methods]
        lines.append(
            f"| `{res.name}` | {res.epochs} | {len(res.grid)} | {_w(best.w)}: "
            f"{best.delta_equal.mean:+.2f} ± {best.delta_equal.std:.2f} | " + " | ".join(cells) + " |"
        )
        sentences.append(_claim(res, best))
    return "\n".join(lines + [""] + [f"- {s}" for s in sentences]) + "\n"


def _claim(res: PairResult, best: GridPoint) -> str:
    """Whether uncertainty weighting's result supports the claim on this pair, in words."""
    uw = res.learned.get("uw")
    name = f"`{res.name}` ({res.why})"
    if uw is None:
        return f"{name}: uw was not run."
    d, s = uw.delta_equal.mean, uw.delta_equal.std
    gap = d - best.delta_equal.mean
    spread = max(s, best.delta_equal.std)
    note = ""
    if abs(d) < NEGLIGIBLE:
        vs_equal, note = "level with equal weighting", f", under {NEGLIGIBLE} points"
    elif d < -2 * s:
        vs_equal = "better than equal weighting"
    elif d > 2 * s:
        vs_equal = "worse than equal weighting"
    else:
        vs_equal = "within the seed spread of equal weighting"
    vs_best = (
        "within the seed spread of the best grid point"
        if gap <= 2 * spread
        else f"{gap:.2f} points behind the best grid point"
    )
    rank = f"rank {uw.rank} of {len(res.grid)}"
    return f"{name}: uw is {vs_equal} ({d:+.2f} ± {s:.2f}{note}) and {vs_best} ({rank})."


def plot_grid(results: GridResults, path: str | Path) -> None:
    """Kendall-style figure: each task's metric across the grid, learned methods as marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(results.pairs.values())
    fig, axes = plt.subplots(len(pairs), 2, figsize=(8, 2.6 * len(pairs)), squeeze=False)
    for row, res in zip(axes, pairs):
        finite = [math.log10(g.w[0] / g.w[1]) for g in res.grid if g.w[0] > 0 and g.w[1] > 0]
        lo, hi = min(finite), max(finite)
        xs = [_x(g.w, lo, hi) for g in res.grid]
        for ax, t in zip(row, res.tasks):
            metric = res.metrics[t]
            ys = [g.metrics[t].mean for g in res.grid]
            ax.errorbar(
                xs,
                ys,
                yerr=[g.metrics[t].std for g in res.grid],
                color="black",
                marker=".",
                lw=1,
                capsize=1.5,
                label="static grid",
            )
            for i, (m, entry) in enumerate(res.learned.items()):
                ax.axhline(entry.metrics[t].mean, color=f"C{i}", lw=1, ls="--", label=m)
            ax.set_title(
                f"{res.name}: {t} {metric.name} {'↑' if metric.higher_is_better else '↓'}",
                fontsize=8,
            )
            ax.set_xticks([lo - 1, *sorted({round(v) for v in finite}), hi + 1])
            ax.set_xticklabels(
                ["B only", *[f"{round(v)}" for v in sorted({round(v) for v in finite})], "A only"], fontsize=6
            )
            ax.set_xlabel("log10(w_A / w_B)", fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0][1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _full_tables(results: GridResults) -> str:
    parts = []
    for res in results.pairs.values():
        a, b = res.tasks
        ma, mb = res.metrics[a], res.metrics[b]
        head = (
            f"| weights A / B | {a} {ma.name}{'↑' if ma.higher_is_better else '↓'} | "
            f"{b} {mb.name}{'↑' if mb.higher_is_better else '↓'} | Δm% vs equal |"
        )
        rows = [
            f"## {res.name}",
            "",
            f"{res.why}; {res.epochs} epochs.",
            "",
            head,
            "|---|---|---|---|",
        ]

        def fmt(ms: MeanStd, digits: int = 4) -> str:
            return f"{ms.mean:.{digits}g} ± {ms.std:.2g}"

        for g in res.grid:
            rows.append(
                f"| {_w(g.w)} | {fmt(g.metrics[a])} | {fmt(g.metrics[b])} | "
                f"{g.delta_equal.mean:+.2f} ± {g.delta_equal.std:.2f} |"
            )
        for m, e in res.learned.items():
            rows.append(
                f"| **{m}** (rank {e.rank}) | {fmt(e.metrics[a])} | {fmt(e.metrics[b])} | "
                f"{e.delta_equal.mean:+.2f} ± {e.delta_equal.std:.2f} |"
            )
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"


def write_grid_reports(results: GridResults, out: str | Path, plots: bool = True) -> list[Path]:
    """``grid.md`` (summary, claims, every grid point) and, with matplotlib, ``grid.png``."""
    from .report import plots_available

    root = Path(out)
    text = "# Learned weights against a static weight grid\n\n" + grid_markdown(results) + "\n"
    if plots and plots_available():
        plot_grid(results, root / "grid.png")
        text += "![each task's metric across the grid, learned methods as dashed lines](grid.png)\n\n"
    write_atomic(root / "grid.md", text + _full_tables(results))
    summary = (
        f"`taskbalance bench --grid` ({len(results.seeds)} seeds; {results.train_s / 60:.0f} min of "
        f"training steps on {os.cpu_count()} CPU cores):\n\n" + grid_markdown(results)
    )
    write_atomic(root / "summary.md", summary)
    written = [root / "grid.json", root / "grid.md", root / "summary.md"]
    return written + ([root / "grid.png"] if (root / "grid.png").exists() else [])
