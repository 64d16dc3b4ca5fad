"""What the per-method tests share: the Jacobians of the TorchJD cross-checks and the
measure of agreement (cosine of the directions and ratio of their norms)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ..helpers import cosine
from ..helpers import random_jacobians as jacobians
from ..properties import Case, matrices

__all__ = ["Agreement", "compare", "cosine", "cross_jacobians", "families", "raw_cosine", "sequence"]


def sequence(k: int, n: int, steps: int, seed: int, scale: float = 1.0) -> list[Tensor]:
    """Jacobians of one stateful run: rows of scales ``scale``·e^N(0, 1), a shared pull,
    fresh noise per step (float64)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.randn(k, 1, generator=g, dtype=torch.float64)) * scale
    shared = torch.randn(1, n, generator=g, dtype=torch.float64)
    return [
        (torch.randn(k, n, generator=g, dtype=torch.float64) + 0.5 * shared) * scales for _ in range(steps)
    ]


def raw_cosine(a: Tensor, b: Tensor) -> float:
    """The cosine of two directions, 0 when either is zero (:func:`cosine` counts two
    zeros as agreeing)."""
    return float(a @ b) / max(float(a.norm() * b.norm()), 1e-300)


def cross_jacobians(max_tasks: int = 10, min_tasks: int = 2) -> list[Tensor]:
    """The 60 random Jacobians of the TorchJD cross-checks (tests/helpers.py) and every matrix family of
    tests/properties.py at scale 1 (with ``min_tasks`` to ``max_tasks`` rows)."""
    fam = [c.jac for c in matrices() if min_tasks <= c.jac.shape[0] <= max_tasks]
    return jacobians(max_tasks=max_tasks, min_tasks=min_tasks) + fam


class Agreement:
    """The worst cosine and the worst norm ratio (|‖ours‖/‖theirs‖ - 1|) over pairs."""

    def __init__(self) -> None:
        self.cos = 1.0
        self.ratio = 0.0
        self.count = 0

    def add(self, ours: Tensor, theirs: Tensor, zero: float = 0.0) -> None:
        """One pair; both directions of norm at most ``zero`` agree (a zero up to rounding)."""
        ours, theirs = ours.double(), theirs.double()
        self.count += 1
        if max(float(ours.norm()), float(theirs.norm())) <= zero:
            return
        self.cos = min(self.cos, cosine(ours, theirs))
        na, nb = float(ours.norm()), float(theirs.norm())
        scale = max(na, nb)
        if scale > 1e-12:
            self.ratio = max(self.ratio, abs(na - nb) / scale)

    def __repr__(self) -> str:
        return f"worst cosine {self.cos:.8f}, worst norm difference {self.ratio:.2e} over {self.count}"


def compare(
    ours: Callable[[Tensor], Tensor], theirs: Callable[[Tensor], Tensor], jacs: Iterable[Tensor]
) -> Agreement:
    """The agreement of two aggregators (Jacobian -> direction) on ``jacs``; directions
    below 1e-6 of the largest gradient norm count as the zero vector (rounding)."""
    out = Agreement()
    for jac in jacs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zero = 1e-6 * float(jac.double().norm(dim=1).max()) if jac.numel() else 0.0
            out.add(ours(jac), theirs(jac), zero)
    return out


def families(cases: list[Case], min_tasks: int = 1) -> list[Case]:
    """``cases`` with at least ``min_tasks`` rows."""
    return [c for c in cases if c.jac.shape[0] >= min_tasks]
