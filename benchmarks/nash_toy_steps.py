"""Nash-MTL's step cost along the authors' two-objective toy, up to a Pareto-stationary point.

    python benchmarks/nash_toy_steps.py [--steps 5000] [--out FILE] [--readme]

From each of the five starts of the CAGrad/Nash-MTL/FAMO papers (``taskbalance.bench.toy``),
Adam (lr 0.01) on x with ``nash-mtl`` (max_norm=None, so that the bargaining system is
solved exactly at every step), and the time of every balancer step (per-task gradients,
the solve, the write-back). Near a Pareto-stationary point the gradients become almost
opposite and the bargaining weights grow like the inverse of the remaining utility: the
old solver, from α = 1 with a 100-iteration cap, slowed down 27x there (issue 13). Reported
per start: the slowest window of 20 steps (median) over the first one, the final distance to
stationarity (the norm of the min-norm point of the two gradients, relative to the
gradients) and the largest weight.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from readme_block import publish

import taskbalance as tb
from taskbalance.bench.toy import SHIFT, STARTS, toy_losses


def run(start: tuple[float, float], steps: int) -> dict[str, float]:
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    balancer = tb.create("nash-mtl", tasks=2, max_norm=None)
    opt = torch.optim.Adam([x], lr=0.01)
    times, largest = [], 0.0
    for _ in range(steps):
        opt.zero_grad()
        losses = toy_losses(x) + SHIFT
        t0 = time.perf_counter()
        balancer.backward(list(losses.unbind()), shared_params=[x])
        times.append(time.perf_counter() - t0)
        largest = max(largest, max(float(w) for w in balancer.weights.values()))
        opt.step()
    jac = torch.stack([torch.autograd.grad(v, x, retain_graph=True)[0] for v in toy_losses(x)])
    w = tb.solvers.min_norm_weights(jac @ jac.T)
    stationarity = float((w @ jac).norm()) / max(float(jac.norm(dim=1).max()), 1e-300)
    # medians of windows of 20 steps: one step delayed by the OS is not the solver
    windows = [statistics.median(times[i : i + 20]) for i in range(0, len(times) - 19, 20)]
    return {"slowest/first": max(windows) / windows[0], "stationarity": stationarity, "max weight": largest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    parser.add_argument("--readme", action="store_true", help="copy the result into README.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [
        f"nash-mtl on the two-objective toy, {args.steps} Adam steps (lr 0.01), max_norm=None",
        "",
        "| start | slowest 20 steps / first 20 (medians) | ‖min-norm point‖ / max ‖gᵢ‖ at the end "
        "| largest weight |",
        "|---|---|---|---|",
    ]
    for start in STARTS:
        r = run(start, args.steps)
        lines.append(
            f"| {start} | {r['slowest/first']:.2f} | {r['stationarity']:.1e} | {r['max weight']:.3g} |"
        )
    text = "\n".join(lines) + "\n"
    publish(text, args.out, args.readme, "nashtoy")


if __name__ == "__main__":
    main()
