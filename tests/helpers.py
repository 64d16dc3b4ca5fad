"""Helpers shared by the test modules (``tests/conftest.py`` keeps only fixtures and settings)."""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import taskbalance as tb

from .properties import aggregate

#: the device the suite runs on: ``TASKBALANCE_TEST_DEVICE=cuda`` makes every tensor a test
#: creates without a device land there (``tests/conftest.py`` applies it, and
#: ``benchmarks/gpu_check.py`` sets it); CPU by default
DEVICE = torch.device(os.environ.get("TASKBALANCE_TEST_DEVICE", "cpu"))

# hyper-parameters that make every method usable on a generic 3-task problem: each method's
# own Balancer.bench_kwargs, and distinct static weights, so that a test tells static weights
# from equal weighting
METHOD_KWARGS: dict[str, dict[str, Any]] = {
    name: dict(tb.get_method(name).bench_kwargs) for name in tb.methods()
} | {"static": {"weights": [1.0, 0.5, 2.0]}}


#: variables of a torch.distributed launch; a child process must not inherit stale ones
LAUNCH_VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
)


#: the benchmark scripts' folder
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (the scripts import their shared
    helpers by name, so their folder is on the path while it loads)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a test's child process: this one, minus launch variables."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def make(name: str, tasks: Any = ("a", "b", "c"), **kw: Any) -> tb.Balancer:
    """Build ``name`` with the defaults above."""
    return tb.create(name, tasks=tasks, **{**METHOD_KWARGS.get(name, {}), **kw})


# ------------------------------------------------------------ a small model with three heads
TASKS = ("a", "b", "c")


def encoder_and_heads(seed: int = 0) -> tuple[nn.Module, nn.ModuleDict, torch.Tensor]:
    """A tanh encoder shared by three linear heads (one per task of ``TASKS``), and a batch."""
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    heads = nn.ModuleDict({t: nn.Linear(6, 1) for t in TASKS})
    return enc, heads, torch.randn(8, 4)


def task_losses(heads: nn.ModuleDict, z: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each head's mean squared error against its column of ``y``."""
    return {t: (heads[t](z).squeeze(-1) - y[:, i]).pow(2).mean() for i, t in enumerate(TASKS)}


# ------------------------------------------------------- loss-based methods: plain losses in
def leaf(values: list[float]) -> list[torch.Tensor]:
    """One leaf loss per value."""
    return [torch.tensor(float(v), requires_grad=True) for v in values]


def weights_of(b: tb.Balancer) -> list[float]:
    """The weights the balancer reported at its last step, in task order."""
    return [float(v) for v in b.weights.values()]


def softmax(xs: list[float]) -> list[float]:
    """softmax in plain Python: an independent computation of the methods' softmax."""
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


# --------------------------------------------- gradient methods: random and adversarial Jacobians
#: the dtypes the gradient methods' properties are checked in
CASE_DTYPES = [torch.float32, torch.float64]


def jacobian_cases(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Named K x 30 Jacobians: conflicting, many tasks, rank-deficient, a zero task, 1e6 scales."""
    g = torch.Generator().manual_seed(0)
    n = 30

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    base = rnd(2, n)
    out = {
        "two-conflicting": torch.stack([base[0], -0.8 * base[0] + 0.3 * base[1]]),
        "ten-tasks": rnd(10, n),
        "rank-deficient": rnd(3, 2) @ rnd(2, n),  # 5... rows in a 2-d span
        "zero-task": torch.cat([rnd(3, n), torch.zeros(1, n)]),
        "scales-1e6": rnd(4, n) * torch.tensor([[1e-3], [1.0], [1e2], [1e3]], dtype=torch.float64),
        "random-5": rnd(5, n),
    }
    return {k: v.to(dtype) for k, v in out.items()}


#: every (dtype, case name) pair of ``jacobian_cases``
ALL_JACOBIAN_CASES = [(d, c) for d in CASE_DTYPES for c in jacobian_cases(d)]

#: the cases where the exact equations of IMTL-G and Nash-MTL have a solution
FULL_RANK_CASES = [(d, c) for d, c in ALL_JACOBIAN_CASES if c not in ("zero-task", "rank-deficient")]

#: the Jacobians on which the order-invariant methods are permuted
PERMUTED_CASES = ["ten-tasks", "random-5", "scales-1e6"]


def case_tol(dtype: torch.dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 1e-8


def brute_force_min_norm(jac: np.ndarray) -> float:
    """Min over every support of the equality-constrained min-norm problem (exact)."""
    m = jac @ jac.T
    k = m.shape[0]
    best = np.inf
    for size in range(1, k + 1):
        for s in itertools.combinations(range(k), size):
            ms = m[np.ix_(s, s)]
            kkt = np.block([[ms, np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            rhs = np.concatenate([np.zeros(size), [1.0]])
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if (sol >= -1e-12).all():
                w = np.zeros(k)
                w[list(s)] = sol
                best = min(best, float(np.linalg.norm(w @ jac) ** 2))
    return best


def assert_ignores_task_order(name: str, case: str, **kw: Any) -> None:
    """Permuting the rows of the Jacobian permutes the weights and leaves the direction."""
    jac = jacobian_cases(torch.float64)[case]
    perm = torch.randperm(jac.shape[0], generator=torch.Generator().manual_seed(3))
    d1, w1 = aggregate(name, jac, **kw)
    d2, w2 = aggregate(name, jac[perm], **kw)
    torch.testing.assert_close(d1, d2, rtol=1e-5, atol=1e-8 * float(jac.abs().max()))
    torch.testing.assert_close(w1[perm], w2, rtol=1e-5, atol=1e-10)


# ---------------------------------------------------------------- the methods' authors' code
# The methods' tests "against the authors' code" compare with numbers produced by running the
# authors' published code (or, where it lives inside a training script, its weighting function
# copied verbatim) on the literal inputs of those tests, outside this repository: none of that
# code is imported or vendored here, and the tests need neither cvxpy nor scipy. Each method's
# file names the repository, file and commit of the snapshot used.
#
# The authors' code ran with torch 2.13 (CPU), numpy, scipy 1.17, cvxpy 1.9 + ECOS, with
# ``torch.set_default_dtype(torch.float64)`` unless a comment says otherwise, so that their
# ``torch.Tensor(...)`` buffers held the float64 inputs exactly. For gradient methods the shared
# parameter was a vector theta (N,) at 0 with task losses L_i = J_i . theta + 1, so the per-task
# gradients are exactly the rows of the Jacobian J. Where taskbalance differs on purpose, the
# authors' number is pinned as it came out and the documented conversion is applied in the test.
F64 = torch.float64

# The per-task gradients (K tasks x N parameters) used by the gradient methods.
# A: K=2, conflicting (g1 . g2 < 0); B: K=3, mixed signs; C: K=3, conflicting, norms 2.31, 1.86, 0.39;
# D: K=2, small gradients (||G G^T||_F = 0.0051); E: K=3, rank 2 (g3 = g1 + g2); F: K=4;
# G: K=3, nearly rank 2 (g3 = g1 + g2 + 1e-5 e4: Gramian eigenvalues 2.7e-11, 1.76, 3.11).
AUTHORS_JACOBIANS = {
    "A": [[1.0, -0.5, 0.25], [-0.8, 1.2, 0.4]],
    "B": [[0.9, 0.1, -0.4, 0.3], [-0.2, 0.7, 0.5, -0.1], [0.3, -0.6, 0.2, 0.8]],
    "C": [[2.0, 0.5, -1.0, 0.0, 0.3], [-1.5, 0.2, 0.8, 0.6, -0.4], [0.1, -0.3, 0.05, 0.2, 0.1]],
    "D": [[0.05, -0.02, 0.01], [-0.03, 0.04, 0.02]],
    "E": [[1.0, 0.0, 0.5, -0.5], [0.0, 1.0, -0.5, 0.25], [1.0, 1.0, 0.0, -0.25]],
    "F": [
        [0.5, -0.3, 0.8, 0.1, -0.2],
        [-0.4, 0.9, 0.1, -0.3, 0.5],
        [0.2, 0.2, -0.7, 0.6, 0.1],
        [-0.1, -0.5, 0.3, 0.4, 0.9],
    ],
    "G": [[1.0, 0.0, 0.5, -0.5], [0.0, 1.0, -0.5, 0.25], [1.0, 1.0, 0.0, -0.24999]],
}


def authors_jacobian(case: str) -> torch.Tensor:
    return torch.tensor(AUTHORS_JACOBIANS[case], dtype=F64)


def close(actual: torch.Tensor, expected: list[float] | list[list[float]], tol: float) -> None:
    """|actual - expected| <= tol * max|expected| elementwise (a tolerance relative to the scale)."""
    want = torch.tensor(expected, dtype=F64)
    torch.testing.assert_close(actual.to(F64), want, rtol=0.0, atol=tol * float(want.abs().max()))


def clip_factor(norm: float, max_norm: float = 1.0) -> float:
    """The factor of ``torch.nn.utils.clip_grad_norm_``: min(1, max_norm / (norm + 1e-6))."""
    return min(1.0, max_norm / (norm + 1e-6))


def gradient_balancer(name: str, tasks: int, **hyper: Any) -> tb.GradientBalancer:
    b = tb.create(name, tasks=tasks, **hyper)
    assert isinstance(b, tb.GradientBalancer)
    return b


def stacked_weights(b: tb.Balancer) -> torch.Tensor:
    return torch.stack(list(b.weights.values()))


# -------------------------------------------------------------------- TorchJD's aggregators
# An independent cross-check: TorchJD (installed by the test command, used only in these
# checks) implements several of the same methods with other solvers (quadprog, cvxpy, scipy,
# Frank-Wolfe). For every method both libraries define the same way, the two update directions
# must agree to a cosine of at least 0.999 on each of 60 random Jacobians. Where the definitions
# differ (a rescale, a norm cap, a random stream), the option that removes the difference is
# set, as documented in each method's docstring.
N_JACOBIANS = 60


def torchjd_aggregation() -> Any:
    """``torchjd.aggregation``, or a skip of the calling test where TorchJD is not installed."""
    return pytest.importorskip("torchjd.aggregation", reason="the test command installs torchjd")


def random_jacobians(max_tasks: int = 10, min_tasks: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(2024)
    out = []
    for i in range(N_JACOBIANS):
        k = min_tasks + i % (max_tasks - min_tasks + 1)
        n = int(torch.randint(k + 5, 80, (1,), generator=g))
        scales = torch.exp(torch.randn(k, 1, generator=g, dtype=torch.float64) * 1.5)
        shift = torch.randn(1, n, generator=g, dtype=torch.float64) * 0.5  # some shared direction
        out.append((torch.randn(k, n, generator=g, dtype=torch.float64) + shift) * scales)
    return out


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = float(a.norm()), float(b.norm())
    if na < 1e-12 and nb < 1e-12:
        return 1.0
    return float(a @ b) / max(na * nb, 1e-300)


def assert_agrees_with_torchjd(
    name: str, ours_kw: dict[str, Any], theirs: Callable[[Any, int], Any], max_tasks: int = 10
) -> None:
    """Our direction and TorchJD's (``theirs(torchjd.aggregation, K)``) have a cosine >= 0.999
    on every random Jacobian with up to ``max_tasks`` tasks."""
    aggregation = torchjd_aggregation()
    worst = 1.0
    for jac in random_jacobians(max_tasks=max_tasks):
        k = jac.shape[0]
        d_ours, _ = aggregate(name, jac, **ours_kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d_theirs = theirs(aggregation, k)(jac)
        worst = min(worst, cosine(d_ours.double(), d_theirs.double()))
    assert worst >= 0.999, f"{name}: worst cosine {worst:.6f}"


# ------------------------------------------------- learned loss scales (uw, uw-*, imtl-l)
#: fixed losses whose optimal scales are known in closed form
FIXED_LOSSES = (0.3, 2.5, 40.0)


def minimise(balancer: tb.Balancer, losses: list[float]) -> None:
    """Minimise the balancer's objective over its own parameters, losses fixed."""
    balancer.double()
    values = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in losses]
    opt = torch.optim.LBFGS(
        balancer.parameters(),
        lr=1,
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        total = balancer(values)
        total.backward()
        return total

    for _ in range(3):
        opt.step(closure)


def revised_optimum(loss: float) -> float:
    """uw-revised's optimal σ² for a fixed loss L: (L + √(L² + 8L)) / 4."""
    return (loss + math.sqrt(loss * loss + 8 * loss)) / 4


def assert_gradient_away_from_the_optimum(name: str) -> None:
    """The test that catches the two-line bug: each s must feel its regulariser, and its
    gradient vanishes at the optimum, which the buggy form never reaches."""
    b = tb.create(name, tasks=3, init=1.0 if name == "uw-revised" else 0.0)
    values = [torch.tensor(v, requires_grad=True) for v in FIXED_LOSSES]
    b(values).backward()
    (param,) = list(b.parameters())
    assert param.grad is not None and bool((param.grad.abs() > 1e-3).all())
    minimise(b, list(FIXED_LOSSES))
    b.zero_grad()
    values64 = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in FIXED_LOSSES]
    b(values64).backward()
    assert param.grad is not None and float(param.grad.abs().max()) < 1e-6


OPTIMUM_S = {  # the optimal parameter for a fixed loss L
    "uw": math.log,
    "uw-simplified": math.log,
    "uw-revised": lambda L: math.log(revised_optimum(L)),
    "imtl-l": lambda L: -math.log(L),
}

#: the loss scales at which σ must reach its optimum (issue 13)
LOSS_SCALES = [1e-4, 1e-2, 1.0, 1e2, 1e4]


def track(name: str, scale: float, init: object = "auto", steps: int = 300) -> float:
    """Train only the balancer on noisy losses of mean ``scale`` whose first value is 3x
    the mean, with the documented Adam settings; the parameter's error from the optimum
    of the mean loss, averaged over the last 50 steps (in log σ², or s for imtl-l)."""
    g = torch.Generator().manual_seed(0)
    b = tb.create(name, tasks=2, init=init)
    opt = torch.optim.Adam(b.param_groups(lr=0.1, betas=(0.9, 0.99)))
    tail = []
    for t in range(steps):
        noise = 1 + 0.1 * torch.randn(2, generator=g)
        values = torch.full((2,), 3.0 * scale) if t == 0 else scale * noise
        opt.zero_grad()
        b(list(values.clone().requires_grad_().unbind())).backward()
        opt.step()
        if t >= steps - 50:
            tail.append(next(iter(b.parameters())).detach().clone())
    got = torch.stack(tail).mean(0)
    return float((got - OPTIMUM_S[name](scale)).abs().max())
