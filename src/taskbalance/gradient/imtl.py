"""IMTL (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021): the gradient
part IMTL-G, and IMTL = IMTL-L's loss scales + IMTL-G."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import override

from ..base import Step, TaskSpec
from ..registry import register
from .core import GramianBalancer

__all__ = ["IMTLG", "IMTL", "imtl_g_weights"]


def imtl_g_weights(gramian: Tensor) -> Tensor:
    r"""IMTL-G's weights: :math:`w \propto M^{+} \operatorname{diag}(M)^{1/2}`, :math:`\sum w = 1`.

    Then :math:`d = G^\top w` has the same projection on every unit gradient
    :math:`g_i/\|g_i\|`: :math:`(Mw)_i / \|g_i\| = 1/\sum_j v_j` for all i.

    Example:
        >>> g = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> imtl_g_weights(g @ g.T)
        tensor([0.3333, 0.6667], dtype=torch.float64)
    """
    norms = gramian.diagonal().clamp(min=0).sqrt()
    v = torch.linalg.pinv(gramian, hermitian=True) @ norms
    total = v.sum()
    return torch.where(total.abs() > 1e-12, v / total, torch.zeros_like(v))


@register("imtl-g", "imtl-gradient")
class IMTLG(GramianBalancer):
    r"""IMTL-G: the convex-affine combination whose projections onto the unit task
    gradients are all equal.

    .. math::
        d = \sum_i w_i g_i,\ \sum_i w_i = 1,\qquad
        \Big\langle d, \frac{g_i}{\|g_i\|}\Big\rangle = \Big\langle d, \frac{g_j}{\|g_j\|}\Big\rangle ,

    in closed form :math:`w \propto (GG^\top)^{+}\,(\|g_1\|,\dots,\|g_K\|)`, the same as
    TorchJD's ``IMTLG``.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("imtl-g", tasks=2)
        >>> _ = b.backward([w @ torch.tensor([2.0, 0.0]), w @ torch.tensor([0.0, 1.0])], shared_params=[w])
        >>> w.grad
        tensor([0.6667, 0.6667])
    """

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        return imtl_g_weights(gramian)


@register("imtl")
class IMTL(IMTLG):
    r"""IMTL: IMTL-L's learned loss scales and IMTL-G's gradient combination together.

    The task objectives are the scaled losses :math:`e^{s_i} L_i - s_i` (s learned, see
    :class:`~taskbalance.IMTLL`); the shared parameters get IMTL-G's combination of
    their gradients, the task-specific parameters and s the ordinary gradient of
    :math:`\sum_i (e^{s_i} L_i - s_i)`. Weights are reported per raw loss
    (:math:`w_i e^{s_i}`).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        init: initial s (default 0).

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.ones(2, requires_grad=True)
        >>> b = tb.create("imtl", tasks=2)
        >>> _ = b.backward([(w**2).sum(), w.sum()], shared_params=[w])
        >>> b.log_scales.grad  # e^s·L - 1 at s = 0
        tensor([1., 1.])
    """

    sign_rule = "positive"
    sign_reason = "e^s·L - s is unbounded below in s when L <= 0; shift the loss to be positive."

    def __init__(self, tasks: TaskSpec, init: float = 0.0, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.log_scales = nn.Parameter(torch.full((self.num_tasks,), self._number("init", init)))

    def _objectives(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor | None]:
        s = step.take(self.log_scales)
        scale = torch.exp(s)
        return scale * losses - s, scale
