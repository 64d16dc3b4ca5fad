"""GradNorm's toy problem (Chen et al., ICML 2018, section 4): do its weights track the tasks' scales?

    python benchmarks/gradnorm_toy.py [--seeds 3] [--out FILE] [--readme]

Tasks fᵢ(x) = σᵢ·tanh((B + εᵢ)x) share B; σᵢ sets each task's scale (the bench's
``gradnorm-toy``, σ = (1, 100), and ``gradnorm-toy-10``, σᵢ log-spaced in [1, 100]).
A 4-layer MLP is trained with equal weighting and with GradNorm (our defaults,
α = 1.5, on the shared encoder's parameters) for 20 epochs. The table gives GradNorm's
mean weight over the last epoch per task, the slope of log wᵢ against log σᵢ (0: the
weights ignore the scales; −2: they undo the σᵢ² scale of the squared-error
gradients exactly), and each method's test loss ratio Lᵢ(T)/Lᵢ(0) averaged over tasks.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from readme_block import parser as readme_parser
from readme_block import publish

from taskbalance.bench.problems import GradNormToy, get_problem
from taskbalance.bench.runner import run_bench

PROBLEMS = ("gradnorm-toy", "gradnorm-toy-10")


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = readme_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cells", default="bench-gradnorm-toy", help="where the resumable cells go")
    args = parser.parse_args()
    t0 = time.perf_counter()
    seeds = list(range(args.seeds))
    run_bench(PROBLEMS, ["equal", "gradnorm"], seeds, args.cells, progress=False)
    lines = []
    for name in PROBLEMS:
        problem = get_problem(name)
        assert isinstance(problem, GradNormToy)
        sigmas = problem.sigmas
        tasks = [f"t{i}" for i in range(len(sigmas))]
        cells = {
            m: [
                json.loads((Path(args.cells) / "cells" / name / m / f"seed{s}.json").read_text())
                for s in seeds
            ]
            for m in ("equal", "gradnorm")
        }
        final = {t: [c["weights"][t][-1] for c in cells["gradnorm"]] for t in tasks}
        slopes = [
            _slope([math.log(s) for s in sigmas], [math.log(c["weights"][t][-1]) for t in tasks])
            for c in cells["gradnorm"]
        ]
        ratio = {m: [statistics.mean(c["metrics"].values()) for c in runs] for m, runs in cells.items()}
        lines += [
            f"**`{name}`** (σ = {', '.join(f'{s:.3g}' for s in sigmas)}):",
            "",
            "| | " + " | ".join(f"σ = {s:.3g}" for s in sigmas) + " |",
            "|---|" + "---|" * len(sigmas),
            "| GradNorm's weight, last epoch | " + " | ".join(_ms(final[t], 3) for t in tasks) + " |",
            "",
            f"Slope of log w against log σ: {_ms(slopes, 2)}. Test loss ratio Lᵢ(T)/Lᵢ(0), mean "
            f"over tasks: equal {_ms(ratio['equal'], 4)}, GradNorm {_ms(ratio['gradnorm'], 4)}.",
            "",
        ]
    head = (
        f"20 epochs, {args.seeds} seeds, mean ± std over seeds ({time.perf_counter() - t0:.0f} s; "
        "`python benchmarks/gradnorm_toy.py`):\n\n"
    )
    publish(head + "\n".join(lines), args.out, args.readme, "gradnormtoy")


def _ms(values: list[float], digits: int) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


if __name__ == "__main__":
    main()
