"""Fixed weights: equal weighting (the plain sum or mean) and user-given static weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Balancer, Step, TaskSpec
from ..registry import register

__all__ = ["Equal", "Static"]


@register("equal", "sum", "mean", "ew")
class Equal(Balancer):
    r"""Equal weighting: :math:`\mathcal{L} = \sum_i L_i` (or the mean).

    The baseline every other method must beat; with a tuned learning rate it is often
    as good as any (Xin et al., "Do Current Multi-Task Optimization Methods in Deep
    Learning Even Help?", NeurIPS 2022).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        reduction: ``"sum"`` (weights 1) or ``"mean"`` (weights 1/K over the K tasks
            present).

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("equal", tasks=2, reduction="mean")
        >>> x = torch.tensor([2.0, 4.0], requires_grad=True)
        >>> b([x[0], x[1]])
        tensor(3., grad_fn=<MeanBackward0>)
    """

    def __init__(self, tasks: TaskSpec, reduction: Literal["sum", "mean"] = "sum", **kw: Any) -> None:
        super().__init__(tasks, **kw)
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction = reduction

    @override
    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        if self.reduction == "mean":
            return losses.mean(), torch.full_like(losses, 1.0 / losses.numel())
        return losses.sum(), torch.ones_like(losses)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reduction={self.reduction!r}"


@register("static", "fixed", "manual")
class Static(Balancer):
    r"""Static weights chosen by the user: :math:`\mathcal{L} = \sum_i w_i L_i`.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        weights: one non-negative finite weight per task, as a mapping by task name, a
            sequence in declared order, or one number for all. A task missing from a
            mapping is an error.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("static", tasks=["a", "b"], weights={"a": 1.0, "b": 0.5})
        >>> x = torch.tensor([2.0, 4.0], requires_grad=True)
        >>> b({"a": x[0], "b": x[1]})
        tensor(4., grad_fn=<SumBackward0>)
    """

    static_weights: Tensor
    #: the weights are required: 1 for every task (any number of tasks), equal weighting
    bench_kwargs: ClassVar[Mapping[str, Any]] = {"weights": 1.0}

    def __init__(
        self, tasks: TaskSpec, weights: Mapping[str, float] | Sequence[float] | float, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        values = self._per_task(weights, "static weights")
        for n, w in zip(self.task_names, values):
            if not (w >= 0 and w != float("inf")):
                raise ValueError(f"static weight of task {n!r} must be finite and >= 0, got {w}")
        self.add_state("static_weights", torch.tensor(values))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        w = step.get("static_weights").to(losses.dtype)
        return (w * losses).sum(), w
