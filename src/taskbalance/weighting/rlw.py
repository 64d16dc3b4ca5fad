"""Random Loss Weighting (Lin et al., "Reasonable Effectiveness of Random Weighting:
A Litmus Test for Multi-Task Learning", TMLR 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..base import Balancer, SeededGenerator, Step, TaskSpec
from ..registry import register

__all__ = ["RLW"]


@register("rlw", "random")
class RLW(Balancer):
    r"""Random loss weighting: fresh random weights at every step.

    .. math::
        \tilde\lambda \sim \mathcal{N}(0, I_T), \qquad
        w = \operatorname{softmax}(\tilde\lambda_{\text{present}}), \qquad
        \mathcal{L} = \sum_i w_i L_i ,

    so the weights of the tasks present sum to 1 (the paper's normalisation). A draw
    is made for every declared task at every step, present or not, so the random
    stream does not depend on which tasks are present. Under ``torch.no_grad()``
    (evaluation) nothing is drawn: the weights are their expectation, 1/K, so that
    evaluating never changes the training stream (nor makes ranks drift apart).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        seed: seed of the method's own generator; by default drawn from torch's global
            generator at construction (so ``torch.manual_seed`` makes runs repeatable).

    State: the generator (on the losses' device), saved by ``state_dict``.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("rlw", tasks=3, seed=0)
        >>> x = torch.ones(3, requires_grad=True)
        >>> _ = b(list(x.unbind()))
        >>> round(float(sum(b.weights.values())), 6)
        1.0
    """

    def __init__(self, tasks: TaskSpec, seed: int | None = None, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.generator = self.add_state("generator", SeededGenerator(seed))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        if not step.updating:  # evaluation: the expected weights, no draw from the stream
            w = torch.full_like(losses, 1.0 / losses.shape[0])
            return (w * losses).sum(), w
        gen = self.generator.get(losses.device)
        z = torch.randn(self.num_tasks, generator=gen, device=losses.device, dtype=losses.dtype)
        w = torch.softmax(step.take(z), dim=0)
        return (w * losses).sum(), w
