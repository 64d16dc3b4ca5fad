"""Smooth Tchebycheff scalarisation (Lin et al., "Smooth Tchebycheff Scalarization for
Multi-Objective Optimization", ICML 2024)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..base import Balancer, Step, TaskSpec
from ..registry import register

__all__ = ["STCH"]


@register("stch", "smooth-tchebycheff")
class STCH(Balancer):
    r"""Smooth Tchebycheff scalarisation of log-normalised losses.

    After a warm-up that trains on :math:`\sum_i \log L_i` and measures the nadir
    point :math:`z_i` (the mean loss of each task over the last warm-up epoch), the
    objective is the smooth maximum of the normalised log losses:

    .. math::
        u_i = \log\frac{L_i}{z_i}, \qquad
        \mathcal{L} = K\,\mu \log \sum_{i=1}^K \exp\!\left(\frac{u_i}{\mu}\right),
        \qquad w_i = \frac{K\,\operatorname{softmax}(u/\mu)_i}{L_i} ,

    which tends to :math:`K \max_i u_i` (the Tchebycheff scalarisation) as μ -> 0.
    This follows the authors' multi-task code: log losses, uniform preferences, the
    factor K.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        mu: smoothing μ > 0 (default 1).
        warmup_epochs: epochs of warm-up (default 5); close each with
            :meth:`epoch_end`. The nadir is measured during the last one. The
            authors' ``warmup_epoch = W`` (Xi-L/STCH) trains W epochs on the log losses,
            measures the nadir in epoch W and starts STCH at epoch W + 1: it is
            ``warmup_epochs = W + 1`` here, and the default 5 is their default 4.
        nadir: a fixed nadir point (mapping by task or sequence); skips the warm-up.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("stch", tasks=2, nadir=[1.0, 1.0])
        >>> x = torch.tensor([1.0, 1.0], requires_grad=True)
        >>> b([x[0], x[1]])  # 2·log(e^0 + e^0)
        tensor(1.3863, grad_fn=<MulBackward0>)
    """

    nadir: Tensor
    epoch: int
    warmup_epochs: int
    nadir_sum: Tensor
    nadir_count: Tensor
    sign_rule = "positive"
    sign_reason = "STCH works on log losses, undefined for L <= 0; shift the loss to be positive."
    #: a short run cannot spend its first 5 epochs on the warm-up
    bench_kwargs: ClassVar[Mapping[str, Any]] = {"warmup_epochs": 1}

    def __init__(
        self,
        tasks: TaskSpec,
        mu: float = 1.0,
        warmup_epochs: int = 5,
        nadir: Mapping[str, float] | Sequence[float] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        self._number("mu", mu, low=0, open_low=True)
        if nadir is None and warmup_epochs < 1:
            raise ValueError("warmup_epochs must be >= 1 unless a fixed nadir is given")
        self.mu = float(mu)
        self.add_state("warmup_epochs", 0 if nadir is not None else int(warmup_epochs))
        self.add_state("epoch", 0)
        t = self.num_tasks
        if nadir is not None:
            values = self._per_task(nadir, "nadir values")
            if not all(v > 0 for v in values):
                raise ValueError(f"nadir must give one positive value per task, got {values}")
            self.add_state("nadir", torch.tensor(values))
        else:
            self.add_state("nadir", torch.ones(t))
        self.add_state("nadir_sum", torch.zeros(t))
        self.add_state("nadir_count", torch.zeros(t))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        logs = torch.log(losses)
        if self.epoch < self.warmup_epochs:
            if self.epoch == 0 and step.updating and not torch.compiler.is_compiling():
                self._warn_if_no_epoch_closes()
            if self.epoch == self.warmup_epochs - 1:
                step.add("nadir_sum", losses.detach())
                step.add("nadir_count", torch.ones_like(losses))
            return logs.sum(), losses.detach().reciprocal()
        k = losses.numel()
        u = (logs - torch.log(step.get("nadir")).to(logs.dtype)) / self.mu
        total = k * self.mu * torch.logsumexp(u, dim=0)
        w = k * torch.softmax(u.detach(), dim=0) / losses.detach()
        return total, w

    #: training steps without any epoch_end() after which STCH warns, once, that it is
    #: still in its warm-up (an epoch of more steps than this is rare)
    EPOCH_WARNING_STEPS = 50_000
    _steps_in_first_epoch = 0
    _warned_epochs = False

    def _warn_if_no_epoch_closes(self) -> None:
        self._steps_in_first_epoch += 1
        if self._steps_in_first_epoch == self.EPOCH_WARNING_STEPS and not self._warned_epochs:
            self._warned_epochs = True
            warnings.warn(
                f"stch: {self.EPOCH_WARNING_STEPS} training steps and no epoch_end(): STCH is still in its "
                f"warm-up of {self.warmup_epochs} epochs and trains on the sum of log losses. Call "
                "balancer.epoch_end() at the end of each epoch, or pass nadir= to skip the warm-up",
                RuntimeWarning,
                stacklevel=4,
            )

    def epoch_end(self) -> None:
        """Count the epoch; at the end of the warm-up, fix the nadir point.

        A task never seen in the last warm-up epoch gets the nadir 1.
        """
        self.epoch += 1
        if self.epoch == self.warmup_epochs:
            seen = self.nadir_count > 0
            mean = self.nadir_sum / self.nadir_count.clamp(min=1)
            self.nadir.copy_(torch.where(seen, mean, torch.ones_like(mean)))
