r"""Heteroscedastic (data-dependent) uncertainty losses (Kendall & Gal, NeurIPS 2017).

Homoscedastic uncertainty weighting (``uw``) learns one noise scale σ per *task*.
Heteroscedastic uncertainty lets the network predict a noise scale per *sample* (or per
pixel, or per output) beside its prediction, as a log-variance :math:`s(x) = \log
\sigma^2(x)`, and trains both with the likelihood:

* regression, a Gaussian likelihood per element:
  :math:`\tfrac12 e^{-s(x)}\,(y - f(x))^2 + \tfrac12 s(x)`;
* classification, Gaussian noise on the logits, integrated by Monte Carlo:
  :math:`\hat x_t = f(x) + \sigma(x)\,\epsilon_t`, :math:`\epsilon_t \sim N(0, I)`,
  :math:`-\log \tfrac1T \sum_t \operatorname{softmax}(\hat x_t)_c`.

Samples the model cannot fit get a large σ(x) and so a small weight, and the
½ s(x) term stops σ from growing without bound. :class:`HeteroscedasticHead` adds the
log-variance output to any task head. The losses are computed in float32 at least
(stable with bfloat16 and float16 inputs), ``s`` is clamped to ±40 so that
:math:`e^{-s}` stays finite, and wrong shapes or non-finite values raise an
:class:`~taskbalance.InvalidLossError` that names the task and the argument.

See the guide page "Per-sample uncertainty" for when to use which, and how they combine
with a balancer.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from .inputs import InvalidLossError

__all__ = ["heteroscedastic_regression", "heteroscedastic_classification", "HeteroscedasticHead"]

#: log-variances are clamped to ±LOG_VAR_LIMIT (σ from 2e-9 to 5e8): e^(-s)·(y - f)² stays
#: finite in float32 for residuals up to 1e10
LOG_VAR_LIMIT = 40.0

Reduction = Literal["mean", "sum", "none"]


def _where(task: str | None, fn: str) -> str:
    return f"{fn} (task {task!r})" if task is not None else fn


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    dtype = torch.promote_types(tensors[0].dtype, tensors[-1].dtype)
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _reduce(values: Tensor, reduction: Reduction, where: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"{where}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_log_var(log_var: Tensor, shape: torch.Size, where: str, hint: str) -> None:
    if not isinstance(log_var, Tensor) or not log_var.is_floating_point():
        raise InvalidLossError(
            f"{where}: log_var must be a floating-point tensor, got {type(log_var).__name__}"
        )
    ok = log_var.ndim == len(shape) and all(a in (1, b) for a, b in zip(log_var.shape, shape))
    if not ok:
        raise InvalidLossError(
            f"{where}: log_var has shape {tuple(log_var.shape)}, which does not broadcast to "
            f"{tuple(shape)}; {hint}"
        )


def _check_finite(where: str, **tensors: Tensor) -> None:
    for name, t in tensors.items():
        if not bool(torch.isfinite(t.detach()).all()):
            raise InvalidLossError(f"{where}: {name} has NaN or infinite entries")


def heteroscedastic_regression(
    pred: Tensor,
    target: Tensor,
    log_var: Tensor,
    *,
    reduction: Reduction = "mean",
    check: bool = True,
    task: str | None = None,
) -> Tensor:
    r"""Gaussian negative log-likelihood with a predicted log-variance per element:

    .. math:: \ell = \tfrac12 e^{-s}\,(y - f)^2 + \tfrac12 s ,

    (Kendall & Gal, "What Uncertainties Do We Need in Bayesian Deep Learning for
    Computer Vision?", NeurIPS 2017, eq. 8), up to the constant ½ log 2π, averaged over
    the elements with ``reduction="mean"``. ``log_var`` = s = log σ² has the shape of
    ``pred`` (one variance per output, or per pixel) or broadcasts to it: ``(B, 1)``
    gives one variance per sample, shared by its outputs.

    Args:
        pred: the prediction f(x), shape (B, ...).
        target: y, the shape of ``pred``.
        log_var: s(x), the same number of dimensions as ``pred``, broadcastable to it.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per element).
        check: refuse NaN or infinite inputs (one host synchronisation).
        task: the task's name, for error messages.

    Example:
        >>> import torch
        >>> pred, target = torch.zeros(2, 1), torch.tensor([[1.0], [3.0]])
        >>> log_var = torch.log(torch.tensor([[1.0], [9.0]]))  # σ = 1 and 3
        >>> round(float(heteroscedastic_regression(pred, target, log_var)), 4)  # ½(1 + 0) and ½(1 + log 9)
        1.0493
    """
    where = _where(task, "heteroscedastic_regression")
    if pred.shape != target.shape:
        raise InvalidLossError(
            f"{where}: pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}; "
            "they must match"
        )
    _check_log_var(log_var, pred.shape, where, "give one log-variance per element, or (B, 1) per sample")
    if check:
        _check_finite(where, pred=pred, target=target, log_var=log_var)
    dtype = _compute_dtype(pred, log_var)
    s = log_var.to(dtype).clamp(-LOG_VAR_LIMIT, LOG_VAR_LIMIT)
    sq = (target.to(dtype) - pred.to(dtype)).square()
    return _reduce(0.5 * torch.exp(-s) * sq + 0.5 * s, reduction, where)


def heteroscedastic_classification(
    logits: Tensor,
    target: Tensor,
    log_var: Tensor,
    *,
    samples: int = 100,
    reduction: Reduction = "mean",
    generator: torch.Generator | None = None,
    check: bool = True,
    task: str | None = None,
) -> Tensor:
    r"""Cross-entropy of logits corrupted by predicted Gaussian noise, by Monte Carlo:

    .. math::
        \hat x_t = f + \sigma \epsilon_t,\ \epsilon_t \sim N(0, I),\qquad
        \ell = -\log \frac1T \sum_{t=1}^T \operatorname{softmax}(\hat x_t)_c ,

    with σ = exp(s/2) (Kendall & Gal, NeurIPS 2017, eq. 12), computed stably as
    :math:`\log T - \operatorname{logsumexp}_t \log\operatorname{softmax}(\hat x_t)_c`.
    The noise is reparameterised, so σ gets a gradient. With σ → 0 it is the
    cross-entropy.

    Args:
        logits: f(x), shape (B, C).
        target: class indices, shape (B,).
        log_var: s(x) = log σ², shape (B, 1) (one σ per sample) or (B, C) (per class).
        samples: T, the Monte-Carlo samples (default 100).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per sample).
        generator: the generator of ε (default torch's global one).
        check: refuse NaN or infinite inputs (one host synchronisation).
        task: the task's name, for error messages.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> logits, target = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
        >>> tiny = torch.full((1, 1), -60.0)  # σ ≈ 0: the cross-entropy
        >>> loss = heteroscedastic_classification(logits, target, tiny)
        >>> bool(torch.isclose(loss, F.cross_entropy(logits, target)))
        True
    """
    where = _where(task, "heteroscedastic_classification")
    if logits.ndim != 2:
        raise InvalidLossError(f"{where}: logits must have shape (B, C), got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] or target.is_floating_point():
        raise InvalidLossError(
            f"{where}: target must hold class indices of shape ({logits.shape[0]},), got "
            f"{target.dtype} of shape {tuple(target.shape)}"
        )
    _check_log_var(log_var, logits.shape, where, "give (B, 1) for one σ per sample or (B, C) per class")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"{where}: samples must be a positive int, got {samples!r}")
    if check:
        _check_finite(where, logits=logits, log_var=log_var)
        bad = (target < 0) | (target >= logits.shape[1])
        if bool(bad.any()):
            label = int(target[bad][0])
            raise InvalidLossError(
                f"{where}: target holds class {label}, outside 0..{logits.shape[1] - 1} "
                f"for logits of {logits.shape[1]} classes"
            )
    dtype = _compute_dtype(logits, log_var)
    f = logits.to(dtype)
    sigma = torch.exp(0.5 * log_var.to(dtype).clamp(-LOG_VAR_LIMIT, LOG_VAR_LIMIT))
    eps = torch.randn((samples, *f.shape), generator=generator, device=f.device, dtype=dtype)
    logp = torch.log_softmax(f + sigma * eps, dim=-1)  # (T, B, C)
    picked = logp.gather(-1, target.view(1, -1, 1).expand(samples, -1, 1)).squeeze(-1)  # (T, B)
    nll = math.log(samples) - torch.logsumexp(picked, dim=0)
    return _reduce(nll, reduction, where)


class HeteroscedasticHead(nn.Module):
    r"""A task head with a log-variance output beside its prediction.

    ``forward(x)`` returns ``(head(x), log_var(x))``. By default the log-variance is a
    linear layer from the head's input to ``outputs`` values (1: one σ per sample),
    initialised to the constant ``init`` (weights 0), so training starts at
    σ = exp(init/2) everywhere; pass any module as ``log_var`` instead (a 1 × 1
    convolution for a per-pixel σ). With ``constant=True`` the log-variance is one
    learned value per output that does not depend on x: homoscedastic uncertainty for
    this task, in the same loss. Feed the pair to :func:`heteroscedastic_regression`
    or :func:`heteroscedastic_classification`.

    Args:
        head: the task head, mapping features to the prediction.
        in_features: the head's input size (for the default log-variance layer).
        outputs: how many log-variances the default layer predicts (default 1).
        log_var: a module of your own instead of the default layer.
        init: the initial log-variance of the default layer (default 0: σ = 1).
        constant: learn one log-variance per output, the same for every input.

    Example:
        >>> import torch
        >>> head = HeteroscedasticHead(torch.nn.Linear(8, 3), in_features=8)
        >>> pred, log_var = head(torch.randn(4, 8))
        >>> tuple(pred.shape), tuple(log_var.shape), float(log_var.abs().max())
        ((4, 3), (4, 1), 0.0)
    """

    def __init__(
        self,
        head: nn.Module,
        in_features: int | None = None,
        *,
        outputs: int = 1,
        log_var: nn.Module | None = None,
        init: float = 0.0,
        constant: bool = False,
    ) -> None:
        super().__init__()
        if log_var is not None and (in_features is not None or constant):
            raise ValueError("HeteroscedasticHead: give log_var= alone, or in_features= / constant=True")
        if log_var is None and in_features is None and not constant:
            raise ValueError("HeteroscedasticHead needs one of in_features=, constant=True or log_var=")
        if log_var is None:
            if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
                raise ValueError(f"HeteroscedasticHead: outputs must be a positive int, got {outputs!r}")
            if not math.isfinite(init):
                raise ValueError(f"HeteroscedasticHead: init must be finite, got {init!r}")
            if constant:
                log_var = _Constant(outputs, float(init))
            else:
                assert in_features is not None
                layer = nn.Linear(in_features, outputs)
                nn.init.zeros_(layer.weight)
                nn.init.constant_(layer.bias, float(init))
                log_var = layer
        self.head = head
        self.log_var = log_var

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The prediction and the log-variance s(x) = log σ²(x)."""
        return self.head(x), self.log_var(x)


class _Constant(nn.Module):
    """One learned value per output, broadcast over the batch: (B, ...) -> (B, outputs)."""

    def __init__(self, outputs: int, init: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.full((outputs,), init))

    def forward(self, x: Tensor) -> Tensor:
        return self.value.expand(x.shape[0], -1)
