"""Fill the result columns of the docs' method table from the committed results files.

    python benchmarks/method_table.py          # rewrites docs/methods/index.md in place

Column 4: Δm% against equal weighting on the default run (``noisy-scales``, 3 seeds,
``benchmarks/results/default-run/results.json``, written by ``default_bench.py``).
Column 5: the mean over the four real problems of Δm% against the single-task models
(``benchmarks/results/real-run/results.json``). tests/test_readme_numbers.py checks that
the page agrees with the files.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "methods" / "index.md"
ROW = re.compile(
    r"^(\| \[`(?P<name>[a-z0-9-]+)`\]\([a-z0-9-]+\.md\) \| [^|]+ \| [^|]+ \| )[^|]+ \| [^|]+ \|$", re.M
)


def columns() -> dict[str, tuple[str, str]]:
    """The two result cells of every method, from the results files."""
    default = json.loads((ROOT / "benchmarks/results/default-run/results.json").read_text())
    real = json.loads((ROOT / "benchmarks/results/real-run/results.json").read_text())
    (problem,) = default["problems"].values()
    out = {}
    for name, row in problem["methods"].items():
        runs = [p["methods"].get(name) for p in real["problems"].values()]
        mean_real = (
            f"{statistics.mean(r['delta_stl']['mean'] for r in runs if r is not None):+.2f}"
            if all(r is not None for r in runs)
            else "not in that run"
        )
        d = row["delta_equal"]
        out[name] = (f"{d['mean']:+.2f} ± {d['std']:.2f}", mean_real)
    return out


def render(text: str) -> str:
    """``text`` (the page) with every method row's result cells filled in."""
    cells = columns()
    return ROW.sub(lambda m: f"{m.group(1)}{cells[m.group('name')][0]} | {cells[m.group('name')][1]} |", text)


if __name__ == "__main__":
    PAGE.write_text(render(PAGE.read_text()))
