"""The README's Δm% table of a `taskbalance bench` run on the real problems, from its results.json.

    python benchmarks/real_run_table.py benchmarks/results/real-run-long [--marker fullrunlong] [--readme]

Writes ``table.md`` next to the run's ``results.json``: Δm% against the single-task
models (mean ± std over seeds) per problem and method, methods sorted by the mean over
problems, and one line on how many seeds and epochs. With ``--readme`` it also copies
the table into README.md between the marker's lines (tests/test_readme_numbers.py
checks that they agree).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from readme_block import copy_to_readme


def table(results: dict) -> str:  # type: ignore[type-arg]
    problems = results["problems"]
    names = list(problems)
    methods = list(next(iter(problems.values()))["methods"])
    mean = {
        m: statistics.mean(problems[p]["methods"][m]["delta_stl"]["mean"] for p in names) for m in methods
    }
    cfg = results["config"]
    epochs = cfg["epochs"] if cfg["epochs"] is not None else "each problem's default"
    lines = [
        f"Δm% against the single-task models (lower is better; mean ± std over {len(cfg['seeds'])} seeds), "
        f"epochs: {epochs}; methods sorted by the mean over problems.",
        "",
        "| method | " + " | ".join(names) + " | mean |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for m in sorted(methods, key=lambda m: (m != "single-task", mean[m])):
        cells = [_ms(problems[p]["methods"][m]["delta_stl"]) for p in names]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {mean[m]:+.2f} |")
    return "\n".join(lines) + "\n"


def _ms(d: dict[str, float]) -> str:
    return f"{d['mean']:+.2f} ± {d['std']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the folder holding the run's results.json")
    parser.add_argument("--marker", default=None, help="README marker to fill (with --readme)")
    parser.add_argument("--readme", action="store_true")
    args = parser.parse_args()
    text = table(json.loads((Path(args.run) / "results.json").read_text()))
    (Path(args.run) / "table.md").write_text(text)
    print(text)
    if args.readme:
        copy_to_readme(text, args.marker or "fullrun")


if __name__ == "__main__":
    main()
