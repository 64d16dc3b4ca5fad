"""Step time of every loss-based method divided by the plain sum of losses.

A training step (zero_grad, forward, per-task losses, balancer backward, Adam step,
and the method's hooks) on a shared MLP with 3 and with 50 tasks, measured in one
process. Every round runs a block of steps of each method in a fresh random order;
a method's ratio is the median over rounds of its block time divided by the plain
sum's block time *in the same round*, so slow drifts of the machine cancel. One
intra-op thread by default: with two threads on a two-core machine, any other
activity stalls one of them and the timings scatter by ±10%.

    python benchmarks/loss_overhead.py [--rounds 60] [--steps 10] [--threads 1] [--out FILE]

The model: 256 inputs, two shared hidden layers of 512 (ReLU), one linear output
per task (a single Linear(512, T) head), batch 256, MSE per task. The baseline
``sum`` is ``torch.stack(losses).sum().backward()`` with no balancer at all.
``famo`` includes its ``after_step`` hook but not the extra forward pass that
re-evaluates the losses for it; ``famo+reeval`` includes that pass too.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import taskbalance as tb

BATCH, IN, HIDDEN = 256, 256, 512


def make_step(method: str, num_tasks: int) -> Callable[[], None]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, num_tasks)
    )
    x = torch.randn(BATCH, IN)
    y = torch.randn(BATCH, num_tasks)
    names = [f"t{i}" for i in range(num_tasks)]

    def task_losses() -> dict[str, torch.Tensor]:
        per_task = ((model(x) - y) ** 2).mean(0)
        return dict(zip(names, per_task.unbind()))

    if method == "sum":
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            torch.stack(list(task_losses().values())).sum().backward()
            opt.step()

        return step

    name = method.removesuffix("+reeval")
    balancer = tb.create(name, tasks=names, **tb.get_method(name).bench_kwargs)
    opt = torch.optim.Adam([{"params": model.parameters(), "lr": 1e-4}, *balancer.param_groups(lr=1e-3)])
    reeval = method.endswith("+reeval")
    counter = [0]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        losses = task_losses()
        balancer.backward(losses)
        opt.step()
        if name == "famo":
            if reeval:
                with torch.no_grad():
                    losses = task_losses()
            balancer.after_step({k: v.detach() for k, v in losses.items()})
        counter[0] += 1
        if counter[0] % 50 == 0:
            balancer.epoch_end()

    return step


def measure(methods: list[str], num_tasks: int, rounds: int, steps: int) -> dict[str, tuple[float, float]]:
    """Median paired ratio to ``sum`` and median step time (s) of every method."""
    fns = {m: make_step(m, num_tasks) for m in methods}
    for fn in fns.values():  # warm-up (and get stch past its warm-up epoch)
        for _ in range(60):
            fn()
    times: dict[str, list[float]] = {m: [] for m in methods}
    order = list(methods)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for m in order:
            fn = fns[m]
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[m].append((time.perf_counter() - t0) / steps)
    base = times["sum"]
    return {
        m: (statistics.median(t / b for t, b in zip(v, base)), statistics.median(v)) for m, v in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", type=str, default=None, help="comma-separated subset")
    parser.add_argument("--tasks", type=str, default="3,50")
    parser.add_argument("--out", type=str, default=None, help="also write the Markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = ["sum", *tb.methods("loss"), "famo+reeval"]
    if args.methods:
        methods = ["sum", *args.methods.split(",")]
    counts = [int(t) for t in args.tasks.split(",")]
    results = {t: measure(methods, t, args.rounds, args.steps) for t in counts}
    lines = [
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads; "
        f"MLP {IN}-{HIDDEN}-{HIDDEN}-T, batch {BATCH}; median paired ratio over {args.rounds} rounds "
        f"x {args.steps} steps",
        "",
        "| method | " + " | ".join(f"{t} tasks: ratio (ms/step)" for t in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for m in methods:
        cells = [f"{results[t][m][0]:.3f} ({1e3 * results[t][m][1]:.2f})" for t in counts]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
