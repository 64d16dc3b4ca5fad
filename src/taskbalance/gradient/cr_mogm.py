"""CR-MOGM (Zhou et al., "On the Convergence of Stochastic Multi-Objective Gradient
Manipulation and Beyond", NeurIPS 2022; TorchJD's ``CRMOGMWeighting``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Step, TaskSpec
from ..distributed import broadcast_seed
from ..registry import create, get_method, register
from .core import GradientBalancer, GramianBalancer

__all__ = ["CRMOGM"]


@register("cr-mogm", "crmogm")
class CRMOGM(GramianBalancer):
    r"""CR-MOGM: another Gramian method's weights, smoothed by a moving average.

    With :math:`\hat\lambda_k` the weights of the wrapped method ``base`` at step k:

    .. math::
        \lambda_k = \alpha\,\lambda_{k-1} + (1 - \alpha)\,\hat\lambda_k,
        \qquad d_k = \sum_i \lambda_{k,i}\, g_i ,

    with :math:`\lambda_0` = ``initial_weights``, or :math:`\hat\lambda_1` when not given
    (the first step is then the base method's). α = 0 is the base method; α = 1 freezes
    the weights at :math:`\lambda_0`. The moving average is the weight-smoothing
    modifier of Zhou et al. (2022), which makes stochastic MGDA-like methods converge
    without growing batches. Same definition and defaults as TorchJD's
    ``CRMOGMWeighting`` (α = 0.9); the paper's Corollary 1 suggests raising α towards 1
    as the learning rate decays: assign ``balancer.alpha`` between steps.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        base: the registered name of the wrapped method, one whose weights come from the
            Gramian alone (``mgda``, ``upgrad``, ``dualproj``, ``pcd``, ``cagrad``, ...).
        alpha: α ∈ [0, 1], the weight of the previous weights (default 0.9).
        initial_weights: :math:`\lambda_0` (mapping or sequence), or ``None``.
        base_kwargs: the wrapped method's own hyper-parameters.

    State: the smoothed weights ``smoothed`` and the flags ``started`` (per task: a task
    absent so far starts from its first :math:`\hat\lambda`), and the wrapped method's
    own state under ``base.``.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("cr-mogm", tasks=2, base="mgda", alpha=0.5)
        >>> _ = b.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # MGDA: (0.5, 0.5)
        >>> _, w = b.aggregate(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))  # MGDA: (0.9, 0.1)
        >>> [round(float(x), 2) for x in w]
        [0.7, 0.3]
    """

    smoothed: Tensor
    started: Tensor

    def __init__(
        self,
        tasks: TaskSpec,
        base: str = "upgrad",
        alpha: float = 0.9,
        initial_weights: Mapping[str, float] | Sequence[float] | None = None,
        base_kwargs: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        cls = get_method(base)
        if not issubclass(cls, GramianBalancer) or cls._objectives is not GradientBalancer._objectives:
            raise ValueError(
                f"cr-mogm: base must be a method whose weights come from the Gramian alone "
                f"(mgda, upgrad, dualproj, pcd, cagrad, ...), got {base!r}"
            )
        self.alpha = self._number("alpha", alpha, low=0, high=1)
        extra = dict(base_kwargs or {})
        common = {"check": self.check, "on_nonfinite": self.on_nonfinite}
        spec = dict(zip(self.task_names, self.task_types))
        try:
            self.base = create(cls.name, spec, **{**common, **extra})
        except TypeError as exc:  # an unknown option: say it is one of the wrapped method's
            raise TypeError(f"cr-mogm: base_kwargs of {cls.name!r}: {exc}") from None
        assert isinstance(self.base, GramianBalancer)
        self.base_name = cls.name
        self.base_kwargs = extra
        self.sign_rule = self.base.sign_rule
        self.sign_reason = self.base.sign_reason
        started = initial_weights is not None
        init = self._per_task(initial_weights, "initial_weights", default=0.0)
        self.add_state("smoothed", torch.tensor(init, dtype=torch.float64))
        self.add_state("started", torch.full((self.num_tasks,), started))

    @override
    def _validate_values(self, names: Sequence[str], values: Tensor) -> bool:
        return self.base._validate_values(names, values)

    @override
    def _global_values(self, values: Tensor, idx: Tensor | slice) -> Tensor:
        out = super()._global_values(values, idx)
        group = self._group()
        if group is not None and not self.base._seed_synced:  # the wrapped method's random streams
            for gen in self.base._generators.values():
                seed = broadcast_seed(gen.seed, group)
                if seed != gen.seed:
                    gen.seed, gen._gen = seed, None
            self.base._seed_synced = True
        return out

    @override
    def _weights(self, gramian: Tensor, losses: Tensor, step: Step) -> Tensor:
        inner = Step(
            self.base, step.names, step.idx, step.updating, step.mode, step.grad_scale, step.jac_dtype
        )
        assert isinstance(self.base, GramianBalancer)
        hat = self.base._weights(gramian, losses, inner).to(torch.float64)
        previous = torch.where(step.get("started"), step.get("smoothed").to(hat), hat)
        smoothed = self.alpha * previous + (1.0 - self.alpha) * hat
        step.set("smoothed", smoothed)
        step.set("started", torch.ones_like(step.get("started")))
        return smoothed.to(gramian.dtype)

    @override
    def epoch_end(self) -> None:
        self.base.epoch_end()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, base={self.base_name!r}, alpha={self.alpha}"
