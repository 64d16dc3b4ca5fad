"""Speed and memory of the gradient-based methods, as ratios, in one run.

    python benchmarks/gradient.py [--quick] [--out FILE]

(a) The Jacobian engine: per-task gradients by one vectorised backward ("batched")
    and by one backward per task ("loop"), against one plain backward of the summed
    loss ("sum"), on an MLP and a small CNN with 2, 3 and 10 tasks, with respect to the
    shared parameters and to the shared features. Time is the median over repeats;
    peak memory is the peak resident set size of a fresh process running that one
    configuration, minus the same process's size before the step.
(b) Solver time of every Gramian method (mgda, upgrad, cagrad, nash-mtl, fairgrad, imtl-g,
    aligned-mtl) against TorchJD's implementations (quadprog, cvxpy, scipy, Frank-Wolfe) on
    the same Gramians, on every matrix family of the property tests (tests/properties.py:
    normal, zero row, duplicated, opposite, rank-deficient, strongly and weakly stationary,
    conflicting) at 3, 10 and 40 tasks and 10 tasks in 4 dimensions, and the same families
    at 10 tasks scaled by 0, 1e-10 and 1e15 ("10x64 scaled"): the worst family's
    speed-up, the median, and the largest distance between the two directions (relative
    to the largest gradient) on the full-rank families, where the direction is unique.
    The solver reports which implementation of its QP ran (taskbalance.solvers.backend()).
(c) A full training step of every gradient method divided by the plain sum of losses
    (MLP 256-512-512 with one head per task, batch 256, 3 tasks, shared parameters).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from readme_block import copy_to_readme
from torch import nn

import taskbalance as tb
from taskbalance.jacobian import jacobian


def timeit(fn: Callable[[], object], repeats: int, inner: int = 1) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def timeit_pair(
    ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Time two calls in alternating rounds of about 20 ms each; the fastest round of each.

    Alternating cancels the machine's drift, and the minimum is the least noisy estimate
    of a microsecond call's cost on a shared CPU.
    """

    def calls_per_round(fn: Callable[[], object]) -> int:
        fn()
        t0 = time.perf_counter()
        fn()
        return max(1, min(2000, int(0.02 / max(time.perf_counter() - t0, 1e-7))))

    best = []
    for fn in (ours, theirs):
        best.append((fn, calls_per_round(fn), float("inf")))
    for _ in range(repeats):
        for i, (fn, inner, low) in enumerate(best):
            best[i] = (fn, inner, min(low, timeit(fn, 1, inner)))
    return best[0][2], best[1][2]


# ------------------------------------------------------------------ (a) Jacobian engine
def build(model: str, tasks: int) -> tuple[nn.Module, nn.ModuleList, torch.Tensor]:
    torch.manual_seed(0)
    if model == "mlp":
        enc: nn.Module = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        x = torch.randn(128, 128)
        width = 256
    else:
        enc = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        x = torch.randn(64, 3, 32, 32)
        width = 32 * 8 * 8
    heads = nn.ModuleList(
        nn.Sequential(nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, 1)) for _ in range(tasks)
    )
    return enc, heads, x


def engine_step(model: str, tasks: int, mode: str, engine: str) -> Callable[[], None]:
    enc, heads, x = build(model, tasks)
    shared = list(enc.parameters())

    def step() -> None:
        z = enc(x)
        losses = torch.stack([h(z).pow(2).mean() for h in heads])
        if engine == "sum":
            torch.autograd.grad(losses.sum(), shared)
            return
        inputs = shared if mode == "params" else [z]
        jacobian(losses, inputs, batched=engine == "batched", retain_graph=False)

    return step


def child(spec: str) -> None:
    """Run one engine configuration and print its time and peak-memory growth (JSON)."""
    model, tasks, mode, engine, repeats = spec.split(":")
    torch.set_num_threads(1)
    step = engine_step(model, int(tasks), mode, engine)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = timeit(step, int(repeats))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"time": t, "peak_kib": peak - before}))


def run_child(spec: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", spec], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def section_a(quick: bool) -> list[str]:
    repeats = 3 if quick else 10
    lines = [
        "| model | tasks | mode | batched time | loop time | batched mem | loop mem |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in ("mlp", "cnn"):
        for tasks in (2, 3, 10):
            base = run_child(f"{model}:{tasks}:params:sum:{repeats}")
            for mode in ("params", "features"):
                r = {e: run_child(f"{model}:{tasks}:{mode}:{e}:{repeats}") for e in ("batched", "loop")}
                mem = [r[e]["peak_kib"] / max(base["peak_kib"], 1.0) for e in ("batched", "loop")]
                lines.append(
                    f"| {model} | {tasks} | {mode} | {r['batched']['time'] / base['time']:.2f} "
                    f"| {r['loop']['time'] / base['time']:.2f} | {mem[0]:.2f} | {mem[1]:.2f} |"
                )
    return lines


# ------------------------------------------------------------------------ (b) solvers
#: our method name and keywords, and TorchJD's weighting of a Gramian (or of a Jacobian)
SOLVER_PAIRS: dict[str, tuple[dict[str, object], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {}


def _solver_pairs() -> None:
    from torchjd import aggregation as agg

    k_of = lambda jac: jac.shape[0]  # noqa: E731
    SOLVER_PAIRS.update(
        {
            "mgda": ({}, lambda gram, _jac: agg.MGDA().gramian_weighting(gram)),
            "upgrad": ({}, lambda gram, _jac: agg.UPGrad().gramian_weighting(gram)),
            "cagrad": ({"rescale": False}, lambda gram, _jac: agg.CAGrad(c=0.4).gramian_weighting(gram)),
            "nash-mtl": (
                {"max_norm": None},
                lambda _gram, jac: agg.NashMTL(n_tasks=k_of(jac), max_norm=0.0).weighting(jac),
            ),
            "fairgrad": (
                {"max_norm": None},
                lambda gram, jac: agg.FairGrad(alpha=1.0).gramian_weighting(gram) * k_of(jac),
            ),
            "imtl-g": ({}, lambda gram, _jac: agg.IMTLG().gramian_weighting(gram)),
            "aligned-mtl": ({}, lambda gram, _jac: agg.AlignedMTL().gramian_weighting(gram)),
        }
    )


def solver_weights(balancer: tb.Balancer, gram: torch.Tensor) -> torch.Tensor:
    """A Gramian method's weights for ``gram`` as a training step computes them (every task
    present, unit losses): the solver alone, without forming the Gramian."""
    k = gram.shape[0]
    step = tb.Step(balancer, balancer.task_names, slice(None), True, "params")
    ones = torch.ones(k, dtype=torch.float64)
    return balancer._weights(gram, ones, step)  # type: ignore[attr-defined,no-any-return]


def section_b(quick: bool) -> list[str]:
    """Every Gramian method against TorchJD on every matrix family of the property tests
    (tests/properties.py), at K = 3, 10 (and 10 tasks in 4 dimensions) and 40."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.properties import matrices, scaled

    _solver_pairs()
    repeats = 3 if quick else 6
    sizes = ((3, 64), (10, 64), (10, 4), (40, 64))
    cases = [(c, f"{c.jac.shape[0]}x{c.jac.shape[1]}") for c in matrices(sizes=sizes, seed=7)]
    cases += [(c, "10x64 scaled") for c in scaled(matrices(sizes=((10, 64),), seed=8), (0.0, 1e-10, 1e15))]
    rows: dict[tuple[str, str], list[tuple[float, float, float, str]]] = {}
    for case, size in cases:
        jac = case.jac
        k = jac.shape[0]
        gram = jac @ jac.T
        for name, (kw, theirs_fn) in SOLVER_PAIRS.items():
            b = tb.create(name, tasks=k, **kw)

            def ours(b: tb.Balancer = b, gram: torch.Tensor = gram) -> torch.Tensor:
                return solver_weights(b, gram)

            def theirs(fn: Callable[..., torch.Tensor] = theirs_fn, jac: torch.Tensor = jac) -> torch.Tensor:
                return fn(jac @ jac.T, jac)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    w_theirs = theirs().double()
                except Exception:  # TorchJD's solver gave up on this input: time ours alone
                    w_theirs = None
                if w_theirs is None:
                    t_ours, t_theirs = timeit(ours, repeats), float("nan")
                else:
                    t_ours, t_theirs = timeit_pair(ours, theirs, repeats)
                w_ours = ours().double()
            # distance of the two directions relative to the largest gradient, on the inputs
            # where the direction is unique (full rank: the regularised singular systems of
            # nash-mtl, fairgrad and cagrad have no common answer to compare)
            dist = float("nan")
            if w_theirs is not None and case.full_rank:
                dist = float((w_ours - w_theirs) @ jac @ ((w_ours - w_theirs) @ jac)) ** 0.5
                dist /= max(float(jac.norm(dim=1).max()), 1e-300)
            rows.setdefault((name, size), []).append((t_ours, t_theirs, dist, case.family))
    lines = [
        f"QP implementation: {tb.solvers.backend()} (taskbalance.solvers.backend())",
        "",
        "| method | tasks x dims | worst family | taskbalance (ms) | TorchJD (ms) | worst speed-up "
        "| median speed-up | max ‖d − d_TorchJD‖ / max ‖gᵢ‖ (full rank) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, size), results in rows.items():
        timed = [r for r in results if r[1] == r[1]]
        worst = min(timed, key=lambda r: r[1] / r[0])
        ratios = sorted(r[1] / r[0] for r in timed)
        dists = [r[2] for r in results if r[2] == r[2]]
        failed = len(results) - len(timed)
        note = f" ({failed} TorchJD failures)" if failed else ""
        lines.append(
            f"| {name} | {size} | {worst[3]} | {1e3 * worst[0]:.3f} | {1e3 * worst[1]:.3f} "
            f"| {worst[1] / worst[0]:.1f}x | {statistics.median(ratios):.1f}x "
            f"| {f'{max(dists):.1e}' if dists else '– (no full-rank family)'}{note} |"
        )
    return lines


# ---------------------------------------------------------------------- (c) full step
def section_c(quick: bool) -> list[str]:
    rounds = 5 if quick else 20
    torch.set_num_threads(1)

    def make(method: str) -> Callable[[], None]:
        torch.manual_seed(0)
        enc = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU())
        heads = nn.Linear(512, 3)
        x, y = torch.randn(256, 256), torch.randn(256, 3)
        names = ["a", "b", "c"]
        if method == "sum":
            opt = torch.optim.Adam([*enc.parameters(), *heads.parameters()], lr=1e-4)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                ((heads(enc(x)) - y) ** 2).mean(0).sum().backward()
                opt.step()

            return step
        b = tb.create(method, tasks=names)
        opt = torch.optim.Adam(
            [{"params": [*enc.parameters(), *heads.parameters()], "lr": 1e-4}, *b.param_groups(lr=1e-3)]
        )

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            per_task = ((heads(enc(x)) - y) ** 2).mean(0)
            b.backward(dict(zip(names, per_task.unbind())), shared_params=enc.parameters())
            opt.step()

        return step

    methods = ["sum", *tb.methods("gradient")]
    steps = {m: make(m) for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m in methods:
            times[m].append(timeit(steps[m], 1, inner=5))
    base = times["sum"]
    lines = ["| method | step time / sum | ms/step |", "|---|---|---|"]
    for m in methods:
        ratio = statistics.median(t / s for t, s in zip(times[m], base))
        lines.append(f"| {m} | {ratio:.2f} | {1e3 * statistics.median(times[m]):.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--only", choices=["a", "b", "c"], default=None, help="run one section")
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="copy the --out file into README.md between the gradient markers",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    torch.set_num_threads(1)
    head = f"torch {torch.__version__}, {platform.machine()}, 1 thread"
    sections = {
        "a": ("(a) Jacobian engine: time and peak memory relative to one plain backward", section_a),
        "b": ("(b) solvers on the same Gramians, float64 (fastest of alternating rounds)", section_b),
        "c": ("(c) full training step relative to the plain sum (3 tasks)", section_c),
    }
    parts = [head]
    for key, (title, run) in sections.items():
        if args.only in (None, key):
            parts += ["", title, "", *run(args.quick)]
    text = "\n".join(parts)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.readme:
        copy_to_readme(text + "\n", "gradient")
        if args.only in (None, "c"):
            quote_on_method_pages(text)


#: the sentence of a method page that quotes its full-step ratio from section (c)
PAGE_SENTENCE = re.compile(r"(`benchmarks/gradient.py`\): \*\*)([0-9.]+)(×\*\* the plain sum)")


def quote_on_method_pages(text: str) -> None:
    """Write section (c)'s ratio of each method into its docs page's full-step sentence."""
    section = text[text.index("(c) full training step") :]
    for name, ratio in re.findall(r"^\| ([a-z-]+) \| ([0-9.]+) \|", section, flags=re.M):
        page = Path(__file__).resolve().parents[1] / "docs" / "methods" / f"{name}.md"
        if page.is_file():
            quoted = PAGE_SENTENCE.sub(lambda m, r=ratio: m.group(1) + r + m.group(3), page.read_text())
            page.write_text(quoted)


if __name__ == "__main__":
    main()
