"""Hard sharing vs MMoE vs PLE on the MMoE paper's synthetic data, across task correlations.

    python benchmarks/architectures.py [--seeds 3] [--epochs 20] [--out FILE] [--readme]

The data follow Ma et al. (KDD 2018), section 3.2, with the reference generator's
constants (αᵢ = i, βᵢ = i², m = 10, c = 1, noise std 0.01; see ``mmoe-synthetic`` in
:mod:`taskbalance.bench.problems`). Every cell is a `taskbalance bench` cell (equal
weighting, resumable in --cells). The table is the test RMSE averaged over the two
tasks, mean ± std over seeds, and MMoE's and PLE's gain over hard sharing in percent.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
from readme_block import parser as readme_parser
from readme_block import publish

from taskbalance.bench.problems import get_problem
from taskbalance.bench.runner import run_bench

CORRELATIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ARCHS = ("hard", "mmoe", "ple")


def main() -> None:
    parser = readme_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cells", default="bench-arch", help="where the resumable cells go")
    args = parser.parse_args()
    problems = [f"mmoe-synthetic:{c}" for c in CORRELATIONS]
    per_seed: dict[tuple[str, float], list[float]] = {}
    train_s = 0.0
    for arch in ARCHS:
        res = run_bench(
            problems,
            ["equal"],
            list(range(args.seeds)),
            args.cells,
            epochs=args.epochs,
            arch=arch,
            progress=False,
        )
        del res
        for c, p in zip(CORRELATIONS, problems):
            cells = _cells(args.cells, f"{p}@{arch}", args.seeds)
            per_seed[(arch, c)] = [statistics.mean(cell["metrics"].values()) for cell in cells]
            train_s += sum(cell["time_per_step"] * cell["steps"] for cell in cells)
    lines = [
        f"MMoE paper's synthetic data (reference constants αᵢ = i, βᵢ = i², noise std 0.01), "
        f"equal weighting, {args.epochs} epochs, 10,000 training samples, {args.seeds} seeds "
        f"({train_s:.0f} s of training). Test RMSE averaged over the two tasks (mean ± std), "
        "and the gain over hard sharing (positive: lower RMSE than hard sharing):",
        "",
        "| task correlation ρ | " + " | ".join(ARCHS) + " | MMoE gain | PLE gain | linear least squares |",
        "|---|" + "---|" * (len(ARCHS) + 3),
    ]
    for c in CORRELATIONS:
        cells = [f"{statistics.mean(per_seed[(a, c)]):.3f} ± {_std(per_seed[(a, c)]):.3f}" for a in ARCHS]
        hard = statistics.mean(per_seed[("hard", c)])
        gains = [f"{100 * (hard - statistics.mean(per_seed[(a, c)])) / hard:+.1f}%" for a in ("mmoe", "ple")]
        lines.append(f"| {c} | " + " | ".join([*cells, *gains, f"{_linear(c):.3f}"]) + " |")
    lines += [
        "",
        f"The targets' std is {_target_std():.2f}; the last column is the test RMSE of a linear "
        "least-squares fit of each target on x, averaged over the two tasks.",
    ]
    publish("\n".join(lines) + "\n", args.out, args.readme, "arch")


def _cells(root: str, key: str, seeds: int) -> list[dict[str, Any]]:
    import json
    from pathlib import Path

    return [
        json.loads((Path(root) / "cells" / key / "equal" / f"seed{s}.json").read_text()) for s in range(seeds)
    ]


def _linear(rho: float) -> float:
    """Test RMSE of ordinary least squares (with intercept), averaged over the two tasks."""
    data = get_problem(f"mmoe-synthetic:{rho}").load()
    train, test = data.train, data.test
    ones = torch.ones(len(train), 1, dtype=torch.float64)
    x, xt = torch.cat([train.x.double(), ones], 1), torch.cat([test.x.double(), ones[: len(test)]], 1)
    rmse = []
    for t in train.y:
        w = torch.linalg.lstsq(x, train.y[t].double()[:, None]).solution
        rmse.append(float((xt @ w).squeeze(1).sub(test.y[t].double()).pow(2).mean().sqrt()))
    return statistics.mean(rmse)


def _target_std() -> float:
    test = get_problem("mmoe-synthetic:0.5").load().test
    return statistics.mean(float(v.std()) for v in test.y.values())


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    main()
