"""ConFIG (Liu et al., "ConFIG: Towards Conflict-free Training of Physics Informed Neural
Networks", ICLR 2025; TorchJD's ``ConFIG``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GramianBalancer

__all__ = ["ConFIG"]

#: eigenvalues of the unit rows' Gramian below this fraction of the largest are zero
#: in its pseudo-inverse (singular values below 1e-6 of the largest)
PINV_RTOL = 1e-12
#: p with a component in the range of U below this fraction of its norm gives b = 0
#: (the rest is rounding: two opposite gradients, for example)
RANGE_RTOL = 1e-10


@register("config", "conflict-free")
class ConFIG(GramianBalancer):
    r"""Conflict-free update: the direction whose cosines with the task gradients are
    the preference weights, scaled to the sum of the gradients' projections on it.

    With :math:`u_i = g_i/\|g_i\|` the unit gradients (0 for a zero gradient), U their
    matrix and p the preference weights (1 by default):

    .. math::
        b = U^{+} p,\qquad \hat b = b/\|b\|,\qquad
        d = \Big(\sum_i g_i^\top \hat b\Big)\,\hat b ,

    Eq. 2 of the paper (:math:`U\hat b \propto p`: with equal preferences, the same
    cosine with every gradient). Computed on the Gramian: :math:`U^{+} p = G^\top c`
    with :math:`c = D^{-1}(D^{-1} M D^{-1})^{+} p`, D the diagonal of the norms, the
    pseudo-inverse by eigendecomposition (eigenvalues below 1e-12 of the largest are
    dropped, and b = 0 when p's component in their span is below 1e-10 of p),
    and :math:`d = G^\top c\,(\mathbf 1^\top M c)/(c^\top M c)`. Same definition
    and defaults as TorchJD's ``ConFIG`` (adapted from the authors' code).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        pref: preference weights p (mapping or sequence; default 1 for every task).

    Example:
        >>> import torch, taskbalance as tb
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 2.0]])
        >>> d, _ = tb.create("config", tasks=2).aggregate(g)
        >>> cos = (g @ d) / (g.norm(dim=1) * d.norm())
        >>> bool(torch.allclose(cos[0], cos[1]))  # the same cosine with both gradients
        True
    """

    pref: Tensor

    def __init__(
        self, tasks: TaskSpec, pref: Mapping[str, float] | Sequence[float] | None = None, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        values = self._per_task(pref, "preference weights", default=1.0)
        self.add_state("pref", torch.tensor(values, dtype=torch.float64))

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        m = gramian.to(torch.float64)
        norms = m.diagonal().clamp(min=0).sqrt()
        inv = torch.where(norms > 0, 1.0 / torch.where(norms > 0, norms, 1.0), 0.0)
        unit = inv[:, None] * m * inv[None, :]
        unit = (unit + unit.T) / 2
        vals, vecs = torch.linalg.eigh(unit)
        top = float(vals.max()) if vals.numel() else 0.0
        keep = vals > PINV_RTOL * top
        pinv_vals = torch.where(keep, 1.0 / torch.where(keep, vals, 1.0), 0.0)
        pref = step.get("pref").to(m)
        proj = torch.where(keep, vecs.T @ pref, 0.0)
        if not float(proj.norm()) > RANGE_RTOL * float(pref.norm()):
            return torch.zeros_like(pref)  # p is orthogonal to the range of U: b = U⁺p = 0
        c = inv * (vecs @ (pinv_vals * proj))
        sq = c @ m @ c
        if not float(sq) > 0:
            return torch.zeros_like(c)
        weights: Tensor = c * (m.sum(0) @ c) / sq
        return weights
