"""Random Gradient Weighting (Lin et al., "Reasonable Effectiveness of Random Weighting:
A Litmus Test for Multi-Task Learning", TMLR 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import SeededGenerator, Step, TaskSpec
from ..registry import register
from .core import GramianBalancer

__all__ = ["RGW"]


@register("rgw", "random-gradient")
class RGW(GramianBalancer):
    r"""Random gradient weighting: the shared gradient is a random convex combination
    of the task gradients, drawn afresh at every step.

    .. math::
        \tilde\lambda \sim \mathcal{N}(0, I_K), \qquad
        w = \operatorname{softmax}(\tilde\lambda_{\text{present}}), \qquad
        d = \sum_i w_i \nabla L_i ,

    as LibMTL's ``RGW``: only the shared parameters (or features) get the weighted
    gradient; the task heads get the ordinary gradient of :math:`\sum_i L_i`. With the
    same seed it draws the same weights as :class:`~taskbalance.RLW`, which weights the
    losses themselves (so its heads are weighted too). Under ``torch.no_grad()``
    (``aggregate`` in evaluation) nothing is drawn: the weights are 1/K.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        seed: seed of the method's own generator (default: drawn from torch's global
            generator at construction).

    State: the generator, saved by ``state_dict``.

    Example:
        >>> import torch, taskbalance as tb
        >>> w = torch.zeros(2, requires_grad=True)
        >>> b = tb.create("rgw", tasks=2, seed=0)
        >>> _ = b.backward([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([0.0, 1.0])], shared_params=[w])
        >>> round(float(w.grad.sum()), 6)  # a convex combination of e1 and e2
        1.0
    """

    def __init__(self, tasks: TaskSpec, seed: int | None = None, **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.generator = self.add_state("generator", SeededGenerator(seed))

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        if not step.updating:  # evaluation: the expected weights, no draw from the stream
            return torch.full_like(losses, 1.0 / losses.shape[0])
        # drawn as RLW draws (float32, every declared task), so one seed gives both the same weights
        gen = self.generator.get(gramian.device)
        z = torch.randn(self.num_tasks, generator=gen, device=gramian.device, dtype=torch.float32)
        return torch.softmax(step.take(z), dim=0).to(gramian.dtype)
