"""FAMO (Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..base import Balancer, InvalidLossError, LossInput, SignRule, Step, TaskSpec
from ..registry import register

__all__ = ["FAMO"]


@register("famo")
class FAMO(Balancer):
    r"""Fast Adaptive Multitask Optimisation: balance the rate at which losses fall.

    Task logits ξ give :math:`z = \operatorname{softmax}(\xi)`. The step minimises

    .. math::
        \mathcal{L} = \frac{1}{c}\sum_i z_i \log(L_i - b_i + \epsilon), \qquad
        c = \sum_i \frac{z_i}{L_i - b_i + \epsilon}\ (\text{detached}), \qquad
        w_i = \frac{z_i}{c\,(L_i - b_i + \epsilon)} ,

    with :math:`b_i` a lower bound of the loss (default 0). After ``optimizer.step()``
    the losses re-evaluated on the same batch give the log-decrease
    :math:`\delta_i = \log(L_i^{\text{before}} - b_i + \epsilon) - \log(L_i^{\text{after}} - b_i + \epsilon)`,
    and ξ takes one Adam step (learning rate ``w_lr``, weight decay γ) along
    :math:`J_{\text{softmax}}(\xi)^\top \delta`. That is :meth:`after_step`, FAMO's
    post-step hook: call it with the new losses (computed under ``torch.no_grad()``).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        w_lr: learning rate of the logits (default 0.025, the paper's).
        gamma: weight decay γ of the logits (default 0.01).
        min_losses: lower bounds :math:`b_i` (default 0), mapping or sequence.
        eps: ε (default 1e-8).

    State: ξ, its Adam moments and step counts, and log(L - b + ε) of the last step.
    ξ is not a parameter: it is updated by :meth:`after_step`, not by your optimiser.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("famo", tasks=["a", "b"])
        >>> x = torch.tensor([2.0, 2.0], requires_grad=True)
        >>> b({"a": x[0] * 1, "b": x[1] * 1}).backward()
        >>> b.after_step({"a": torch.tensor(1.0), "b": torch.tensor(1.9)})
        >>> bool(b.logits[0] < b.logits[1])  # a fell faster: it loses weight
        True
    """

    min_losses: Tensor
    logits: Tensor
    adam_m: Tensor
    adam_v: Tensor
    adam_step: Tensor
    prev_log_gaps: Tensor
    _steps: int | None
    sign_rule: SignRule = "positive"
    sign_reason = "FAMO works on log(L - min_loss), undefined for L <= 0 with the default bound."

    def __init__(
        self,
        tasks: TaskSpec,
        w_lr: float = 0.025,
        gamma: float = 0.01,
        min_losses: Mapping[str, float] | Sequence[float] | None = None,
        eps: float = 1e-8,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        t = self.num_tasks
        self.w_lr = self._number("w_lr", w_lr, low=0, open_low=True)
        self.gamma = self._number("gamma", gamma, low=0)
        self.eps = self._number("eps", eps, low=0, open_low=True)
        bounds = self._per_task(min_losses, "min_losses", default=0.0)
        self.add_state("min_losses", torch.tensor(bounds))
        self.add_state("logits", torch.zeros(t))
        self.add_state("adam_m", torch.zeros(t))
        self.add_state("adam_v", torch.zeros(t))
        self.add_state("adam_step", torch.zeros(t))
        self.add_state("prev_log_gaps", torch.zeros(t))
        self._bounded = any(b != 0 for b in bounds)
        self.add_state("_steps", 0)  # the common step count while no task was ever absent

    def _validate_values(self, names: Sequence[str], values: Tensor) -> bool:
        """The base checks; with lower bounds b, L > b for every task instead of L > 0."""
        if not self._bounded:
            return super()._validate_values(names, values)
        ok = self._check_losses(names, values, "any", "")
        if ok and self.check:
            for name, v in zip(names, values.tolist()):
                bound = float(self.min_losses[self._position[name]])
                if not v > bound:
                    raise InvalidLossError(
                        f"loss of task {name!r} is {v:g}, not above its min_losses bound {bound:g}: FAMO "
                        "takes log(L - bound); lower the bound or shift the loss"
                    )
        return ok

    def _log_gaps(self, losses: Tensor, step: Step) -> Tensor:
        """log(L - b + ε), skipping the subtraction when every bound is 0."""
        if self._bounded:
            losses = losses - step.get("min_losses").to(losses.dtype)
        return torch.log(losses + self.eps)

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        z = torch.softmax(step.get("logits"), dim=0).to(losses.dtype)
        log_gaps = self._log_gaps(losses, step)
        scaled = z * torch.exp(-log_gaps.detach())  # z_i / (L_i - b_i + ε)
        c = scaled.sum()
        total = (z * log_gaps).sum() / c
        step.set("prev_log_gaps", log_gaps)
        return total, scaled / c

    @torch.no_grad()
    def after_step(self, losses: LossInput) -> None:
        """Update the task logits from the losses re-evaluated after the optimiser step.

        ``losses`` must hold the tasks of the last :meth:`forward` (on the same batch).
        """
        prepared = self._prepare_after(losses)
        if prepared is None:
            return
        step, new = prepared
        delta = step.get("prev_log_gaps") - self._log_gaps(new.to(self.logits.dtype), step)
        # the buffers themselves when every task is present (updated in place), else copies
        logits, m, v, count = (step.get(n) for n in ("logits", "adam_m", "adam_v", "adam_step"))
        z = torch.softmax(logits, dim=0)
        grad = z * (delta - torch.dot(z, delta))  # Jᵀδ of the softmax
        grad.add_(logits, alpha=self.gamma)  # Adam's L2 weight decay
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        count.add_(1)
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if step.everyone and self._steps is not None:  # one step count for all: host-side corrections
            self._steps += 1
            bc1, bc2 = 1 - beta1**self._steps, 1 - beta2**self._steps
            denom = (v / bc2).sqrt_().add_(adam_eps)
            logits.addcdiv_(m, denom, value=-self.w_lr / bc1)
        else:  # some task missed a step: per-task step counts
            self._steps = None
            denom = (v / (1 - torch.pow(beta2, count))).sqrt_().add_(adam_eps)
            logits.addcdiv_(m / (1 - torch.pow(beta1, count)), denom, value=-self.w_lr)
        for name, value in (("logits", logits), ("adam_m", m), ("adam_v", v), ("adam_step", count)):
            step.set(name, value)
