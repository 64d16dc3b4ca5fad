"""The one place where the solvers' backend is chosen: float64 on the host.

The problems are K × K (K tasks, a few to a few dozen): a handful of microseconds of
arithmetic, where a torch kernel launch or a host synchronisation per iteration costs
more than the solve. So every solver copies its K × K input to the host once, in
float64 whatever the input's dtype (float16 and bfloat16 Gramians included), and
returns one small tensor on the input's device: one device-to-host copy of K² numbers
and one host-to-device copy of K numbers per step.

On the host, the non-negative QP (UPGrad's projections, MGDA's min-norm point, PCD's
secondary step) runs in a small compiled kernel, ``_qpkernel``, built from C at install
time, when there is one: the same algorithm as the NumPy reference in
:mod:`~taskbalance.solvers.active_set`, without NumPy's per-call overhead, which is
where the reference spends its time at K = 10. Without a C compiler at install time, or
with the environment variable ``TASKBALANCE_SOLVERS=numpy``, the NumPy reference runs.
Either way every solution is certified by the same NumPy KKT check.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

Array = np.ndarray[Any, np.dtype[np.float64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]
Index = np.ndarray[Any, np.dtype[np.intp]]

#: KKT residual, relative to the problem's scale, above which a solve is refused
TOL = 1e-9


class KernelChoice(NamedTuple):
    """What ``TASKBALANCE_SOLVERS`` and the install give the QP solver."""

    kernel: ModuleType | None  #: the compiled kernel, or None for the NumPy reference
    problem: Exception | None  #: a configuration error, raised at the first solve
    skipped: bool  #: not built and not asked for: a warning at the first solve


def _load_kernel() -> KernelChoice:
    """Read ``TASKBALANCE_SOLVERS`` and import the kernel. Nothing is raised here, at
    import time: a loss-based method or the command line never solves a QP, so a
    configuration error waits for the first solve."""
    choice = os.environ.get("TASKBALANCE_SOLVERS", "").strip().lower()
    if choice not in ("", "compiled", "numpy"):
        bad = ValueError(f"TASKBALANCE_SOLVERS={choice!r}: expected 'compiled' or 'numpy' (or unset it)")
        return KernelChoice(None, bad, False)
    if choice == "numpy":
        return KernelChoice(None, None, False)
    try:
        kernel = importlib.import_module("._qpkernel", __package__)
    except ImportError:
        if choice == "compiled":
            missing = ImportError(
                "TASKBALANCE_SOLVERS=compiled, but taskbalance.solvers._qpkernel was not built: "
                "reinstall taskbalance with a C compiler available (pip install -v shows why it failed)"
            )
            return KernelChoice(None, missing, False)
        return KernelChoice(None, None, True)
    return KernelChoice(kernel, None, False)


_CHOICE = _load_kernel()
_warned = False

#: the compiled QP kernel when it is built and chosen, else None (the NumPy reference)
KERNEL: ModuleType | None = _CHOICE.kernel


def qp_kernel() -> ModuleType | None:
    """The kernel the QP solver uses now (None: the NumPy reference). Raises the
    configuration error of a bad ``TASKBALANCE_SOLVERS``, and warns once when the kernel
    was not built and nobody chose the NumPy reference."""
    global _warned
    if _CHOICE.problem is not None:
        raise type(_CHOICE.problem)(*_CHOICE.problem.args)
    if KERNEL is None and _CHOICE.skipped and not _warned:
        _warned = True
        warnings.warn(
            "taskbalance: the compiled QP kernel was not built (no C compiler at install time), so "
            "the slower NumPy reference solves the QPs; reinstall with a C compiler, or set "
            "TASKBALANCE_SOLVERS=numpy to choose it and silence this",
            UserWarning,
            stacklevel=3,
        )
    return KERNEL


def backend() -> str:
    """Which implementation solves the non-negative QPs: ``"compiled"`` or ``"numpy"``.

    Example:
        >>> backend() in ("compiled", "numpy")
        True
    """
    return "compiled" if qp_kernel() is not None else "numpy"


class SolverError(RuntimeError):
    """A solve whose optimality certificate (the KKT residual) fails.

    Never raised on the inputs of the property tests (every matrix family, K up to 40,
    scales 0 to 1e15); if it is raised, please report the Gramian.
    """


def to_host(t: Tensor) -> Array:
    """``t`` as a float64 NumPy array (a copy for any other dtype or device)."""
    out: Array = t.detach().to("cpu", torch.float64).numpy()
    return out


def out_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of a solver's output: the input's, but at least float32 (weights of
    a rank-deficient half-precision problem can exceed float16's range)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def from_host(x: Array, like: Tensor) -> Tensor:
    """``x`` as a tensor on ``like``'s device in :func:`out_dtype` of its dtype."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(like.device, out_dtype(like.dtype))


def regularised(gramian: Array, reg: float) -> Array:
    """``M / tr(M) + reg·I`` (batched): scale-free and positive definite. ``reg`` is at
    least 1e-12, so that a zero-gradient task keeps the matrix invertible; a zero
    Gramian becomes the identity."""
    reg = max(reg, 1e-12)
    k = gramian.shape[-1]
    eye = np.eye(k)
    if gramian.ndim == 2:  # one matrix: the same, with fewer calls
        total = float(np.trace(gramian))
        one: Array = (gramian / total if total > 0 else eye) + reg * eye
        return one
    trace = np.trace(gramian, axis1=-2, axis2=-1)[..., None, None]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        normed = np.where(trace > 0, gramian / np.where(trace > 0, trace, 1.0), eye)
    out: Array = normed + reg * eye
    return out


#: machine epsilon of each floating dtype a Gramian may come in (integers are exact)
_EPS = {d: torch.finfo(d).eps for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16)}


def check_gramian(gramian: Array, name: str, dtype: torch.dtype = torch.float64) -> None:
    """Refuse a matrix that cannot be a Gramian G Gᵀ, with a one-line reason: not square,
    not finite, not symmetric, a negative diagonal entry, or an entry larger than
    √(MᵢᵢMⱼⱼ) (Cauchy–Schwarz). The last three allow 4√eps of the largest diagonal
    entry, with eps that of ``dtype`` (the dtype it came in) but at least float32's: a
    float64 Gramian formed from float32 gradients carries their rounding."""
    if gramian.ndim < 2 or gramian.shape[-1] != gramian.shape[-2]:
        raise ValueError(f"{name}: expected a square (K, K) Gramian, got shape {gramian.shape}")
    if not np.isfinite(gramian).all():
        raise ValueError(f"{name}: the Gramian has NaN or inf entries; check the task gradients")
    if gramian.size == 0:
        return
    diag = np.diagonal(gramian, axis1=-2, axis2=-1)
    eps = max(_EPS.get(dtype, 0.0), _EPS[torch.float32])
    slack = 4.0 * eps**0.5 * float(np.abs(diag).max()) + 1e-300
    fix = "pass G @ G.T of the (K, N) task gradients G"
    if float(np.abs(gramian - np.swapaxes(gramian, -1, -2)).max()) > slack:
        raise ValueError(f"{name}: the Gramian is not symmetric; {fix}")
    if float(diag.min()) < -slack:
        raise ValueError(f"{name}: the Gramian has a negative diagonal entry, so it is not G Gᵀ; {fix}")
    root = np.sqrt(np.maximum(diag, 0.0))
    if float((np.abs(gramian) - root[..., :, None] * root[..., None, :]).max()) > slack:
        raise ValueError(f"{name}: an entry exceeds √(MᵢᵢMⱼⱼ), so the Gramian is not G Gᵀ; {fix}")


def host_gramian(gramian: Tensor, name: str) -> Array:
    """``gramian`` checked (:func:`check_gramian`) on the host in float64. One formed in
    float32 or half precision is also projected onto the positive semi-definite matrices
    (its eigenvalues clipped at 0): rounding can make a rank-deficient Gramian indefinite
    by about K·eps·tr M, more than the solvers' regularisation, and the projection moves
    it by no more than that. A float64 Gramian is used as it is."""
    m = to_host(gramian)
    check_gramian(m, name, gramian.dtype)
    if gramian.dtype == torch.float64 or not gramian.dtype.is_floating_point:
        return m
    lam, q = np.linalg.eigh(0.5 * (m + np.swapaxes(m, -1, -2)))
    psd: Array = (q * np.maximum(lam, 0.0)[..., None, :]) @ np.swapaxes(q, -1, -2)
    return psd
