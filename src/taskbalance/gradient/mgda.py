"""MGDA (Désidéri 2012; Sener & Koltun, "Multi-Task Learning as Multi-Objective
Optimization", NeurIPS 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from ..solvers import min_norm_weights
from .core import GramianBalancer

__all__ = ["MGDA"]

Normalization = Literal["none", "l2", "loss", "loss+"]


@register("mgda", "mgda-ub")
class MGDA(GramianBalancer):
    r"""Multiple-gradient descent: the min-norm point of the convex hull of the gradients.

    .. math::
        w^\star = \arg\min_{w \in \Delta} \Big\| \sum_i w_i \tilde g_i \Big\|^2,
        \qquad d = \sum_i w_i^\star \tilde g_i ,

    with :math:`\tilde g_i = g_i / n_i` normalised by ``normalization``: ``"none"``
    (:math:`n_i = 1`, default, the pure min-norm point), ``"l2"`` (:math:`\|g_i\|`),
    ``"loss"`` (:math:`L_i`) or ``"loss+"`` (:math:`L_i\|g_i\|`), the options of the
    MGDA-UB code (Sener & Koltun's ``gradient_normalizers``). As in that code, the
    solved :math:`w^\star` then scales the *raw* losses, :math:`d = \sum_i w_i^\star g_i`
    (``apply_to="losses"``, default); ``apply_to="normalized"`` gives the min-norm point
    of the normalised gradients, :math:`\sum_i w_i^\star \tilde g_i`, instead (the two
    coincide for ``"none"``). d has a non-negative inner product with every :math:`\tilde g_i`
    (a common descent direction; d = 0 at a Pareto-stationary point). Given
    ``features=``, this is MGDA-UB: the min-norm problem on the gradients of the
    shared representation. The solver is exact (closed form for two tasks, an
    active-set QP otherwise); TorchJD's MGDA runs Frank-Wolfe to a tolerance of 1e-3.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        normalization: see above.
        apply_to: ``"losses"`` (default, the MGDA-UB code) or ``"normalized"``.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.tensor([1.0, 1.0], requires_grad=True)
        >>> b = tb.create("mgda", tasks=2)
        >>> _ = b.backward([w[0] * 2, (w[0] - w[1]) ** 2 / 2], shared_params=[w])
        >>> w.grad  # min-norm point of the hull of (2, 0) and (0, 0): zero
        tensor([0., 0.])
    """

    def __init__(
        self,
        tasks: TaskSpec,
        normalization: Normalization = "none",
        apply_to: Literal["losses", "normalized"] = "losses",
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        if normalization not in ("none", "l2", "loss", "loss+"):
            raise ValueError(f"normalization must be 'none', 'l2', 'loss' or 'loss+', got {normalization!r}")
        if apply_to not in ("losses", "normalized"):
            raise ValueError(f"mgda: apply_to must be 'losses' or 'normalized', got {apply_to!r}")
        self.normalization = normalization
        self.apply_to = apply_to

    def _validate_values(self, names: Sequence[str], values: Tensor) -> bool:
        if self.normalization in ("loss", "loss+"):
            reason = f"normalization={self.normalization!r} divides gradients by the loss."
            return self._check_losses(names, values, "positive", reason)
        return super()._validate_values(names, values)

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        if self.normalization == "none":
            return min_norm_weights(gramian)
        tiny = torch.finfo(gramian.dtype).tiny
        scale = torch.ones_like(losses)
        if self.normalization in ("l2", "loss+"):
            scale = scale / gramian.diagonal().clamp(min=tiny).sqrt()
        if self.normalization in ("loss", "loss+"):
            scale = scale / losses
        w = min_norm_weights(scale[:, None] * gramian * scale[None, :])
        return w if self.apply_to == "losses" else w * scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, normalization={self.normalization!r}, apply_to={self.apply_to!r}"
