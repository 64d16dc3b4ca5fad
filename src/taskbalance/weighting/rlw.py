"""Random Loss Weighting (Lin et al., "Reasonable Effectiveness of Random Weighting:
A Litmus Test for Multi-Task Learning", TMLR 2022)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..base import Balancer, TaskSpec
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
    stream does not depend on which tasks are present.

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
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = int(seed)
        self._generator: torch.Generator | None = None
        self._pending_state: tuple[str, Tensor] | None = None

    def _get_generator(self, device: torch.device) -> torch.Generator:
        gen = self._generator
        if gen is None or gen.device != device:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            if self._pending_state is not None and self._pending_state[0] == device.type:
                gen.set_state(self._pending_state[1])
            self._pending_state = None
            self._generator = gen
        return gen

    def _combine(self, losses: Tensor, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        gen = self._get_generator(losses.device)
        z = torch.randn(self.num_tasks, generator=gen, device=losses.device, dtype=losses.dtype)
        w = torch.softmax(self._take(z, idx), dim=0)
        return (w * losses).sum(), w

    def _extra_state(self) -> dict[str, Any]:
        if self._generator is not None:
            return {
                "seed": self.seed,
                "device": self._generator.device.type,
                "state": self._generator.get_state(),
            }
        pending = self._pending_state
        return {
            "seed": self.seed,
            "device": pending[0] if pending else None,
            "state": pending[1] if pending else None,
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.seed = int(state["seed"])
        self._generator = None
        self._pending_state = (state["device"], state["state"]) if state["state"] is not None else None
