"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing
in Deep Multitask Networks", ICML 2018)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..base import Step, TaskSpec
from ..registry import register
from .core import GradientBalancer, row_norms

__all__ = ["GradNorm"]


@register("gradnorm")
class GradNorm(GradientBalancer):
    r"""GradNorm: learn loss weights that equalise the tasks' training rates.

    The network is trained on :math:`\sum_i w_i L_i`. With
    :math:`G_i = \|\nabla_W\, w_i L_i\|` on the last shared layer W (``shared_params=``,
    as in the paper) or the shared features (``features=``),
    :math:`\tilde L_i = L_i / L_i(0)`, :math:`r_i = \tilde L_i / \operatorname{mean}_j \tilde L_j`:

    .. math::
        \mathcal L_{\text{grad}} = \sum_i \Big| G_i - \bar G\, r_i^{\,\alpha} \Big|,
        \qquad \frac{\partial \mathcal L_{\text{grad}}}{\partial w_i}
        = \operatorname{sign}\big(G_i - \bar G r_i^{\alpha}\big)\,\|\nabla_W L_i\| ,

    with the target :math:`\bar G r_i^\alpha` held constant. :meth:`backward` puts that
    gradient in ``weights_param.grad`` (your optimiser steps it: give it
    :meth:`param_groups`), and the weights are renormalised to sum to K at the start
    of every step, after clamping at :math:`10^{-3}`: an optimiser step that overshoots
    below zero would otherwise flip a task's gradient, and a sum near zero would blow
    every weight up. Parameters not in ``shared_params`` (the rest of the encoder, the
    heads) get the gradient of :math:`\sum_i w_i L_i`.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        alpha: the asymmetry α (default 1.5).

    State: the weights (a parameter) and each task's initial loss :math:`L_i(0)`.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.ones(2, requires_grad=True)
        >>> b = tb.create("gradnorm", tasks=2)
        >>> _ = b.backward([(w**2).sum(), 3 * w.sum()], shared_params=[w])
        >>> b.weights_param.grad  # task 1's gradient is larger than its target: push its weight down
        tensor([-2.8284,  4.2426])
    """

    initial_losses: Tensor
    seen: Tensor
    sign_rule = "positive"
    sign_reason = "GradNorm's training rates L_i(t)/L_i(0) need positive losses."

    def __init__(self, tasks: TaskSpec, alpha: float = 1.5, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.alpha = self._number("alpha", alpha, low=0)
        self.weights_param = nn.Parameter(torch.ones(self.num_tasks))
        self.add_state("initial_losses", torch.ones(self.num_tasks))
        self.add_state("seen", torch.zeros(self.num_tasks, dtype=torch.bool))

    def _own_leaves(self) -> set[int]:
        return {id(self.weights_param)}

    def _objectives(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor | None]:
        if step.updating:
            with torch.no_grad():
                w = self.weights_param
                if step.everyone:
                    w.clamp_(min=1e-3).mul_(self.num_tasks / w.sum())
                else:  # renormalise the present tasks only: an absent task's weight stays put
                    present = step.take(w).clamp(min=1e-3)
                    rest = w.sum() - step.take(w).sum()
                    step.write(w, present * ((self.num_tasks - rest).clamp(min=1e-3) / present.sum()))
        weights = step.take(self.weights_param).to(losses.dtype)
        return weights * losses, None

    def _aggregate(self, jac: Tensor, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        w = step.take(self.weights_param).detach().to(jac.dtype, copy=True)  # not a view: the step moves it
        # here, not before the Jacobian: an overflow step records nothing
        first = ~step.get("seen")
        init = step.get("initial_losses")
        step.set("initial_losses", torch.where(first, losses.detach().to(init.dtype), init))
        step.set("seen", torch.ones_like(first))
        # in float64: norms of 1e30-sized gradients and loss ratios overflow float32
        g = row_norms(jac).double()  # G_i = w_i ‖∇L_i‖
        ratio = losses.double() / step.get("initial_losses").double()
        target = g.mean() * (ratio / ratio.mean()) ** self.alpha
        grad_w = (torch.sign(g - target) * g / w.double().clamp(min=torch.finfo(w.dtype).tiny)).to(jac.dtype)
        if step.updating:
            full = torch.zeros_like(self.weights_param)
            step.write(full, grad_w * step.grad_scale)  # unscaled by a GradScaler
            if self.weights_param.grad is None:
                self.weights_param.grad = full
            else:
                self.weights_param.grad.add_(full)
        return jac.sum(0), w

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"
