"""Regenerate the per-method plots of the documentation site.

Runs the library's own bench (``taskbalance.bench.runner.run_bench``) on the default
``noisy-tasks`` problem, every registered method, one seed, the problem's default 20
epochs, and writes one small PNG per method into ``docs/img/methods/<name>.png``: the
per-epoch mean weight of every task (left) and the per-epoch mean training loss
(right), with the test Δm% in the title.

    .venv/bin/python docs/gen_plots.py            # about 2-4 min on 2 CPU cores

The bench cells are kept in ``--out`` (default ``/tmp/taskbalance-docs-bench``), so a
second run only redraws the figures. The run's results are committed as
``benchmarks/results/noisy-tasks-docs.json``, and each method page's sentence "On this
run the test Δm% is **x** against the single-task models and **y** against equal
weighting" is rewritten from it (tests/test_readme_numbers.py checks that they agree).
"""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

import taskbalance as tb
from taskbalance.bench.runner import STL, run_bench

PROBLEM = "noisy-tasks"
HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "benchmarks" / "results" / "noisy-tasks-docs.json"
#: the sentence under each method page's figure
CAPTION = re.compile(
    r"(test Δm% is \*\*)([+-]?\d+\.\d+)(\*\* against the single-task models and\s+\*\*)([+-]?\d+\.\d+)(\*\*)"
)


SIGMA = re.compile(r"Learned σ at the end: [^(]*\(")


def sigma_sentence(row: dict) -> str:
    """The learned-σ sentence of an uncertainty method's caption."""
    values = ", ".join(f"{t} {v['mean']:.2f}" for t, v in row["sigma"].items())
    return f"Learned σ at the end: {values} ("


def caption_numbers(row: dict) -> tuple[str, str]:
    """The two numbers of a method's caption: Δm% against single-task and against equal."""
    return f"{row['delta_stl']['mean']:+.2f}", f"{row['delta_equal']['mean']:+.2f}"


COLORS = {"reg_1": "tab:blue", "reg_3": "tab:orange", "reg_10": "tab:red", "cls": "tab:green"}


def plot_method(name: str, row: dict, stl_curves: dict, out: Path) -> int:
    """Draw one method's figure; return the PNG's size in bytes."""
    fig, (ax_w, ax_l) = plt.subplots(1, 2, figsize=(7.2, 2.6))
    for task, values in row["weights"].items():
        epochs = range(1, len(values) + 1)
        label = task
        if task in row["sigma"]:
            label += f" (σ={row['sigma'][task]['mean']:.2f})"
        ax_w.plot(epochs, values, color=COLORS.get(task), lw=1.4, label=label)
    low = min(min(v) for v in row["weights"].values())
    high = max(max(v) for v in row["weights"].values())
    if low > 0 and high / low > 10:
        ax_w.set_yscale("log")
    elif low <= 0 and high > 1e-2:
        ax_w.set_yscale("symlog", linthresh=1e-2)
    ax_w.set_title("weight of each task (epoch mean)", fontsize=9)
    ax_w.set_xlabel("epoch", fontsize=8)
    ax_w.legend(fontsize=7, loc="best")
    for task, values in row["loss_curves"].items():
        epochs = range(1, len(values) + 1)
        ax_l.plot(epochs, values, color=COLORS.get(task), lw=1.4, label=task)
        if task in stl_curves:
            ax_l.plot(epochs, stl_curves[task], color=COLORS.get(task), lw=0.8, ls=":")
    ax_l.set_yscale("log")
    ax_l.set_title("training loss (dotted: single-task)", fontsize=9)
    ax_l.set_xlabel("epoch", fontsize=8)
    for ax in (ax_w, ax_l):
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    d_stl, d_eq = row["delta_stl"]["mean"], row.get("delta_equal", {}).get("mean")
    title = f"{name} on {PROBLEM}: test Δm% {d_stl:+.2f} vs single-task"
    if d_eq is not None:
        title += f", {d_eq:+.2f} vs equal"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    out.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/taskbalance-docs-bench", help="bench output (resumable)")
    parser.add_argument("--img", default=str(HERE / "img" / "methods"), help="where the PNGs go")
    parser.add_argument("--methods", default=",".join(tb.methods()), help="comma-separated names")
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = [m for m in args.methods.split(",") if m]
    if "equal" not in methods:
        methods.append("equal")  # the Δm% against equal weighting needs it
    # the dict form (results.json's): the captions are checked against the committed JSON
    res = run_bench([PROBLEM], methods, seeds=[0], out=args.out).to_dict()["problems"][PROBLEM]
    img = Path(args.img)
    img.mkdir(parents=True, exist_ok=True)
    stl_curves = res["methods"][STL]["loss_curves"]
    for name in methods:
        size = plot_method(name, res["methods"][name], stl_curves, img / f"{name}.png")
        print(f"{img / f'{name}.png'}: {size / 1024:.1f} KiB")
    # a run of some methods updates their entries and keeps the others' (same problem, seed)
    keep = json.loads(RESULTS.read_text())["methods"] if RESULTS.is_file() else {}
    keep.update(
        {
            m: {k: r[k] for k in ("delta_stl", "delta_equal", "sigma", "metrics")}
            for m, r in res["methods"].items()
        }
    )
    RESULTS.write_text(json.dumps({"problem": PROBLEM, "seeds": [0], "methods": keep}, indent=1) + "\n")
    for name in methods:
        page = HERE / "methods" / f"{name}.md"
        if page.is_file():
            stl, eq = caption_numbers(res["methods"][name])
            text = CAPTION.sub(rf"\g<1>{stl}\g<3>{eq}\g<5>", page.read_text())
            if res["methods"][name]["sigma"]:
                text = SIGMA.sub(sigma_sentence(res["methods"][name]), text)
            page.write_text(text)


if __name__ == "__main__":
    main()
