r"""The two-objective toy of the CAGrad, Nash-MTL and FAMO papers, from its formulas.

On :math:`x \in \mathbb R^2`, with :math:`c_1 = \max(\tanh(x_2/2), 0)`,
:math:`c_2 = \max(\tanh(-x_2/2), 0)` and :math:`\lfloor u\rfloor = \max(|u|, 5\cdot10^{-6})`:

.. math::
    f_1 &= \log\lfloor \tfrac12(-x_1 - 7) - \tanh(-x_2) \rfloor + 6, &
    g_1 &= \big((-x_1 + 7)^2 + 0.1(-x_2 - 8)^2\big)/10 - 20, \\
    f_2 &= \log\lfloor \tfrac12(-x_1 + 3) + \tanh(-x_2) + 2 \rfloor + 6, &
    g_2 &= \big((-x_1 - 7)^2 + 0.1(-x_2 - 8)^2\big)/10 - 20, \\
    L_1 &= s\,(c_1 f_1 + c_2 g_1), & L_2 &= c_1 f_2 + c_2 g_2 ,

with :math:`s = 0.1` by default, the imbalanced variant of the Nash-MTL and FAMO papers.
The losses go down to about −26; methods that need positive losses get
:math:`L_i + 30` (the shift their error message suggests).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..registry import create, get_method

__all__ = ["toy_losses", "run_toy", "plot_toy", "STARTS", "SHIFT"]

STARTS: tuple[tuple[float, float], ...] = ((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0))
SHIFT = 30.0
_LOWER = 5e-6


def toy_losses(x: Tensor, scale: float = 0.1) -> Tensor:
    """``(L1, L2)`` at ``x`` (shape (..., 2)).

    Example:
        >>> toy_losses(torch.tensor([0.0, 0.0]))  # x2 = 0: both weights c1, c2 vanish
        tensor([0., 0.])
        >>> toy_losses(torch.tensor([1.0, -1.0]))
        tensor([-0.7352, -6.0584])
    """
    x1, x2 = x[..., 0], x[..., 1]
    f1 = torch.log(torch.clamp((0.5 * (-x1 - 7) - torch.tanh(-x2)).abs(), min=_LOWER)) + 6
    f2 = torch.log(torch.clamp((0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs(), min=_LOWER)) + 6
    g1 = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    g2 = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    c1 = torch.clamp(torch.tanh(x2 / 2), min=0)
    c2 = torch.clamp(torch.tanh(-x2 / 2), min=0)
    return torch.stack([scale * (c1 * f1 + c2 * g1), c1 * f2 + c2 * g2], dim=-1)


def run_toy(
    method: str, start: Sequence[float], steps: int = 1000, lr: float = 0.01, scale: float = 0.1
) -> Tensor:
    """Adam on x from ``start`` with ``method``; returns the trajectory (steps + 1, 2).

    Example:
        >>> run_toy("equal", (0.0, 0.0), steps=3).shape
        torch.Size([4, 2])
    """
    torch.manual_seed(0)
    x = torch.tensor(list(start), dtype=torch.float64, requires_grad=True)
    cls = get_method(method)
    shift = SHIFT if cls.sign_rule != "any" else 0.0
    balancer = create(method, tasks=["L1", "L2"], **cls.bench_kwargs).double()
    opt = torch.optim.Adam([{"params": [x], "lr": lr}, *balancer.param_groups(lr=lr)])
    path = [x.detach().clone()]
    for step in range(steps):
        opt.zero_grad()
        losses = toy_losses(x, scale) + shift
        balancer.backward(dict(zip(["L1", "L2"], losses.unbind())), shared_params=[x])
        opt.step()
        with torch.no_grad():
            balancer.after_step(dict(zip(["L1", "L2"], (toy_losses(x, scale) + shift).unbind())))
        if step % 100 == 99:
            balancer.epoch_end()
        path.append(x.detach().clone())
    return torch.stack(path)


def plot_toy(paths: dict[str, list[Tensor]], out: str, scale: float = 0.1) -> None:
    """One panel per method: contours of L1 + L2 and the trajectories from every start.

    Needs matplotlib (``pip install matplotlib``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = torch.linspace(-10, 10, 200, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    total = toy_losses(torch.stack([xx, yy], -1), scale).sum(-1)
    n = len(paths)
    cols = min(5, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, runs) in zip(axes.flat, paths.items()):
        ax.contourf(xx.numpy(), yy.numpy(), total.numpy(), levels=25, cmap="Greys")
        for run in runs:
            ax.plot(run[:, 0].numpy(), run[:, 1].numpy(), lw=1.5)
            ax.plot(run[0, 0].item(), run[0, 1].item(), "o", color="black", ms=3)
            ax.plot(run[-1, 0].item(), run[-1, 1].item(), "*", color="red", ms=7)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
