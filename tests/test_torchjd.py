"""Independent cross-check: our directions against TorchJD's on random Jacobians.

TorchJD (installed by the test command, used only here) implements several of the
same methods with other solvers (quadprog, cvxpy, scipy, Frank-Wolfe). For every method
both libraries define the same way, the two update directions must agree to a cosine
of at least 0.999 on each of 60 random Jacobians. Where the definitions differ (a
rescale, a norm cap, a random stream), the option that removes the difference is set,
as documented in each method's docstring.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import taskbalance as tb

aggregation = pytest.importorskip("torchjd.aggregation", reason="the test command installs torchjd")

N_JACOBIANS = 60


def jacobians(max_tasks: int = 10, min_tasks: int = 2) -> list[torch.Tensor]:
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


PAIRS: dict[str, tuple[dict[str, Any], Callable[[int], Any], int]] = {
    # name: (our kwargs, TorchJD constructor by number of tasks, max tasks)
    "mgda": ({}, lambda k: aggregation.MGDA(epsilon=1e-9, max_iters=100_000), 10),
    "upgrad": ({}, lambda k: aggregation.UPGrad(), 10),
    "imtl-g": ({}, lambda k: aggregation.IMTLG(), 10),
    "aligned-mtl": ({}, lambda k: aggregation.AlignedMTL(), 10),
    "cagrad": ({"c": 0.4, "rescale": False}, lambda k: aggregation.CAGrad(c=0.4), 10),
    "fairgrad": ({"alpha": 2.0}, lambda k: aggregation.FairGrad(alpha=2.0), 10),
    "pcgrad": ({}, lambda k: aggregation.PCGrad(), 2),  # random orders: deterministic at 2 tasks
    "gradvac": ({}, lambda k: aggregation.GradVac(), 2),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_directions_agree_with_torchjd(name: str) -> None:
    ours_kw, theirs, max_tasks = PAIRS[name]
    worst = 1.0
    for jac in jacobians(max_tasks=max_tasks):
        k = jac.shape[0]
        d_ours, _ = tb.create(name, tasks=k, **ours_kw).aggregate(jac)  # type: ignore[attr-defined]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d_theirs = theirs(k)(jac)
        worst = min(worst, cosine(d_ours.double(), d_theirs.double()))
    assert worst >= 0.999, f"{name}: worst cosine {worst:.6f}"


def test_graddrop_matches_with_the_same_random_stream() -> None:
    for i, jac in enumerate(jacobians()):
        ours, _ = tb.create("graddrop", tasks=jac.shape[0], seed=i).aggregate(jac)  # type: ignore[attr-defined]
        torch.manual_seed(i)
        theirs = aggregation.GradDrop()(jac)
        assert cosine(ours, theirs.double()) >= 0.999


def test_nash_mtl_agrees_wherever_torchjd_solves_the_bargaining_system() -> None:
    """TorchJD runs 20 convex-concave iterations of cvxpy/ECOS from α = 1 and sometimes
    stops short: its α then violates α ⊙ (M α) = const (by up to 18x here). We solve
    the system exactly on every Jacobian, and must agree wherever TorchJD solved it."""
    compared = 0
    for jac in jacobians():
        k = jac.shape[0]
        m = jac @ jac.T
        _, ours = tb.create("nash-mtl", tasks=k, max_norm=None).aggregate(jac)  # type: ignore[attr-defined]
        spread = ours * (m @ ours)
        assert float(spread.max() / spread.min()) < 1 + 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = aggregation.NashMTL(n_tasks=k, max_norm=0.0).weighting(jac).double()
        theirs_spread = theirs * (m @ theirs)
        if float(theirs_spread.max() / theirs_spread.min()) < 1.01:
            compared += 1
            assert cosine(ours @ jac, theirs @ jac) >= 0.999
    assert compared >= 0.9 * N_JACOBIANS
