"""Cross-stitch networks (Misra et al., CVPR 2016)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from .architectures import MultiTaskModule, _mlp, _tower

__all__ = ["CrossStitch"]


def _stitch_init(num_tasks: int, self_weight: float) -> Tensor:
    """α_S on the diagonal and (1 − α_S)/(T − 1) elsewhere: every row sums to 1."""
    if num_tasks == 1:
        return torch.ones(1, 1)
    other = (1.0 - self_weight) / (num_tasks - 1)
    return torch.full((num_tasks, num_tasks), other) + (self_weight - other) * torch.eye(num_tasks)


class CrossStitch(MultiTaskModule):
    r"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, CVPR 2016).

    One column network per task (an MLP with layers ``hidden``); after each layer listed in
    ``stitch_after`` (0-based, default every layer) a cross-stitch unit mixes the columns'
    activations linearly:

    .. math::
        \tilde h^{(l)}_t = \sum_{s=1}^{T} \alpha^{(l)}_{ts}\, h^{(l)}_s,
        \qquad y_t = g_t\big(\tilde h^{(L)}_t\big),

    with one learnable :math:`T\times T` matrix :math:`\alpha^{(l)}` per unit (one scalar
    per pair of tasks, as in the paper's equation 1 and LibMTL's ``Cross_stitch``) and
    :math:`g_t` task t's remaining column layers (those after the last unit) and tower.
    The units are initialised as in the paper's best setting, :math:`(\alpha_S, \alpha_D)
    = (0.9, 0.1)`: ``self_weight`` on the diagonal and ``(1 − self_weight)/(T − 1)``
    elsewhere, so every row is a convex combination close to the identity (LibMTL and
    the MTAN repository initialise all α to 1 instead). The paper trains α with a larger
    learning rate than the columns: put :meth:`stitch_parameters` in an optimizer group
    of their own to do the same.

    Shapes: x (B, d) -> columns (B, hidden[l]) per task -> task t: (B, tasks[t]).

    Shared and task parameters: every column layer up to the last unit, and every unit
    but the last, reaches every task through a later unit, so they are shared. Row t of
    the last unit, task t's column layers after it and its tower are task t's.
    ``features`` is the stack of the columns' activations entering the last unit,
    (B, T, hidden[last unit]): every task reads all of it (through its row of α), and
    every shared parameter lies behind it.

    Example:
        >>> m = CrossStitch(10, {"a": 1, "b": 3}, hidden=(16, 8), tower=(4,))
        >>> {t: tuple(y.shape) for t, y in m(torch.randn(5, 10)).items()}
        {'a': (5, 1), 'b': (5, 3)}
        >>> tuple(m.features.shape), [tuple(a.shape) for a in m.alphas()]
        ((5, 2, 8), [(2, 2), (2, 2)])
        >>> m.alphas()[0].detach()
        tensor([[0.9000, 0.1000],
                [0.1000, 0.9000]])
    """

    _shared_names: ClassVar[tuple[str, ...]] = ("columns", "stitches")
    _task_keys: ClassVar[dict[str, int]] = {**MultiTaskModule._task_keys, "last_stitch": 1}

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        hidden: Sequence[int] = (64, 64),
        tower: Sequence[int] = (),
        stitch_after: Sequence[int] | None = None,
        self_weight: float = 0.9,
    ) -> None:
        super().__init__(tasks)
        if not hidden:
            raise ValueError("hidden must name at least one column layer")
        units = sorted(set(range(len(hidden)) if stitch_after is None else stitch_after))
        if not units or units[0] < 0 or units[-1] >= len(hidden):
            raise ValueError(
                f"stitch_after must name at least one layer in 0..{len(hidden) - 1}, got {stitch_after!r}"
            )
        self.units = tuple(units)
        last = units[-1]
        names = list(tasks)
        dims = [input_dim, *hidden]
        # column layers up to the last unit are shared (they reach every task through a unit)
        self.columns = nn.ModuleList(
            nn.ModuleDict({t: _mlp(dims[i], (dims[i + 1],)) for t in names}) for i in range(last + 1)
        )
        init = _stitch_init(len(names), self_weight)
        self.stitches = nn.ParameterList(nn.Parameter(init.clone()) for _ in units[:-1])
        # the last unit's row t only feeds task t
        self.last_stitch = nn.ParameterDict({t: nn.Parameter(init[i].clone()) for i, t in enumerate(names)})
        rest = tuple(hidden[last + 1 :])
        self.towers = nn.ModuleDict(
            {
                t: nn.Sequential(*_mlp(hidden[last], rest), *_tower(dims[-1], tower, o))
                for t, o in tasks.items()
            }
        )

    def alphas(self) -> list[Tensor]:
        """The (T, T) matrix of every unit, rows and columns in task order (the last one stacked)."""
        return [*self.stitches, torch.stack([self.last_stitch[t] for t in self.tasks])]

    def stitch_parameters(self) -> list[nn.Parameter]:
        """The α of every unit (for an optimizer group with its own learning rate)."""
        return [*self.stitches, *self.last_stitch.values()]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        names = list(self.tasks)
        h = dict.fromkeys(names, x)
        unit = 0
        for i, layer in enumerate(cast(list[nn.ModuleDict], self.columns)):
            h = {t: layer[t](h[t]) for t in names}
            if i not in self.units:
                continue
            stack = torch.stack([h[t] for t in names], dim=1)  # (B, T, H)
            if i == self.units[-1]:
                self.features = stack
                alpha = torch.stack([self.last_stitch[t] for t in names])
            else:
                alpha = self.stitches[unit]
                unit += 1
            mixed = torch.einsum("ts,bsh->bth", alpha, stack)
            h = {t: mixed[:, j] for j, t in enumerate(names)}
        return {t: self.towers[t](h[t]) for t in names}
