"""Preference scalarisations: COSMOS (Ruchte & Grabocka, "Scalable Pareto Front
Approximation for Deep Multi-Objective Learning", ICDM 2021) and PBI (Zhang & Li,
"MOEA/D: A Multiobjective Evolutionary Algorithm Based on Decomposition", IEEE TEVC 2007)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from ..base import Balancer, Step, TaskSpec
from ..registry import register

__all__ = ["COSMOS", "PBI"]

Preference = Mapping[str, float] | Sequence[float] | None
_EPS = 1e-8  # torch.nn.functional.cosine_similarity's


class _PreferenceBalancer(Balancer):
    preference: Tensor

    def _set_preference(self, preference: Preference) -> None:
        pref = self._per_task(preference, "preference", default=1.0 / self.num_tasks)
        if any(p < 0 for p in pref) or sum(pref) <= 0:
            raise ValueError(f"{self.name}: preference must be >= 0 with a positive sum, got {pref}")
        self.add_state("preference", torch.tensor(pref, dtype=torch.float64))


@register("cosmos")
class COSMOS(_PreferenceBalancer):
    r"""COSMOS: a linear scalarisation with a preference, minus a cosine-similarity bonus
    for losses aligned with the preference.

    .. math::
        \mathcal L = \sum_i r_i L_i - \lambda \cos(r, L),
        \qquad w_i = r_i - \lambda\,\frac{\partial \cos(r, L)}{\partial L_i},

    with :math:`\cos` defined as ``torch.nn.functional.cosine_similarity`` (the authors'
    code and TorchJD's ``COSMOS`` scalarizer use it): each norm clamped at 1e-8. The
    preference r is the ray the model is trained for; the paper also feeds r to the
    network and samples it from a Dirichlet distribution at every step to learn the whole
    Pareto front, which is left to the user (set :attr:`preference`). The tasks present
    in a step use their entries of r.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        lambda_: the cosine penalty λ ≥ 0 (default 1; the paper uses 0.01 to 8 depending
            on the data set, TorchJD has no default).
        preference: r per task, ≥ 0 (mapping or sequence; default uniform, 1/K each).

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("cosmos", tasks=2, lambda_=1.0, preference=[0.5, 0.5])
        >>> x = torch.tensor([1.0, 1.0], requires_grad=True)
        >>> abs(round(float(b(list(x.unbind()))), 6))  # 0.5 + 0.5 - cos = 0: the losses lie on the ray
        0.0
        >>> round(float(b.weights["0"]), 6)  # the cosine is at its maximum: the weights are r
        0.5
    """

    def __init__(
        self, tasks: TaskSpec, lambda_: float = 1.0, preference: Preference = None, **kw: Any
    ) -> None:
        super().__init__(tasks, **kw)
        self.lambda_ = self._number("lambda_", lambda_, low=0)
        self._set_preference(preference)

    @override
    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        r = step.get("preference").to(losses.dtype)
        # cosine_similarity's definition: each norm clamped at 1e-8
        nr = r.norm().clamp(min=_EPS)
        norm = losses.detach().norm()
        nl = norm.clamp(min=_EPS)
        cos = (r @ losses) / (nr * losses.norm().clamp(min=_EPS))
        total = (r * losses).sum() - self.lambda_ * cos
        grad_cos = r / (nr * nl) - torch.where(norm > _EPS, cos.detach() / (nl * nl), 0.0) * losses.detach()
        return total, r - self.lambda_ * grad_cos

    def extra_repr(self) -> str:
        return f"tasks={list(self.task_names)}, lambda_={self.lambda_}, preference={self.preference.tolist()}"


@register("pbi")
class PBI(_PreferenceBalancer):
    r"""Penalty-based boundary intersection: the distance along a preference ray plus θ
    times the distance to it.

    .. math::
        d_1 = (L - z)^\top \hat w,\qquad
        d_2 = \sqrt{\|(L - z) - d_1 \hat w\|^2 + 10^{-12}},\qquad
        \mathcal L = d_1 + \theta\, d_2,

    with :math:`\hat w = w/\|w\|` over the tasks present and the reference point z (default
    the origin, for non-negative losses). The weights are
    :math:`\hat w + \theta\,p / d_2` with p the component of L - z perpendicular to the
    ray: they may be negative (a task above the ray is pushed down, one below it up).
    The :math:`10^{-12}` is TorchJD's, so that the gradient is finite on the ray.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        theta: the penalty θ ≥ 0 on the distance to the ray (default 5, the paper's).
        preference: the ray w per task, ≥ 0 (default uniform).
        reference: the reference (ideal) point z per task (default 0).

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("pbi", tasks=2, theta=5.0)
        >>> x = torch.tensor([3.0, 1.0], requires_grad=True)
        >>> round(float(b(list(x.unbind()))), 4)  # d1 = 4/√2, d2 = 2/√2 (up to 1e-12)
        9.8995
        >>> [round(float(v), 4) for v in b.weights.values()]  # ŵ + θ (1, -1)/√2
        [4.2426, -2.8284]
    """

    reference: Tensor

    def __init__(
        self,
        tasks: TaskSpec,
        theta: float = 5.0,
        preference: Preference = None,
        reference: Mapping[str, float] | Sequence[float] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(tasks, **kw)
        self.theta = self._number("theta", theta, low=0)
        self._set_preference(preference)
        self.add_state(
            "reference",
            torch.tensor(self._per_task(reference, "reference", default=0.0), dtype=torch.float64),
        )

    @override
    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        w = step.get("preference").to(losses.dtype)
        direction = w / w.norm()
        shifted = losses - step.get("reference").to(losses.dtype)
        d1 = shifted @ direction
        perpendicular = shifted - d1 * direction
        d2 = torch.sqrt(perpendicular @ perpendicular + 1e-12)
        # ∂‖p‖²/∂L = 2p (p is L - z projected off the ray): w = ŵ + θ p / d2
        weights = direction + self.theta * perpendicular.detach() / d2.detach()
        return d1 + self.theta * d2, weights

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.task_names)}, theta={self.theta}, preference={self.preference.tolist()}, "
            f"reference={self.reference.tolist()}"
        )
