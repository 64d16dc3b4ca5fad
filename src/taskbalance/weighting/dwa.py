"""Dynamic Weight Average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from ..base import Balancer, Step, TaskSpec
from ..registry import register

__all__ = ["DWA"]


@register("dwa", "dynamic-weight-average")
class DWA(Balancer):
    r"""Dynamic Weight Average: weight tasks by how slowly their loss falls.

    .. math::
        r_i = \frac{\bar L_i(t-1)}{\bar L_i(t-2)}, \qquad
        w_i = K \, \frac{\exp(r_i / T)}{\sum_j \exp(r_j / T)}, \qquad
        \mathcal{L} = \sum_i w_i L_i ,

    over the K tasks present, with :math:`\bar L_i(t)` the average loss of epoch *t*
    (the paper) or of a window of steps. Until a task has two averages, its ratio is
    1 (so all weights are 1 at first, as in the paper).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        temperature: T (default 2, the paper's).
        window: ``"epoch"`` (default): averages over epochs, closed by calling
            :meth:`epoch_end` once per epoch. An int k: per-step mode, the ratio of the
            mean of a task's last k losses to the mean of the k before (k=1 is the
            per-step DWA of several implementations); :meth:`epoch_end` is a no-op.

    State: the epoch sums and the last two averages (or the window of 2k losses),
    saved by ``state_dict``. Statistics are not updated under ``torch.no_grad()``.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("dwa", tasks=["a", "b"])
        >>> for epoch, (la, lb) in enumerate([(4.0, 4.0), (2.0, 4.0), (1.0, 4.0)]):
        ...     x = torch.tensor([la, lb], requires_grad=True)
        ...     loss = b({"a": x[0], "b": x[1]})
        ...     b.epoch_end()
        >>> w = b.weights  # a fell by half, b did not: b weighs more
        >>> bool(w["b"] > w["a"]), round(float(w["a"] + w["b"]), 4)
        (True, 2.0)
    """

    epoch_logits: Tensor
    epoch_sum: Tensor
    epoch_count: Tensor
    history: Tensor
    num_history: Tensor
    ring: Tensor
    ring_pos: Tensor
    ring_count: Tensor
    sign_rule = "positive"
    sign_reason = "DWA's weights use ratios of average losses, undefined for L <= 0."

    def __init__(
        self,
        tasks: TaskSpec,
        temperature: float = 2.0,
        window: Literal["epoch"] | int = "epoch",
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        self._number("temperature", temperature, low=0, open_low=True)
        if window != "epoch" and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be 'epoch' or a positive int, got {window!r}")
        self.temperature = float(temperature)
        self.window = window
        t = self.num_tasks
        if window == "epoch":
            # float64: a float64 loss above float32's range, or a ratio of averages far
            # apart, must neither overflow nor turn the weights into NaN
            self.add_state("epoch_sum", torch.zeros(t, dtype=torch.float64))
            self.add_state("epoch_count", torch.zeros(t))
            self.add_state(
                "history", torch.ones(2, t, dtype=torch.float64), task_dims=(1,)
            )  # [last, previous]
            self.add_state("num_history", torch.zeros(t, dtype=torch.long))
            # r / T of every task: constant within an epoch, so computed once per epoch
            self.add_state("epoch_logits", torch.zeros(t, dtype=torch.float64), persistent=False)
        else:
            self.add_state("ring", torch.ones(2 * window, t, dtype=torch.float64), task_dims=(1,))
            self.add_state("ring_pos", torch.zeros(t, dtype=torch.long))
            self.add_state("ring_count", torch.zeros(t, dtype=torch.long))

    def _ratios(self) -> Tensor:
        """The loss ratios r, in float64, from the logarithms of the averages (so that no
        quotient overflows) and capped at e^700 (softmax then saturates anyway)."""
        if self.window == "epoch":
            ready = self.num_history >= 2
            log_ratio = torch.log(self.history[0]) - torch.log(self.history[1])
        else:
            k = int(self.window)
            slots = torch.arange(2 * k, device=self.ring.device).unsqueeze(1)
            age = torch.remainder(self.ring_pos.unsqueeze(0) - 1 - slots, 2 * k)
            recent = (age < k).to(self.ring.dtype)
            log_ratio = torch.log((self.ring * recent).sum(0)) - torch.log((self.ring * (1 - recent)).sum(0))
            ready = self.ring_count >= 2 * k
        ratio = torch.exp(log_ratio.clamp(max=700.0))
        return torch.where(ready, ratio, torch.ones_like(ratio))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        logits = self.epoch_logits if self.window == "epoch" else self._ratios() / self.temperature
        w = (losses.numel() * torch.softmax(step.take(logits), dim=0)).to(losses.dtype)
        values = losses.detach().to(torch.float64)
        if self.window == "epoch":
            step.add("epoch_sum", values)
            step.add("epoch_count", torch.ones_like(values))
        elif step.updating:
            ring, pos = step.get("ring").clone(), step.get("ring_pos")
            ring[pos, torch.arange(len(values), device=ring.device)] = values
            step.set("ring", ring)
            step.set("ring_pos", torch.remainder(pos + 1, ring.shape[0]))
            step.add("ring_count", torch.ones_like(pos))
        return (w * losses).sum(), w

    def epoch_end(self) -> None:
        """Close the epoch: its average loss per task becomes the newest history entry.

        Tasks not seen during the epoch keep their history. No-op in per-step mode.
        """
        if self.window != "epoch":
            return
        seen = self.epoch_count > 0
        mean = self.epoch_sum / self.epoch_count.clamp(min=1)
        self.history[1] = torch.where(seen, self.history[0], self.history[1])
        self.history[0] = torch.where(seen, mean, self.history[0])
        self.num_history += seen.long()
        self.epoch_logits.copy_(self._ratios() / self.temperature)
        self.epoch_sum.zero_()
        self.epoch_count.zero_()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}, window={self.window!r}"

    def _on_load(self) -> None:
        if self.window == "epoch":  # derived from the loaded history
            self.epoch_logits.copy_(self._ratios() / self.temperature)
