"""Lightning integration: a ``LightningModule`` that trains through a balancer.

Subclass :class:`BalancedModule`, build your network in ``__init__``, and write
:meth:`~BalancedModule.task_losses`; the training step, the optimiser's parameter
groups, the method's hooks and the logging of its weights are done for you, for every
method:

* loss-based methods use Lightning's automatic optimisation (``training_step``
  returns the balanced loss);
* gradient-based methods use manual optimisation: the step calls
  ``balancer.backward(losses, shared_params=...)`` (or ``features=``) and steps the
  optimiser, with Lightning's DDP reducer and GradScaler (``precision="16-mixed"``)
  told about it.

Under ``strategy="ddp"`` the balancer synchronises itself (see
:mod:`taskbalance.distributed`): its parameters and buffers are kept out of DDP's
reducer, and every rank computes the same weights.

Requires ``lightning`` (``pip install "taskbalance[lightning]"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from typing_extensions import override

from .base import Balancer
from .distributed import ignore_in_ddp

__all__ = ["BalancedModule"]

TaskOutput = Mapping[str, Tensor] | tuple[Mapping[str, Tensor], Tensor]


class BalancedModule(pl.LightningModule):
    """A ``LightningModule`` whose training step balances the task losses.

    Args:
        balancer: any taskbalance method (``tb.create(...)``). It becomes a submodule:
            it moves with the model and its state is saved in Lightning checkpoints.
        lr: learning rate of the default optimiser (Adam) for the network.
        balancer_lr: learning rate of the balancer's own parameters (weight decay 0).
        log_stats: log the balancer's step statistics (``balancer/weight/<task>``,
            ``balancer/sigma/<task>``, gradient norms and cosines; see
            :mod:`taskbalance.monitor`) with ``self.log_dict`` every step.

    Subclasses implement :meth:`task_losses`, and :meth:`shared_parameters` when a
    gradient-based method runs in parameter mode.

    Example:
        >>> import torch, taskbalance as tb
        >>> from taskbalance.lightning import BalancedModule
        >>> class TwoTasks(BalancedModule):
        ...     def __init__(self, method: str) -> None:
        ...         super().__init__(tb.create(method, tasks=["a", "b"]), lr=1e-2)
        ...         self.encoder = torch.nn.Linear(3, 4)
        ...         self.heads = torch.nn.ModuleDict({t: torch.nn.Linear(4, 1) for t in "ab"})
        ...     def task_losses(self, batch):
        ...         x, y = batch
        ...         z = self.encoder(x)
        ...         pred = {t: self.heads[t](z).squeeze(1) for t in "ab"}
        ...         return {t: ((pred[t] - y[:, i]) ** 2).mean() for i, t in enumerate("ab")}
        ...     def shared_parameters(self):
        ...         return self.encoder.parameters()
        >>> TwoTasks("mgda").automatic_optimization  # gradient-based: manual optimisation
        False
    """

    def __init__(
        self, balancer: Balancer, *, lr: float = 1e-3, balancer_lr: float = 1e-2, log_stats: bool = True
    ) -> None:
        super().__init__()
        self.balancer = balancer
        self.lr = float(lr)
        self.balancer_lr = float(balancer_lr)
        self.automatic_optimization = balancer.kind == "loss"
        self._stats: dict[str, Tensor] = {}
        if log_stats:
            balancer.register_step_hook(self._keep_stats)
        self._needs_after_step = type(balancer).after_step is not Balancer.after_step

    def _keep_stats(self, _balancer: Balancer, stats: dict[str, Tensor]) -> None:
        self._stats = stats

    @override
    def setup(self, stage: str) -> None:
        """Keep the balancer out of DDP's reducer (it synchronises itself)."""
        ignore_in_ddp(self, self.balancer)

    # ------------------------------------------------------------ to implement
    def task_losses(self, batch: Any) -> TaskOutput:
        """The task losses on ``batch`` (a mapping task -> scalar), or
        ``(losses, features)`` to balance a gradient method on the shared features."""
        raise NotImplementedError(f"{type(self).__name__} must implement task_losses(batch)")

    def shared_parameters(self) -> Iterable[Tensor]:
        """The shared parameters a gradient-based method balances (parameter mode)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement shared_parameters() for the gradient-based method "
            f"{self.balancer.name!r}, or return (losses, features) from task_losses"
        )

    # ------------------------------------------------------------------- steps
    def _split(self, out: TaskOutput) -> tuple[Mapping[str, Tensor], Tensor | None]:
        if isinstance(out, tuple):
            return out[0], out[1]
        return out, None

    @override
    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """Balance and (for gradient methods) step; returns the loss for automatic optimisation."""
        losses, features = self._split(self.task_losses(batch))
        if self.automatic_optimization:
            total = self.balancer(losses)
            result: Tensor | None = total
        else:
            total = self._manual_step(batch, losses, features)
            result = None
        self.log("train/loss", total.detach(), prog_bar=True)
        if self._stats:
            self.log_dict({f"balancer/{k}": v for k, v in self._stats.items()})
        return result

    def _manual_step(self, batch: Any, losses: Mapping[str, Tensor], features: Tensor | None) -> Tensor:
        opt = self.optimizers()
        assert not isinstance(opt, list), "BalancedModule drives one optimiser"
        opt.zero_grad()
        strategy = self.trainer.strategy
        marker = torch.stack([v for v in losses.values() if v is not None])
        strategy.pre_backward(marker)  # DDP's reducer: expect this step's gradients
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if features is not None:
            total = self.balancer.backward(losses, features=features, scaler=scaler)
        else:
            total = self.balancer.backward(losses, shared_params=self.shared_parameters(), scaler=scaler)
        strategy.post_backward(marker)
        opt.step()
        if self._needs_after_step:
            self._after_step(batch)
        return total

    def _after_step(self, batch: Any) -> None:
        with torch.no_grad():
            losses, _ = self._split(self.task_losses(batch))
            self.balancer.after_step(losses)

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Automatic optimisation: the method's post-step hook, after the optimiser step."""
        if self.automatic_optimization and self._needs_after_step and not self.balancer.skipped:
            self._after_step(batch)

    def on_train_epoch_end(self) -> None:
        """The method's end-of-epoch hook (DWA, STCH)."""
        self.balancer.epoch_end()

    def configure_optimizers(self) -> Any:
        """Adam on the network (``lr``) and the balancer's parameters (``balancer_lr``)."""
        own = {id(p) for p in self.balancer.parameters()}
        network = [p for p in self.parameters() if id(p) not in own and p.requires_grad]
        return torch.optim.Adam(
            [{"params": network}, *self.balancer.param_groups(lr=self.balancer_lr)], lr=self.lr
        )
