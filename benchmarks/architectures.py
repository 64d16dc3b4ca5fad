"""Hard sharing vs MMoE vs PLE on the MMoE paper's synthetic data, across task correlations.

    python benchmarks/architectures.py [--seeds 3] [--epochs 20] [--out bench-arch]

Every cell is a `taskbalance bench` cell (equal weighting; resumable in --out). The
table is the test RMSE averaged over the two tasks, mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from taskbalance.bench.runner import run_bench

CORRELATIONS = (0.5, 0.9, 1.0)
ARCHS = ("hard", "mmoe", "ple")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="bench-arch")
    args = parser.parse_args()
    t0 = time.perf_counter()
    problems = [f"mmoe-synthetic:{c}" for c in CORRELATIONS]
    table: dict[tuple[str, float], tuple[float, float]] = {}
    for arch in ARCHS:
        res = run_bench(
            problems,
            ["equal"],
            list(range(args.seeds)),
            args.out,
            epochs=args.epochs,
            arch=arch,
            progress=False,
        )
        for c, p in zip(CORRELATIONS, problems):
            row = res["problems"][f"{p}@{arch}"]["methods"]["equal"]["metrics"]
            means = [statistics.mean(row[t]["mean"] for t in row)]
            stds = [statistics.mean(row[t]["std"] for t in row)]
            table[(arch, c)] = (means[0], stds[0])
    lines = ["| task correlation ρ | " + " | ".join(ARCHS) + " |", "|---|" + "---|" * len(ARCHS)]
    for c in CORRELATIONS:
        lines.append(
            f"| {c} | " + " | ".join(f"{table[(a, c)][0]:.3f} ± {table[(a, c)][1]:.3f}" for a in ARCHS) + " |"
        )
    print("\n".join(lines))
    print(f"\n{args.seeds} seeds, {args.epochs} epochs, {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
