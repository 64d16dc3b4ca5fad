"""Turn aggregated bench results (:class:`~taskbalance.bench.results.BenchResults`) into a
terminal table, CSV, Markdown and PNG plots."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .results import BenchResults, MeanStd, ProblemSummary
from .runner import STL, write_atomic

__all__ = ["terminal_table", "write_reports", "plot_problem", "separation"]


def _fmt(ms: MeanStd, digits: int = 3, spread: bool = True) -> str:
    """``mean ± std``, or the mean alone where there is no spread (one seed)."""
    if not spread:
        return f"{ms.mean:.{digits}f}"
    return f"{ms.mean:.{digits}f} ± {ms.std:.{digits}f}"


def separation(delta_equal: Mapping[str, MeanStd], seeds: int) -> str:
    """One sentence: which methods differ from equal weighting by more than the seed spread.

    ``delta_equal`` is each method's Δm% against equal weighting (paired by seed) over
    ``seeds`` seeds. A method's difference counts when its mean is larger in size than
    twice the standard deviation of that difference over the seeds, and at least 0.005
    (what shows as +0.00 is no difference). With one seed there is no spread to compare
    against, and the sentence says so.

    Example:
        >>> deltas = {"uw": MeanStd(-20.0, 1.0), "rlw": MeanStd(0.5, 1.0), "mgda": MeanStd(9.0, 2.0)}
        >>> for part in separation(deltas, seeds=3).split(": ", 1)[1].split("; "):
        ...     print(part)
        better than equal weighting: uw (-20.00)
        worse: mgda (+9.00)
        within the spread: rlw.
    """
    if seeds < 2:
        return "One seed: no seed spread to compare the differences against; run --seeds 3 to get one."
    better: list[str] = []
    worse: list[str] = []
    within: list[str] = []
    for m, d in sorted(delta_equal.items(), key=lambda kv: kv[1].mean):
        if m in (STL, "equal"):
            continue
        if abs(d.mean) > 2 * d.std and abs(d.mean) >= 0.005:
            (better if d.mean < 0 else worse).append(f"{m} ({d.mean:+.2f})")
        else:
            within.append(m)
    parts = [
        f"better than equal weighting: {', '.join(better) or 'none'}",
        f"worse: {', '.join(worse) or 'none'}",
        f"within the spread: {', '.join(within) or 'none'}",
    ]
    return f"Over {seeds} seeds, larger than twice the seed spread of Δm% vs equal: " + "; ".join(parts) + "."


def _separation(res: ProblemSummary) -> str:
    deltas = {m: r.delta_equal for m, r in res.methods.items() if r.delta_equal is not None}
    return separation(deltas, res.seeds)


def _rows(res: ProblemSummary) -> list[list[str]]:
    tasks = list(res.metrics)
    header = [
        "method",
        *[f"{t} {m.name}{'↑' if m.higher_is_better else '↓'}" for t, m in res.metrics.items()],
        "Δm% vs STL",
        "Δm% vs equal",
        "ms/step",
    ]
    rows = [header]
    spread = res.seeds > 1
    methods = res.methods
    order = sorted(methods, key=lambda m: (m == STL, methods[m].delta_stl.mean))
    for m in order:
        row = methods[m]
        rows.append(
            [
                m,
                *[_fmt(row.metrics[t], spread=spread) for t in tasks],
                _fmt(row.delta_stl, 2, spread),
                _fmt(row.delta_equal, 2, spread) if row.delta_equal is not None else "-",
                f"{1e3 * row.time_per_step:.1f}",
            ]
        )
    return rows


def terminal_table(results: BenchResults) -> str:
    """One table per problem, methods sorted by Δm% against single-task models."""
    out = []
    for name, res in results.problems.items():
        rows = _rows(res)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        out.append(f"{name}: {res.description}\n" + "\n".join(lines))
        sigma = _sigma_lines(res)
        if sigma:
            out.append(sigma)
        if "equal" in res.methods:
            out.append(_separation(res))
    return "\n\n".join(out)


def _sigma_lines(res: ProblemSummary) -> str:
    true = res.true_sigma
    learned = {m: r.sigma for m, r in res.methods.items() if r.sigma}
    if not true or not learned:
        return ""
    lines = [
        "learned σ (mean over seeds) against the true noise std:",
        "task      true  " + "  ".join(f"{m:>13}" for m in learned),
    ]
    for t, s in true.items():
        lines.append(
            f"{t:<8} {s:5g}  "
            + "  ".join(f"{learned[m][t].mean:13.3f}" if t in learned[m] else f"{'-':>13}" for m in learned)
        )
    return "\n".join(lines)


def _markdown(results: BenchResults, pictures: dict[str, list[str]]) -> str:
    parts = [
        "# taskbalance bench report",
        "",
        f"Configuration: `{results.config.to_dict()}`",
        "",
        "Δm% = (100/K) Σₖ (−1)^hₖ (Mₖ − Mₖᵇ)/Mₖᵇ (hₖ = 1 when higher is better): lower is better, "
        "negative beats the baseline. Mean ± std over seeds (the mean alone for one seed).",
        "",
    ]
    for name, res in results.problems.items():
        rows = _rows(res)
        parts += [
            f"## {name}",
            "",
            res.description,
            "",
            "| " + " | ".join(rows[0]) + " |",
            "|" + "---|" * len(rows[0]),
        ]
        parts += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        sigma = _sigma_lines(res)
        if sigma:
            parts += ["", "```", sigma, "```"]
        if "equal" in res.methods:
            parts += ["", _separation(res)]
        parts += [""] + [f"![{p}]({p})" for p in pictures.get(name, [])] + [""]
    return "\n".join(parts)


def _csv(results: BenchResults) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "problem",
            "method",
            "task",
            "metric",
            "mean",
            "std",
            "delta_stl_mean",
            "delta_stl_std",
            "delta_equal_mean",
            "delta_equal_std",
            "time_per_step_s",
        ]
    )
    for name, res in results.problems.items():
        for m, row in res.methods.items():
            de = row.delta_equal
            for t, ms in row.metrics.items():
                w.writerow(
                    [
                        name,
                        m,
                        t,
                        res.metrics[t].name,
                        ms.mean,
                        ms.std,
                        row.delta_stl.mean,
                        row.delta_stl.std,
                        "" if de is None else de.mean,
                        "" if de is None else de.std,
                        row.time_per_step,
                    ]
                )
    return buf.getvalue()


def plot_problem(name: str, res: ProblemSummary, out: Path) -> list[str]:
    """Loss curves, weight trajectories, Δm% per method and (noisy-tasks) learned σ.

    Returns the written file names (relative to ``out``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    methods = res.methods
    tasks = list(res.metrics)

    def save(fig: Any, stem: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        write_atomic(out / f"{name}-{stem}.png", buf.getvalue())
        written.append(f"{name}-{stem}.png")

    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for m, row in methods.items():
            if t in row.loss_curves:
                ax.plot(range(1, len(row.loss_curves[t]) + 1), row.loss_curves[t], label=m, lw=1)
        ax.set_title(f"{t}: train loss", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_yscale("log")
    axes[0][-1].legend(fontsize=6, ncol=2)
    save(fig, "loss-curves")

    weighted = {m: r.weights for m, r in methods.items() if r.weights and m != STL}
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for m, w in weighted.items():
            ax.plot(range(1, len(w[t]) + 1), w[t], label=m, lw=1)
        ax.set_title(f"{t}: weight (epoch mean)", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_yscale("symlog", linthresh=1e-2)
    axes[0][-1].legend(fontsize=6, ncol=2)
    save(fig, "weights")

    order = sorted((m for m in methods if m != STL), key=lambda m: methods[m].delta_stl.mean)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(order) + 1), 3))
    ax.bar(
        range(len(order)),
        [methods[m].delta_stl.mean for m in order],
        yerr=[methods[m].delta_stl.std for m in order],
        color="steelblue",
    )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("Δm% vs single-task (lower is better)", fontsize=8)
    save(fig, "delta-m")

    true = res.true_sigma
    learned = {m: r.sigma for m, r in methods.items() if r.sigma}
    if true and learned:
        fig, ax = plt.subplots(figsize=(4, 3.4))
        lim = max(true.values()) * 1.3
        ax.plot([0, lim], [0, lim], color="grey", lw=0.8, ls="--", label="σ = true σ")
        for m, sig in learned.items():
            ts = [t for t in true if t in sig]
            ax.errorbar(
                [true[t] for t in ts],
                [sig[t].mean for t in ts],
                yerr=[sig[t].std for t in ts],
                marker="o",
                ls="",
                label=m,
                capsize=2,
            )
        ax.set_xlabel("true noise std", fontsize=8)
        ax.set_ylabel("learned σ", fontsize=8)
        ax.legend(fontsize=7)
        save(fig, "sigma")
    return written


def plots_available() -> bool:
    """Whether matplotlib (the ``taskbalance[bench]`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_reports(results: BenchResults, out: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write ``results.csv``, ``report.md`` and the PNG plots into ``out`` (the plots
    only where matplotlib is installed: every table is written without it)."""
    root = Path(out)
    plots = plots and plots_available()
    pictures = {
        name: plot_problem(name, res, root) if plots else [] for name, res in results.problems.items()
    }
    write_atomic(root / "results.csv", _csv(results))
    write_atomic(root / "report.md", _markdown(results, pictures))
    return {"csv": root / "results.csv", "markdown": root / "report.md", "json": root / "results.json"}
