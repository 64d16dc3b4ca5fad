"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task
Learning", CVPR 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GramianBalancer

__all__ = ["AlignedMTL", "aligned_matrix"]


def aligned_matrix(gramian: Tensor, scale_mode: str = "min", eps: float | None = None) -> Tensor:
    r"""The alignment matrix :math:`B = \sqrt{\sigma}\, V \Lambda^{-1/2} V^\top` of the
    Gramian :math:`M = V \Lambda V^\top` (eigenvalues above a rank tolerance).

    The aligned gradients :math:`B G` have the Gramian :math:`B M B = \sigma\, V V^\top`:
    equal eigenvalues σ (the smallest kept eigenvalue by default) on M's range.
    Eigenvalues below :math:`\lambda_{\max} K \epsilon` are dropped, with ε the machine
    epsilon of ``eps`` (default: of the Gramian's dtype; pass the Jacobian's when the
    Gramian was formed in higher precision).

    Example:
        >>> m = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
        >>> aligned_matrix(m)
        tensor([[0.5000, 0.0000],
                [0.0000, 1.0000]], dtype=torch.float64)
    """
    lam, vec = torch.linalg.eigh(gramian)
    tol = lam.max() * gramian.shape[0] * (torch.finfo(gramian.dtype).eps if eps is None else eps)
    keep = lam > tol
    if not bool(keep.any()):
        return torch.eye(gramian.shape[0], dtype=gramian.dtype, device=gramian.device)
    kept = lam[keep]
    vec = vec[:, keep]
    if scale_mode == "min":
        sigma = kept.min()
    elif scale_mode == "median":
        sigma = kept.median()
    else:  # "rmse"
        sigma = kept.mean()
    out: Tensor = sigma.sqrt() * (vec * kept.rsqrt()) @ vec.T
    return out


@register("aligned-mtl", "aligned")
class AlignedMTL(GramianBalancer):
    r"""Aligned-MTL: make the system of task gradients well conditioned.

    With :math:`M = GG^\top = V\Lambda V^\top`, the aligned gradients :math:`BG`,
    :math:`B = \sqrt{\sigma}\,V\Lambda^{-1/2}V^\top`, have all eigenvalues equal to σ
    (the smallest, ``scale_mode="min"``); the update is their preference-weighted sum
    :math:`d = G^\top B u` (u = 1/K by default). Same as TorchJD's ``AlignedMTL``.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        pref: preference weights u (mapping or sequence; default 1/K each).
        scale_mode: ``"min"`` (default), ``"median"`` or ``"rmse"`` (mean eigenvalue).

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("aligned-mtl", tasks=2)
        >>> _ = b.backward([w @ torch.tensor([2.0, 0.0]), w @ torch.tensor([0.0, 1.0])], shared_params=[w])
        >>> w.grad  # each task's gradient rescaled to the smallest singular value, averaged
        tensor([0.5000, 0.5000])
    """

    pref: Tensor

    def __init__(
        self,
        tasks: TaskSpec,
        pref: Mapping[str, float] | Sequence[float] | None = None,
        scale_mode: Literal["min", "median", "rmse"] = "min",
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        if scale_mode not in ("min", "median", "rmse"):
            raise ValueError(f"scale_mode must be 'min', 'median' or 'rmse', got {scale_mode!r}")
        self.scale_mode = scale_mode
        values = self._per_task(pref, "preference weights", default=1.0 / self.num_tasks)
        self.add_state("pref", torch.tensor(values, dtype=torch.float64))

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        b = aligned_matrix(gramian, self.scale_mode, eps=torch.finfo(step.jac_dtype).eps)
        return b @ step.get("pref").to(gramian.dtype)
