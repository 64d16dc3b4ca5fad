"""Trajectories of every method on the two-objective toy, from the same five starts.

python benchmarks/toy.py [--steps 1000] [--out benchmarks/results/toy_trajectories.png]
"""

from __future__ import annotations

import argparse
import time

import taskbalance as tb
from taskbalance.bench.toy import STARTS, plot_toy, run_toy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/toy_trajectories.png")
    args = parser.parse_args()
    t0 = time.perf_counter()
    paths = {m: [run_toy(m, s, steps=args.steps) for s in STARTS] for m in tb.methods()}
    plot_toy(paths, args.out)
    print(f"wrote {args.out} ({len(paths)} methods x {len(STARTS)} starts, {time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
