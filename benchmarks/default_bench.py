"""The default `taskbalance bench` run, as the README shows it.

    python benchmarks/default_bench.py [--out benchmarks/results/default-run.md] [--readme]

Runs ``taskbalance bench`` with no arguments (every method on ``noisy-scales``, 3 seeds)
into ``--run-dir`` (a fresh run: its old cells are removed first; results.json, the CSV
and report.md are kept there, the cells are not committed), and writes what it printed,
with its wall time, as a Markdown block (the README's ``default`` block;
tests/test_readme_numbers.py checks that they agree, and the method table of the docs is
built from the run's results.json).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
from pathlib import Path

from readme_block import parser as readme_parser
from readme_block import publish

from taskbalance.cli import main as taskbalance


def main() -> None:
    parser = readme_parser(__doc__)
    parser.add_argument("--run-dir", default="results/default-run", help="where the run's results go")
    args = parser.parse_args()
    run = Path(args.run_dir)
    shutil.rmtree(run / "cells", ignore_errors=True)  # a fresh run, timed from nothing
    printed = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        code = taskbalance(["bench", "--out", str(run), "--no-progress", "--no-plots"])
    wall = time.perf_counter() - t0
    shutil.rmtree(run / "cells", ignore_errors=True)
    if code != 0:
        raise SystemExit(code)
    table = printed.getvalue().split("\nwrote ")[0].rstrip()
    text = (
        f"`taskbalance bench` with no arguments: {wall:.0f} s on {os.cpu_count()} CPU cores "
        "(ms/step: the median over seeds, which depends on the machine and its load):\n\n```\n"
        + table
        + "\n```\n"
    )
    publish(text, args.out, args.readme, "default")


if __name__ == "__main__":
    main()
