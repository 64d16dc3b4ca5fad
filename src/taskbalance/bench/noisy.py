"""The ``noisy-tasks`` problem: regression tasks with known noise and a noisy classifier.

Inputs :math:`x \\sim \\mathcal{N}(0, I_8)`. Regression task *k* observes
:math:`y_k = 2\\sin(u_k^\\top x) + v_k^\\top x + \\sigma_k \\varepsilon`, with
:math:`\\varepsilon \\sim \\mathcal{N}(0, 1)` and a known noise std :math:`\\sigma_k`;
the classification task is a 4-class linear teacher whose labels are replaced by a
uniformly random class with probability ``label_noise``. The teachers are fixed by
``seed``. With the mean squared error as regression loss, uncertainty weighting's
optimum is σ² = MSE, so a well-fitted network should learn σ_k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..base import Balancer

__all__ = ["NoisyTasks", "NoisyResult", "make_noisy_tasks", "train_noisy"]

INPUT_DIM = 8
NUM_CLASSES = 4


@dataclass
class NoisyTasks:
    """Train and test tensors of the noisy-tasks problem."""

    noise_stds: tuple[float, ...]
    label_noise: float
    x_train: Tensor
    y_train: dict[str, Tensor]
    x_test: Tensor
    y_test: dict[str, Tensor]

    @property
    def tasks(self) -> dict[str, str]:
        """Task declaration: ``reg_<std>`` regression tasks, then ``cls``."""
        out = {name: "regression" for name in self.regression_names}
        if self.label_noise >= 0:
            out["cls"] = "classification"
        return out

    @property
    def regression_names(self) -> list[str]:
        return [f"reg_{s:g}" for s in self.noise_stds]


def make_noisy_tasks(
    noise_stds: tuple[float, ...] = (1.0, 3.0, 10.0),
    label_noise: float = 0.1,
    n_train: int = 8192,
    n_test: int = 4096,
    seed: int = 0,
    scales: tuple[float, ...] | None = None,
) -> NoisyTasks:
    """Draw the noisy-tasks data set (``label_noise < 0`` drops the classifier).

    ``scales`` multiplies each regression's clean signal (default 1 for every task):
    ``noisy-scales`` uses it to give the tasks losses 10⁴ apart at the same signal-to-
    noise ratio.

    Example:
        >>> data = make_noisy_tasks((1.0, 10.0), n_train=64, n_test=32)
        >>> data.tasks
        {'reg_1': 'regression', 'reg_10': 'regression', 'cls': 'classification'}
    """
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    x = torch.randn(n, INPUT_DIM, generator=g)
    ys: dict[str, Tensor] = {}
    if scales is None:
        scales = (1.0,) * len(noise_stds)
    if len(scales) != len(noise_stds):
        raise ValueError(f"scales has {len(scales)} entries, noise_stds {len(noise_stds)}: give one per task")
    for name, std, scale in zip([f"reg_{s:g}" for s in noise_stds], noise_stds, scales):
        u = torch.randn(INPUT_DIM, generator=g) / math.sqrt(INPUT_DIM)
        v = torch.randn(INPUT_DIM, generator=g) / math.sqrt(INPUT_DIM)
        clean = scale * (2 * torch.sin(x @ u) + x @ v)
        ys[name] = clean + std * torch.randn(n, generator=g)
    if label_noise >= 0:
        w = torch.randn(INPUT_DIM, NUM_CLASSES, generator=g)
        labels = (x @ w).argmax(1)
        flip = torch.rand(n, generator=g) < label_noise
        labels = torch.where(flip, torch.randint(0, NUM_CLASSES, (n,), generator=g), labels)
        ys["cls"] = labels
    split = {k: (v[:n_train], v[n_train:]) for k, v in ys.items()}
    return NoisyTasks(
        tuple(noise_stds),
        label_noise,
        x[:n_train],
        {k: a for k, (a, _) in split.items()},
        x[n_train:],
        {k: b for k, (_, b) in split.items()},
    )


@dataclass
class NoisyResult:
    """What one training run on noisy-tasks learned."""

    method: str
    learned_sigma: dict[str, float]
    test_residual_std: dict[str, float]
    test_accuracy: float | None
    weights: dict[str, float] = field(default_factory=dict)


def learned_sigma(balancer: Balancer) -> dict[str, float]:
    """σ by task for the uncertainty methods; empty for others."""
    sigma = getattr(balancer, "sigma", None)
    return {k: float(v) for k, v in sigma.items()} if sigma is not None else {}


def train_noisy(
    method: str,
    data: NoisyTasks,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 3e-3,
    balancer_lr: float = 0.1,
    seed: int = 0,
) -> NoisyResult:
    """Train the noisy problems' shared MLP with ``method`` on ``data`` and report σ and
    held-out residuals.

    The bench's own training loop (:func:`~taskbalance.bench.runner.train_model`) with
    every learning rate annealed to 0 by a cosine schedule, so that σ settles;
    ``weights`` are those of the last step.

    Example:
        >>> data = make_noisy_tasks((1.0,), label_noise=-1, n_train=256, n_test=64)
        >>> r = train_noisy("uw", data, epochs=2, batch_size=64)
        >>> sorted(r.learned_sigma)
        ['reg_1']
    """
    # imported here: the problems import this module for the data
    from .problems import NoisyProblem
    from .runner import train_model

    problem = NoisyProblem.build(
        "noisy-tasks",
        data.noise_stds,
        label_noise=data.label_noise,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
    )
    run = train_model(
        problem.from_tasks(data), method, seed, epochs, balancer_lr=balancer_lr, lr_schedule="cosine"
    )
    with torch.no_grad():
        _, out = run.model(data.x_test)
        resid = {n: float((out[n].squeeze(-1) - data.y_test[n]).std()) for n in data.regression_names}
        acc = float((out["cls"].argmax(1) == data.y_test["cls"]).float().mean()) if "cls" in out else None
    return NoisyResult(
        method,
        learned_sigma(run.balancer),
        resid,
        acc,
        {k: float(v) for k, v in run.balancer.weights.items()},
    )
