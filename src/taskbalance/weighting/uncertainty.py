r"""Homoscedastic uncertainty weighting, in its three published forms.

Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for
Scene Geometry and Semantics", CVPR 2018; Liebel & Körner, "Auxiliary Tasks in
Multi-task Learning", 2018.

Each task gets a learned noise scale σ, trained through s = log σ²:

==================  ============================================  ===================
form                term of task *i*                              optimum for fixed L
==================  ============================================  ===================
``uw`` regression   ½·e^(−s)·L + ½·s   (= 1/(2σ²)·L + log σ)       σ² = L
``uw`` classif.     e^(−s)·L + ½·s     (= 1/σ²·L + log σ)          σ² = 2L
``uw-simplified``   e^(−s)·L + s                                   s = log L
``uw-revised``      1/(2σ²)·L + log(1 + σ²)                       σ² = (L + √(L²+8L))/4
==================  ============================================  ===================

By default (``init="auto"``) each task's s starts at this optimum for its first loss,
so that σ starts on the scale of the loss whatever that scale is (1e-4 or 1e4), and
an optimiser in s (where a step changes σ² by a factor, not an amount) follows it from
there within a few dozen steps. ``init`` also takes one number, a mapping by task or a
sequence.

The regulariser is part of every term: a popular snippet splits
``loss_sum += torch.exp(-s) * loss`` and ``+ s`` over two lines, Python evaluates
the second line as a statement of its own, and every σ grows without bound.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from typing_extensions import override

from ..base import Balancer, Step, TaskSpec
from ..distributed import active_group, global_losses
from ..inputs import check_values, collect_losses, parse_tasks, stack_losses
from ..registry import register

__all__ = [
    "UncertaintyWeighting",
    "UncertaintySimplified",
    "UncertaintyRevised",
    "DynamicWeightedLoss",
    "AutomaticWeightedLoss",
    "uw_terms",
    "uw_simplified_terms",
    "uw_revised_terms",
    "uw_revised_log_terms",
    "revised_optimum",
    "LearnedScales",
]

#: s = log σ² is clamped to ±80 in the objective: e^80 ≈ 5.5e34 keeps e^(-s)·L finite in
#: float32 for any loss down to float32's subnormals, where s -> log L would overflow it
#: (the clamp's zero gradient beyond it stops the drift)
LOG_VAR_LIMIT = 80.0
#: σ² of uw-revised is clamped below at 1e-18 (the optimum σ² ≈ √(L/2) of any loss >= 2e-36
#: is above it): a loss of exactly 0 drives σ to 0, where the weight 1/(2σ²) and its
#: derivative 1/σ⁴ would overflow float32
MIN_VARIANCE = 1e-18

Init = Literal["auto"] | float | Mapping[str, float] | Sequence[float]
"""Initial parameters: ``"auto"``, one number, a mapping by task or a sequence."""

_POSITIVE_REASON = (
    "the uncertainty objective e^(-s)·L + s is unbounded below in s when L <= 0 "
    "(σ -> 0). Shift the loss to be positive, or, for losses that reach exactly 0, "
    "use 'uw-revised', whose regulariser log(1 + σ²) is >= 0. A negative log-likelihood "
    "(a heteroscedastic loss) already learns its scale: sum it with 'equal'."
)


def uw_terms(losses: Tensor, log_vars: Tensor, factor: Tensor) -> tuple[Tensor, Tensor]:
    r"""Kendall et al.'s exact terms :math:`c_i e^{-s_i} L_i + \tfrac12 s_i`.

    ``factor`` is :math:`c_i`: ½ for a regression task (Gaussian likelihood), 1 for a
    classification task (scaled softmax). Returns ``(terms, weights)`` with weights
    :math:`c_i e^{-s_i}`.

    Example:
        >>> import torch
        >>> terms, w = uw_terms(torch.tensor([2.0]), torch.zeros(1), torch.tensor([0.5]))
        >>> terms, w
        (tensor([1.]), tensor([0.5000]))
    """
    s = log_vars.clamp(-LOG_VAR_LIMIT, LOG_VAR_LIMIT)
    w = factor * torch.exp(-s)
    return torch.addcmul(0.5 * s, w, losses), w


def uw_simplified_terms(losses: Tensor, log_vars: Tensor) -> tuple[Tensor, Tensor]:
    r"""The simplified form :math:`e^{-s_i} L_i + s_i`; weights :math:`e^{-s_i}`.

    Example:
        >>> import torch
        >>> uw_simplified_terms(torch.tensor([3.0]), torch.zeros(1))[0]
        tensor([3.])
    """
    s = log_vars.clamp(-LOG_VAR_LIMIT, LOG_VAR_LIMIT)
    w = torch.exp(-s)
    return torch.addcmul(s, w, losses), w


def uw_revised_terms(losses: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    r"""Liebel & Körner's :math:`\frac{1}{2\sigma_i^2} L_i + \log(1 + \sigma_i^2)`.

    Weights :math:`1/(2\sigma_i^2)`.

    Example:
        >>> import torch
        >>> uw_revised_terms(torch.tensor([2.0]), torch.ones(1))[1]
        tensor([0.5000])
    """
    var = (sigma * sigma).clamp(min=MIN_VARIANCE)
    w = 0.5 / var
    return torch.addcmul(torch.log1p(var), w, losses), w


def uw_revised_log_terms(losses: Tensor, log_vars: Tensor) -> tuple[Tensor, Tensor]:
    r""":func:`uw_revised_terms` in s = log σ²: :math:`\tfrac12 e^{-s_i} L_i + \log(1 + e^{s_i})`.

    Example:
        >>> import torch
        >>> uw_revised_log_terms(torch.tensor([2.0]), torch.zeros(1))  # ½·2 + log 2
        (tensor([1.6931]), tensor([0.5000]))
    """
    s = log_vars.clamp(math.log(MIN_VARIANCE), LOG_VAR_LIMIT)
    w = 0.5 * torch.exp(-s)
    return torch.addcmul(torch.nn.functional.softplus(s), w, losses), w


def revised_optimum(loss: float) -> float:
    """uw-revised's optimal σ² for a fixed loss: (L + √(L² + 8L)) / 4."""
    return (loss + math.sqrt(loss * loss + 8 * loss)) / 4


class LearnedScales(Balancer):
    """A method with one learned log-scale per task (``log_vars`` or ``log_scales``),
    initialised from each task's first loss at the closed-form optimum (``init="auto"``)
    or as given. Subclasses give :meth:`_optimum` and the parameter."""

    _auto: bool
    _initialized: list[bool]

    def _init_values(self, init: Any, convert: Any = None) -> list[float]:
        """Per-task initial parameters from ``init`` ("auto": 0 until the first step)."""
        self._auto = isinstance(init, str)
        if self._auto and init != "auto":
            raise ValueError(
                f"{self.name}: init must be 'auto', a number, a mapping or a sequence, got {init!r}"
            )
        self.add_state("_initialized", [not self._auto] * self.num_tasks)
        if self._auto:
            return [0.0] * self.num_tasks
        values = self._per_task(init, "init")
        return [convert(v) for v in values] if convert is not None else values

    def _param(self) -> nn.Parameter:
        raise NotImplementedError

    def _optimum(self, loss: float, task: int) -> float:
        """The parameter's optimum for a fixed ``loss`` of task ``task``."""
        raise NotImplementedError

    #: every this many training steps, check that the parameters move
    STALL_CHECK = 100
    _steps_seen = 0
    _stall_snapshot: Tensor | None = None
    _stall_warned = False

    def _check_moving(self) -> None:
        """Warn once if the parameters had gradients but did not change over the last
        :attr:`STALL_CHECK` steps: they are probably in no optimiser (σ stays put).
        One host read every :attr:`STALL_CHECK` steps; skipped under torch.compile."""
        if self._stall_warned or torch.compiler.is_compiling():
            return
        self._steps_seen += 1
        if self._steps_seen % self.STALL_CHECK:
            return
        param = self._param()
        snapshot, self._stall_snapshot = self._stall_snapshot, param.detach().clone()
        if snapshot is not None and param.grad is not None and torch.equal(snapshot, param.detach()):
            self._stall_warned = True
            warnings.warn(
                f"{self.name}: its parameters received gradients for {self.STALL_CHECK} steps without "
                "changing: are they in the optimiser? Add *balancer.param_groups(lr=0.1, betas=(0.9, "
                "0.99)) to its parameter groups",
                RuntimeWarning,
                stacklevel=4,
            )

    def _start(self, losses: Tensor, step: Step) -> None:
        """Set the parameter of each task seen for the first time to its optimum."""
        if step.updating:
            self._check_moving()
        if all(self._initialized) or not step.updating:
            return
        positions = [self._position[n] for n in step.names]
        new = [(j, v) for j, v in zip(positions, losses.detach().tolist()) if not self._initialized[j]]
        if not new:
            return
        param = self._param()
        with torch.no_grad():
            for j, v in new:
                if math.isfinite(v) and v >= 0:
                    opt = self._optimum(v, j)
                    param[j] = min(max(opt, -LOG_VAR_LIMIT), LOG_VAR_LIMIT)
                self._initialized[j] = True

    def set_extra_state(self, state: Any) -> None:
        """:meth:`Balancer.set_extra_state`; a checkpoint written before ``init="auto"``
        existed is of trained parameters: every task counts as initialised."""
        method = {"initialized": [True] * self.num_tasks, **state["method"]}
        super().set_extra_state({**state, "method": method})


class _LogVariances(LearnedScales):
    """A :class:`LearnedScales` whose parameters are log-variances s = log σ²."""

    log_vars: nn.Parameter

    @property
    def sigma(self) -> dict[str, Tensor]:
        """Learned σ by task (detached)."""
        return dict(zip(self.task_names, torch.exp(0.5 * self.log_vars.detach()).unbind()))

    def _stats(self) -> dict[str, Tensor]:
        return {f"sigma/{n}": v for n, v in self.sigma.items()}


@register("uw", "uncertainty", "kendall")
class UncertaintyWeighting(_LogVariances):
    r"""Uncertainty weighting, exactly as in Kendall, Gal & Cipolla (CVPR 2018).

    .. math::
        \mathcal{L} = \sum_{i \in \text{reg}} \left(\tfrac12 e^{-s_i} L_i + \tfrac12 s_i\right)
                    + \sum_{i \in \text{cls}} \left(e^{-s_i} L_i + \tfrac12 s_i\right),
        \qquad s_i = \log \sigma_i^2 .

    For fixed losses the optimum is σ² = L for a regression task (L the mean squared
    error, σ² the noise variance) and σ² = 2L for a classification task. The task
    type comes from the task declaration (regression by default).

    Args:
        tasks: ``{"name": "regression" | "classification"}`` or names (all regression).
        init: ``"auto"`` (default): each task's s starts at its optimum for the task's
            first loss (σ² = L, or 2L for classification); or the initial s = log σ²
            (one number, a mapping by task or a sequence; 0 is σ = 1).

    Learnable parameter ``log_vars`` (s per task); give it its own optimiser group with
    :meth:`param_groups` (weight decay 0). Losses must be > 0: for L <= 0 the objective
    is unbounded below.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("uw", tasks={"depth": "regression", "seg": "classification"}, init=0.0)
        >>> x = torch.tensor([2.0, 4.0], requires_grad=True)
        >>> b({"depth": x[0], "seg": x[1]})  # ½·2 + 1·4
        tensor(5., grad_fn=<SumBackward0>)
        >>> [float(w) for w in b.weights.values()]
        [0.5, 1.0]
        >>> auto = tb.create("uw", tasks={"depth": "regression", "seg": "classification"})
        >>> _ = auto({"depth": x[0], "seg": x[1]})  # starts at σ² = L and 2L
        >>> [round(float(v) ** 2, 4) for v in auto.sigma.values()]
        [2.0, 8.0]
    """

    factor: Tensor
    sign_rule = "positive"
    sign_reason = _POSITIVE_REASON

    def __init__(self, tasks: TaskSpec, init: Init = "auto", **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.log_vars = nn.Parameter(torch.tensor(self._init_values(init)))
        factor = [0.5 if t == "regression" else 1.0 for t in self.task_types]
        self.add_state("factor", torch.tensor(factor))

    def _param(self) -> nn.Parameter:
        return self.log_vars

    def _optimum(self, loss: float, task: int) -> float:
        return math.log(max(2 * float(self.factor[task]) * loss, MIN_VARIANCE))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        self._start(losses, step)
        terms, w = uw_terms(losses, step.take(self.log_vars), step.get("factor"))
        return terms.sum(), w


@register("uw-simplified", "uncertainty-simplified")
class UncertaintySimplified(_LogVariances):
    r"""The common code form of uncertainty weighting: :math:`\sum_i e^{-s_i} L_i + s_i`.

    Same for every task type; at the optimum s = log L (σ² = L), twice the weight of
    the paper's regression form. Widely copied, usually with the regulariser as a
    separate statement that Python discards; here it is one expression.

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        init: ``"auto"`` (default: s = log L of the first loss) or the initial s.

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("uw-simplified", tasks=2, init=0.0)
        >>> x = torch.tensor([2.0, 4.0], requires_grad=True)
        >>> b([x[0], x[1]])
        tensor(6., grad_fn=<SumBackward0>)
    """

    sign_rule = "positive"
    sign_reason = _POSITIVE_REASON

    def __init__(self, tasks: TaskSpec, init: Init = "auto", **kw: Any) -> None:
        super().__init__(tasks, **kw)
        self.log_vars = nn.Parameter(torch.tensor(self._init_values(init)))

    def _param(self) -> nn.Parameter:
        return self.log_vars

    @override
    def _optimum(self, loss: float, task: int) -> float:
        return math.log(max(loss, MIN_VARIANCE))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        self._start(losses, step)
        terms, w = uw_simplified_terms(losses, step.take(self.log_vars))
        return terms.sum(), w


@register("uw-revised", "liebel", "revised-uncertainty")
class UncertaintyRevised(_LogVariances):
    r"""Liebel & Körner's revised uncertainty weighting (2018).

    .. math::
        \mathcal{L} = \sum_i \frac{1}{2\sigma_i^2} L_i + \log(1 + \sigma_i^2)

    The regulariser is >= 0, so the objective is >= 0 whenever the losses are, and it
    stays bounded for a loss that reaches exactly 0 (σ -> 0, where the plain log σ
    would go to -inf). For fixed L the optimum is σ² = (L + √(L² + 8L)) / 4, i.e. a
    weight 1/(2σ²) ≈ 1/(L + 2) for large L and ≈ 1/√(2L) for small L: it does *not*
    recover the noise variance, and it caps the up-weighting of near-zero losses.

    Learned as s = log σ² (``log_vars``), like the other forms: an optimiser step then
    changes σ² by a factor, so σ follows a loss of any scale at the same pace (σ itself,
    the paper code's parameter, moves by fixed amounts: slow at σ = 70, unstable at
    σ = 0.08). A checkpoint with the former ``sigma_param`` loads (converted).

    Args:
        tasks: see :class:`~taskbalance.Balancer`.
        init: ``"auto"`` (default: σ² at its optimum for the first loss), or the initial
            σ (one number, a mapping or a sequence; the paper's code uses 1).

    Example:
        >>> import torch, taskbalance as tb
        >>> b = tb.create("uw-revised", tasks=1, init=1.0)
        >>> b([torch.tensor(2.0, requires_grad=True)])  # ½·2 + log 2
        tensor(1.6931, grad_fn=<SumBackward0>)
    """

    sign_rule = "nonnegative"
    sign_reason = (
        "the revised objective L/(2σ²) + log(1 + σ²) is unbounded below as σ -> 0 when "
        "L < 0; shift the loss to be non-negative."
    )

    def __init__(self, tasks: TaskSpec, init: Init = "auto", **kw: Any) -> None:
        super().__init__(tasks, **kw)

        def from_sigma(sigma: float) -> float:
            if sigma == 0:
                raise ValueError("uw-revised: init (σ) must be non-zero: the weight 1/(2σ²) is infinite at 0")
            return math.log(sigma * sigma)

        self.log_vars = nn.Parameter(torch.tensor(self._init_values(init, from_sigma)))

    def _param(self) -> nn.Parameter:
        return self.log_vars

    @override
    def _optimum(self, loss: float, task: int) -> float:
        return math.log(max(revised_optimum(loss), MIN_VARIANCE))

    def _combine(self, losses: Tensor, step: Step) -> tuple[Tensor, Tensor]:
        self._start(losses, step)
        terms, w = uw_revised_log_terms(losses, step.take(self.log_vars))
        return terms.sum(), w

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kw: Any) -> None:
        old = state_dict.pop(prefix + "sigma_param", None)  # written before log_vars: σ itself
        if old is not None and prefix + "log_vars" not in state_dict:
            state_dict[prefix + "log_vars"] = torch.log((old * old).clamp(min=MIN_VARIANCE))
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)


Form = Literal["simplified", "uw", "revised"]


class DynamicWeightedLoss(nn.Module):
    r"""Drop-in replacement for the widely copied ``DynamicWeightedLoss`` snippet.

    Same constructor and call as the snippet (``DynamicWeightedLoss(num=2)``,
    ``loss = criterion(loss1, loss2)``) and the same parameter name ``params``, so its
    checkpoints load, but the chosen form is computed as one expression, regulariser
    included, and the losses are validated like every balancer's. The state dict also
    records the form, so a checkpoint whose ``params`` are σ (``form="revised"``, the
    snippet's ``AutomaticWeightedLoss``) loaded where log-variances are expected, or the
    reverse, is converted to the same σ per task with a warning. The snippet's own
    checkpoints hold ``params`` alone, which cannot say what they mean: they load as
    they are, so load them into the class that wrote them.

    Args:
        num: number of losses.
        form: ``"simplified"`` (default): :math:`\sum e^{-p_i} L_i + p_i`, ``params``
            are log-variances initialised to 0; ``"uw"``: Kendall et al.'s exact form
            with ``task_types``; ``"revised"``: Liebel & Körner's
            :math:`\sum L_i/(2p_i^2) + \log(1 + p_i^2)`, ``params`` are σ initialised
            to 1 (the snippet's ``AutomaticWeightedLoss``).
        task_types: for ``form="uw"``, ``"regression"`` or ``"classification"`` per
            loss (default: all regression).

    Example:
        >>> import torch
        >>> from taskbalance import DynamicWeightedLoss
        >>> criterion = DynamicWeightedLoss(num=2)
        >>> a = torch.tensor(1.0, requires_grad=True)
        >>> loss = criterion(a * 2, a * 3)
        >>> loss.backward()
        >>> criterion.params.grad  # regulariser present: d/dp (e^-p L + p) = 1 - L
        tensor([-1., -2.])
    """

    _factor: Tensor

    def __init__(
        self,
        num: int | None = None,
        form: Form = "simplified",
        task_types: list[str] | tuple[str, ...] | None = None,
        *,
        num_losses: int | None = None,
        num_tasks: int | None = None,
    ) -> None:
        super().__init__()
        given = [n for n in (num, num_losses, num_tasks) if n is not None]
        if len(given) > 1:
            raise TypeError(
                f"{type(self).__name__}: give the number of losses once (num=, num_losses= or num_tasks=)"
            )
        num = given[0] if given else 2
        if form not in ("simplified", "uw", "revised"):
            raise ValueError(f"form must be 'simplified', 'uw' or 'revised', got {form!r}")
        names, _ = parse_tasks(num)
        types = tuple(task_types) if task_types is not None else ("regression",) * num
        if len(types) != num:
            raise ValueError(f"got {len(types)} task_types for num={num}")
        self.form = form
        cls = {
            "simplified": UncertaintySimplified,
            "uw": UncertaintyWeighting,
            "revised": UncertaintyRevised,
        }[form]
        # the same checks as the balancer of the form; the state dict holds only
        # ``params``, like the snippet's
        self._rule, self._reason = cls.sign_rule, cls.sign_reason
        self.register_buffer(
            "_factor",
            torch.tensor([0.5 if t == "regression" else 1.0 for t in types]),
            persistent=False,
        )
        # the snippet's parameters: log-variances at 0, or σ at 1 for the revised form
        self.params = nn.Parameter(torch.full((num,), 1.0 if form == "revised" else 0.0))
        self._names = names
        self._weights = torch.empty(0)

    def forward(self, *losses: Tensor) -> Tensor:
        """Total loss of ``losses`` (scalar tensors, in order; a single list works too)."""
        if len(losses) == 1 and isinstance(losses[0], (list, tuple)):
            losses = tuple(losses[0])
        owner = type(self).__name__
        names, tensors = collect_losses(owner, self._names, list(losses))
        values = stack_losses(tensors)  # as every balancer's
        idx: Tensor | slice = slice(None)
        if len(names) < len(self._names):
            idx = torch.tensor([self._names.index(n) for n in names], device=values.device)
        group = active_group(None) if torch.is_grad_enabled() else None
        if group is not None:  # the global batch's losses, as every balancer under DDP
            values = global_losses(values, idx, self._names, group)
        check_values(owner, names, values.detach(), rule=self._rule, reason=self._reason)
        p = self.params if isinstance(idx, slice) else self.params[idx]
        if self.form == "simplified":
            terms, w = uw_simplified_terms(values, p)
        elif self.form == "revised":
            terms, w = uw_revised_terms(values, p)
        else:
            factor = self._factor if isinstance(idx, slice) else self._factor[idx]
            terms, w = uw_terms(values, p, factor)
        self._weights = w.detach()
        return terms.sum()

    @property
    def weights(self) -> dict[str, Tensor]:
        """Weights used in the last call, by task ``"0"``, ``"1"``, ... (detached), as
        every balancer's :attr:`~taskbalance.Balancer.weights`."""
        return dict(zip(self._names, self._weights.unbind()))

    @property
    def sigma(self) -> dict[str, Tensor]:
        """Learned σ by task (detached): ``exp(p/2)``, or ``|p|`` for the revised form."""
        p = self.params.detach()
        return dict(zip(self._names, (p.abs() if self.form == "revised" else torch.exp(0.5 * p)).unbind()))

    def param_groups(self, lr: float = 1e-2, **options: Any) -> list[dict[str, Any]]:
        """One optimiser group for ``params``, weight decay 0 (as every balancer's)."""
        return [{"params": [self.params], "lr": lr, **options, "weight_decay": 0.0}]

    def get_extra_state(self) -> dict[str, str]:
        """The form, saved beside ``params`` so that a checkpoint says what they mean."""
        return {"form": self.form}

    def set_extra_state(self, state: Any) -> None:
        """Nothing to set: :meth:`_load_from_state_dict` reads the form and converts."""

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key, name = prefix + "_extra_state", prefix + "params"
        saved = state_dict.get(key)
        if saved is None:
            # the snippet's own checkpoints hold ``params`` alone: nothing says whether
            # they are σ or log-variances, so they load as they are (as into the snippet)
            state_dict[key] = self.get_extra_state()
        elif isinstance(saved, dict) and saved.get("form") != self.form and name in state_dict:
            old = str(saved.get("form"))
            p = state_dict[name]
            if old == "revised":  # σ -> log σ²
                state_dict[name] = torch.log((p * p).clamp(min=MIN_VARIANCE))
            elif self.form == "revised":  # log σ² -> σ
                state_dict[name] = torch.exp(0.5 * p)
            if (old == "revised") != (self.form == "revised"):
                meaning = "σ" if old == "revised" else "log-variances log σ²"
                warnings.warn(
                    f"{type(self).__name__}: this checkpoint was saved with form={old!r}, whose params are "
                    f"{meaning}; converted to what form={self.form!r} expects (the same σ per task)",
                    stacklevel=3,
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class AutomaticWeightedLoss(DynamicWeightedLoss):
    r"""The snippet's ``AutomaticWeightedLoss``: :class:`DynamicWeightedLoss` in the
    revised form, :math:`\sum_i \frac{1}{2p_i^2} L_i + \log(1 + p_i^2)`, ``params``
    (σ) initialised to 1, and the constructor keywords copies use (``num``,
    ``num_losses``, ``num_tasks``).

    Example:
        >>> import torch
        >>> from taskbalance import AutomaticWeightedLoss
        >>> awl = AutomaticWeightedLoss(num_tasks=2)
        >>> awl(torch.tensor(2.0, requires_grad=True), torch.tensor(4.0, requires_grad=True))
        tensor(4.3863, grad_fn=<SumBackward0>)
    """

    def __init__(
        self, num: int | None = None, *, num_losses: int | None = None, num_tasks: int | None = None
    ) -> None:
        super().__init__(num, form="revised", num_losses=num_losses, num_tasks=num_tasks)
