"""The default `taskbalance bench` run, as the README shows it.

    python benchmarks/default_bench.py [--out benchmarks/results/default-run.md] [--readme]

Runs ``taskbalance bench`` with no arguments (every method on ``noisy-scales``, 3 seeds)
into a scratch folder, and writes what it printed, with its wall time, as a Markdown
block (the README's ``default`` block; tests/test_readme_numbers.py checks that they
agree).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time

from readme_block import publish

from taskbalance.cli import main as taskbalance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the Markdown block here")
    parser.add_argument("--readme", action="store_true", help="copy the block into README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        printed = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            code = taskbalance(["bench", "--out", scratch, "--no-progress", "--no-plots"])
        wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(code)
    table = printed.getvalue().split("\nwrote ")[0].rstrip()
    text = (
        f"`taskbalance bench` with no arguments: {wall:.0f} s on {os.cpu_count()} CPU cores "
        "(the ms/step column depends on the machine and its load):\n\n```\n" + table + "\n```\n"
    )
    publish(text, args.out, args.readme, "default")


if __name__ == "__main__":
    main()
