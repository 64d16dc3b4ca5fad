"""A matrix library and the properties a gradient method can promise, for the tests.

The matrix families follow the kinds of inputs of TorchJD's aggregator tests
(tests/unit/aggregation), rebuilt here: normal, zero rows, duplicated and opposite
rows, rank-deficient, more tasks than parameters, weakly and strongly stationary
(0 in the convex hull of the rows, or a positive combination of them), and scales from
0 and 1e-10 to 1e15. Each method opts into the properties its paper guarantees
(``GUARANTEES`` below); tests/test_solvers.py runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import taskbalance as tb

F64 = torch.float64


@dataclass(frozen=True)
class Case:
    """One Jacobian (K × N, float64) of a family, with what is known about it."""

    family: str
    jac: Tensor
    full_rank: bool  # linearly independent rows (K <= N)
    stationary: str  # "no", "weak" (0 in the convex hull) or "strong" (0 = Σ wᵢ gᵢ, w > 0)

    @property
    def id(self) -> str:
        k, n = self.jac.shape
        return f"{self.family}-{k}x{n}"


def _rnd(g: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=F64)


def _families(g: torch.Generator, k: int, n: int) -> Iterator[Case]:
    yield Case("normal", _rnd(g, k, n), k <= n, "no")
    if k >= 2:
        j = _rnd(g, k, n)
        j[-1] = 0
        yield Case("zero-row", j, False, "weak")
        j = _rnd(g, k, n)
        j[-1] = j[0]
        yield Case("duplicated", j, False, "no")
        j = _rnd(g, k, n)
        j[-1] = -2.0 * j[0]
        yield Case("opposite", j, False, "strong" if k == 2 else "weak")
    r = max(1, min(k, n) // 2)
    yield Case("rank-deficient", _rnd(g, k, r) @ _rnd(g, r, n), r == k, "no")
    if k >= 2:
        # strongly stationary: the last row is minus a positive combination of the others
        j = _rnd(g, k, n)
        j[-1] = -(torch.rand(k - 1, generator=g, dtype=F64) + 0.1) @ j[:-1]
        yield Case("strongly-stationary", j, False, "strong")
        # weakly stationary: 0 in the hull of two rows, the others arbitrary
        j = _rnd(g, k, n)
        j[1] = -0.5 * j[0]
        yield Case("weakly-stationary", j, False, "strong" if k == 2 else "weak")
        # a common direction plus conflicts: the inputs of a real training step
        pull = torch.tensor([1.0 if i % 2 == 0 else -0.5 for i in range(k)], dtype=F64)
        yield Case("conflicting", _rnd(g, k, n) + 2 * pull[:, None] * _rnd(g, 1, n), k <= n, "no")


def matrices(
    sizes: tuple[tuple[int, int], ...] = ((1, 5), (2, 5), (3, 7), (5, 3), (10, 4), (10, 30), (40, 60)),
    seed: int = 0,
) -> list[Case]:
    """Every family at every (K, N) size: K = 1 to 40, K > N included."""
    g = torch.Generator().manual_seed(seed)
    return [case for k, n in sizes for case in _families(g, k, n)]


def scaled(cases: list[Case], scales: tuple[float, ...] = (0.0, 1e-10, 1e-3, 1e3, 1e15)) -> list[Case]:
    """The same cases multiplied by each scale (0 makes the zero matrix)."""
    out = []
    for s in scales:
        for c in cases:
            zero = s == 0
            out.append(
                Case(
                    f"{c.family}*{s:g}",
                    c.jac * s,
                    c.full_rank and not zero,
                    "strong" if zero else c.stationary,
                )
            )
    return out


def representable(jac: Tensor, dtype: torch.dtype) -> bool:
    """Whether ``jac`` fits in ``dtype`` (no overflow to inf)."""
    return bool(torch.isfinite(jac.to(dtype)).all())


# ------------------------------------------------------------------------ properties
def aggregate(name: str, jac: Tensor, **kw: Any) -> tuple[Tensor, Tensor]:
    """A fresh balancer's ``(direction, weights)`` for ``jac`` (in ``jac``'s dtype)."""
    b = tb.create(name, tasks=jac.shape[0], **kw)
    d, w = b.aggregate(jac)  # type: ignore[attr-defined]
    return d, w


def _slack(dtype: torch.dtype) -> float:
    """Relative rounding of a direction cast to ``dtype`` (a few ulps)."""
    return {torch.float16: 1e-2, torch.bfloat16: 3e-2, torch.float32: 1e-5, F64: 1e-12}[dtype]


def _sum_eps(dtype: torch.dtype) -> float:
    """Rounding of the sum d = Σ wⱼ gⱼ, done in float32 for half-precision inputs."""
    return 1e-6 if dtype != F64 else 1e-14


def finite(_case: Case, d: Tensor, w: Tensor, dtype: torch.dtype, _reg_tol: float) -> str | None:
    if not bool(torch.isfinite(d).all()):
        return "direction is not finite"
    if not bool(torch.isfinite(w).all()):
        return "weights are not finite"
    if d.dtype != dtype:
        return f"direction in {d.dtype}, not the input's {dtype}"
    return None


def non_conflicting(case: Case, d: Tensor, w: Tensor, dtype: torch.dtype, reg_tol: float) -> str | None:
    """⟨gᵢ, d⟩ >= 0 for every task, up to rounding (d cast to ``dtype``: relative to
    ‖gᵢ‖·‖d‖; the sum Σ wⱼ gⱼ: relative to ‖gᵢ‖·Σ|wⱼ|·‖gⱼ‖) and the solver's
    regularisation (``reg_tol`` relative to max ‖gⱼ‖²)."""
    jac = case.jac.to(dtype).double()
    dd = d.double()
    norms = jac.norm(dim=1)
    summed = float(w.double().abs() @ norms)
    # the spacing of ``dtype``'s subnormals bounds the absolute rounding of a tiny d
    spacing = torch.finfo(dtype).tiny * torch.finfo(dtype).eps * jac.shape[1] ** 0.5
    allowed = norms * (_slack(dtype) * dd.norm() + _sum_eps(dtype) * summed + spacing)
    allowed = allowed + reg_tol * float(norms.max()) ** 2
    worst = int(((jac @ dd) + allowed).argmin())
    excess = float(jac[worst] @ dd + allowed[worst])
    if excess >= 0:
        return None
    cos = float(jac[worst] @ dd) / max(float(norms[worst] * dd.norm()), 1e-300)
    return f"conflicts with task {worst}: cosine {cos:.3g}, ‖d‖ = {float(dd.norm()):.3g}"


def stationary_zero(case: Case, d: Tensor, w: Tensor, dtype: torch.dtype, _reg_tol: float) -> str | None:
    """d = 0 where the property's stationarity holds, up to d's rounding in ``dtype`` and
    the solvers' regularisation (1e-12 of the Gramian's trace: ‖d‖ <= 1e-6·√tr)."""
    jac = case.jac.to(dtype).double()
    scale = float(jac.norm(dim=1).max()) * max(1.0, float(w.double().abs().sum()))
    allowed = (10 * _slack(dtype) + 2e-6 * jac.shape[0] ** 0.5) * scale
    size = float(d.double().norm())
    return None if size <= allowed else f"‖d‖ = {size:.3g} > {allowed:.3g}"


Property = Callable[[Case, Tensor, Tensor, torch.dtype, float], "str | None"]


@dataclass(frozen=True)
class Guarantee:
    """What a method promises, and on which inputs."""

    kwargs: dict[str, Any]
    non_conflicting: Callable[[Case], bool] = lambda _c: False
    zero_when: str | None = None  # "weak" or "strong": d = 0 on such stationary inputs
    permutation: bool = True
    homogeneous: bool = False  # d(aJ) = a·d(J), a > 0
    scale_free: bool = False  # d(aJ) = d(J), a > 0 (before any norm cap)
    #: what the solver's regularisation may cost ⟨gᵢ, d⟩, relative to max ‖gⱼ‖²: ε·K for
    #: the QPs (ε = 1e-12 of the trace); √ε for CAGrad, whose direction g_w/‖g_w‖ is
    #: set by the regularisation where 0 is in the hull of the gradients
    reg_tol: float = 1e-9


def _always(_c: Case) -> bool:
    return True


def _well_posed(c: Case) -> bool:
    return c.full_rank


GUARANTEES: dict[str, Guarantee] = {
    "mgda": Guarantee({}, _always, zero_when="weak", homogeneous=True),
    "upgrad": Guarantee({"reg": 0.0}, _always, zero_when="strong", homogeneous=True),
    "upgrad-default": Guarantee({}, homogeneous=True),
    "cagrad": Guarantee({"c": 1.0, "rescale": False}, _always, homogeneous=True, reg_tol=1e-5),
    "cagrad-0.4": Guarantee({"c": 0.4, "rescale": False}, homogeneous=True, reg_tol=1e-5),
    "nash-mtl": Guarantee({"max_norm": None}, _well_posed, scale_free=True),
    "fairgrad": Guarantee({"alpha": 2.0}, _well_posed),
    "imtl-g": Guarantee({}),
    "aligned-mtl": Guarantee({}),
}


def method_of(key: str) -> str:
    """The registry name behind a ``GUARANTEES`` key (``cagrad-0.4`` is cagrad)."""
    return key.split("-")[0] if key.startswith(("cagrad", "upgrad")) else key
