"""FAMO (Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..base import Balancer, InvalidLossError, LossInput, SignRule, TaskSpec
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
        if any(b != 0 for b in bounds):
            self.sign_rule = "any"  # the bound makes L - b the quantity that must be > 0
        self.register_buffer("min_losses", torch.tensor(bounds))
        self.register_buffer("logits", torch.zeros(t))
        self.register_buffer("adam_m", torch.zeros(t))
        self.register_buffer("adam_v", torch.zeros(t))
        self.register_buffer("adam_step", torch.zeros(t))
        self.register_buffer("prev_log_gaps", torch.zeros(t))
        self._bounded = any(b != 0 for b in bounds)
        self._steps: int | None = 0  # the common step count while no task was ever absent

    def _validate_values(self, names: Sequence[str], values: Tensor) -> bool:
        """The base checks, and L > b for every task with a lower bound b."""
        ok = super()._validate_values(names, values)
        if ok and self.check and self._bounded:
            for name, v in zip(names, values.tolist()):
                bound = float(self.min_losses[self._position[name]])
                if not v > bound:
                    raise InvalidLossError(
                        f"loss of task {name!r} is {v:g}, not above its min_losses bound {bound:g}: FAMO "
                        "takes log(L - bound); lower the bound or shift the loss"
                    )
        return ok

    def _log_gaps(self, losses: Tensor, idx: Tensor | slice) -> Tensor:
        """log(L - b + ε), skipping the subtraction when every bound is 0."""
        if self._bounded:
            losses = losses - self._take(self.min_losses, idx).to(losses.dtype)
        return torch.log(losses + self.eps)

    def _combine(self, losses: Tensor, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        z = torch.softmax(self._take(self.logits, idx), dim=0).to(losses.dtype)
        log_gaps = self._log_gaps(losses, idx)
        scaled = z * torch.exp(-log_gaps.detach())  # z_i / (L_i - b_i + ε)
        c = scaled.sum()
        total = (z * log_gaps).sum() / c
        if self._updating():
            self.prev_log_gaps[idx] = log_gaps.detach().to(self.prev_log_gaps.dtype)
        return total, scaled / c

    @torch.no_grad()
    def after_step(self, losses: LossInput) -> None:
        """Update the task logits from the losses re-evaluated after the optimiser step.

        ``losses`` must hold the tasks of the last :meth:`forward` (on the same batch).
        """
        if self.skipped:
            return
        if self._last_weights is None:
            raise RuntimeError("FAMO.after_step() called before any forward/backward step")
        names, tensors = self._collect(losses, need_grad=False)
        if tuple(names) != self._last_names:
            missing = sorted(set(self._last_names) ^ set(names))
            raise ValueError(
                f"after_step needs the same tasks as the last step; task {missing[0]!r} differs "
                f"(last step: {list(self._last_names)}, given: {names})"
            )
        new = torch.stack(tensors).detach()
        idx = self._indices(names, new.device)
        new = self._global_values(names, new, idx)
        if not self._validate_values(names, new):
            return
        delta = self._take(self.prev_log_gaps, idx) - self._log_gaps(new.to(self.logits.dtype), idx)
        everyone = isinstance(idx, slice)  # update the buffers in place, else gathered copies
        logits, m, v, step = (
            (self.logits, self.adam_m, self.adam_v, self.adam_step)
            if everyone
            else (self.logits[idx], self.adam_m[idx], self.adam_v[idx], self.adam_step[idx])
        )
        z = torch.softmax(logits, dim=0)
        grad = z * (delta - torch.dot(z, delta))  # Jᵀδ of the softmax
        grad.add_(logits, alpha=self.gamma)  # Adam's L2 weight decay
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        step.add_(1)
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if everyone and self._steps is not None:  # one step count for all: host-side corrections
            self._steps += 1
            bc1, bc2 = 1 - beta1**self._steps, 1 - beta2**self._steps
            denom = (v / bc2).sqrt_().add_(adam_eps)
            logits.addcdiv_(m, denom, value=-self.w_lr / bc1)
        else:  # some task missed a step: per-task step counts
            self._steps = None
            denom = (v / (1 - torch.pow(beta2, step))).sqrt_().add_(adam_eps)
            logits.addcdiv_(m / (1 - torch.pow(beta1, step)), denom, value=-self.w_lr)
        if not everyone:
            self.logits[idx], self.adam_m[idx], self.adam_v[idx], self.adam_step[idx] = logits, m, v, step

    def _extra_state(self) -> dict[str, Any]:
        return {"steps": self._steps}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._steps = state["steps"]
