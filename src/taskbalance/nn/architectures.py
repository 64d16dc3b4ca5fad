"""Hard sharing, MMoE, CGC/PLE and SNR, with their shared/task parameter split."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

__all__ = ["MultiTaskModule", "HardSharing", "MMoE", "CGC", "PLE", "SNR", "hard_concrete"]


def _mlp(inp: int, dims: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for d in dims:
        layers += [nn.Linear(inp, d), nn.ReLU()]
        inp = d
    return nn.Sequential(*layers)


def _tower(inp: int, dims: Sequence[int], out: int) -> nn.Sequential:
    return nn.Sequential(*_mlp(inp, dims), nn.Linear(dims[-1] if dims else inp, out))


class MultiTaskModule(nn.Module):
    """Base: a dict of task outputs, the shared features, and the parameter split.

    Subclasses register their shared modules under the names in ``_shared_names`` and
    their per-task modules in containers keyed by task, listed in ``_task_keys`` with the
    position of the task key in the parameter path (``towers.<task>`` is 1,
    ``task_experts.<level>.<task>`` is 2).
    """

    _shared_names: ClassVar[tuple[str, ...]] = ()
    _task_keys: ClassVar[dict[str, int]] = {
        "towers": 1,
        "gates": 1,
        "log_alpha": 1,
        "transforms": 1,
        "task_experts": 2,
        "task_gates": 2,
    }
    features: Tensor | None

    def __init__(self, tasks: Mapping[str, int]) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("at least one task is needed")
        self.tasks = dict(tasks)
        self.features = None

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters every task's output depends on."""
        for name, p in self.named_parameters():
            if name.split(".")[0] in self._shared_names:
                yield p

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Parameters that only ``task``'s output depends on."""
        if task not in self.tasks:
            raise KeyError(f"unknown task {task!r}; tasks are {list(self.tasks)}")
        for name, p in self.named_parameters():
            parts = name.split(".")
            pos = self._task_keys.get(parts[0])
            if pos is not None and len(parts) > pos and parts[pos] == task:
                yield p


class HardSharing(MultiTaskModule):
    r"""Hard parameter sharing (Caruana 1997): one encoder, one head per task.

    Shapes: x (B, input_dim) -> z = encoder(x) (B, hidden[-1]) -> task t: (B, tasks[t]).
    ``features`` is z.

    Example:
        >>> m = HardSharing(10, {"a": 1, "b": 3}, hidden=(32, 16))
        >>> {t: tuple(y.shape) for t, y in m(torch.randn(4, 10)).items()}
        {'a': (4, 1), 'b': (4, 3)}
    """

    _shared_names: ClassVar[tuple[str, ...]] = ("encoder",)

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        hidden: Sequence[int] = (64, 64),
        tower: Sequence[int] = (),
    ) -> None:
        super().__init__(tasks)
        self.encoder = _mlp(input_dim, hidden)
        self.towers = nn.ModuleDict({t: _tower(hidden[-1], tower, o) for t, o in tasks.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.encoder(x)
        self.features = z
        return {t: tower(z) for t, tower in self.towers.items()}


class MMoE(MultiTaskModule):
    r"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

    .. math::
        y_t = h_t\Big(\sum_{e=1}^{E} g_t(x)_e\, f_e(x)\Big),\qquad g_t(x) = \operatorname{softmax}(W_t x),

    with E shared experts :math:`f_e` (MLPs), one softmax gate :math:`W_t \in \mathbb R^{E\times d}`
    and one tower :math:`h_t` per task. Shapes: x (B, d), expert outputs ``features``
    (B, E, D) with D = ``expert_dims[-1]``, gates (B, E), task t: (B, tasks[t]).
    Parameters: E·|expert| shared; per task E·d (gate, no bias) + |tower|.

    Example:
        >>> m = MMoE(16, {"ctr": 1, "cvr": 1}, num_experts=4, expert_dims=(8,))
        >>> out = m(torch.randn(5, 16))
        >>> tuple(m.features.shape), tuple(m.last_gates["ctr"].shape)
        ((5, 4, 8), (5, 4))
    """

    _shared_names: ClassVar[tuple[str, ...]] = ("experts",)

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        num_experts: int = 4,
        expert_dims: Sequence[int] = (64,),
        tower: Sequence[int] = (32,),
    ) -> None:
        super().__init__(tasks)
        self.experts = nn.ModuleList(_mlp(input_dim, expert_dims) for _ in range(num_experts))
        self.gates = nn.ModuleDict({t: nn.Linear(input_dim, num_experts, bias=False) for t in tasks})
        self.towers = nn.ModuleDict({t: _tower(expert_dims[-1], tower, o) for t, o in tasks.items()})
        self.last_gates: dict[str, Tensor] = {}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # (B, E, D)
        self.features = experts
        out = {}
        for t in self.tasks:
            g = torch.softmax(self.gates[t](x), dim=-1)
            self.last_gates[t] = g.detach()
            out[t] = self.towers[t]((g.unsqueeze(-1) * experts).sum(1))
        return out


class _Extraction(nn.Module):
    """One CGC extraction layer: task and shared experts, a gate per task (and a shared gate)."""

    def __init__(
        self,
        input_dim: int,
        tasks: Sequence[str],
        num_shared: int,
        num_specific: int,
        expert_dims: Sequence[int],
        shared_gate: bool,
    ) -> None:
        super().__init__()
        self.shared = nn.ModuleList(_mlp(input_dim, expert_dims) for _ in range(num_shared))
        self.specific = nn.ModuleDict(
            {t: nn.ModuleList(_mlp(input_dim, expert_dims) for _ in range(num_specific)) for t in tasks}
        )
        self.gates = nn.ModuleDict({t: nn.Linear(input_dim, num_shared + num_specific) for t in tasks})
        self.shared_gate = (
            nn.Linear(input_dim, num_shared + num_specific * len(tasks)) if shared_gate else None
        )

    def forward(
        self, task_inputs: Mapping[str, Tensor], shared_input: Tensor, gates_out: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], Tensor | None, Tensor]:
        shared = torch.stack([e(shared_input) for e in self.shared], dim=1)  # (B, S, D)
        specific = {
            t: torch.stack([e(task_inputs[t]) for e in es], dim=1)
            for t, es in cast(dict[str, nn.ModuleList], self.specific).items()
        }
        outs = {}
        for t, gate in self.gates.items():
            g = torch.softmax(gate(task_inputs[t]), dim=-1)
            gates_out[t] = g.detach()
            outs[t] = (g.unsqueeze(-1) * torch.cat([specific[t], shared], dim=1)).sum(1)
        shared_out = None
        if self.shared_gate is not None:
            g = torch.softmax(self.shared_gate(shared_input), dim=-1)
            gates_out["_shared"] = g.detach()
            everything = torch.cat([*specific.values(), shared], dim=1)
            shared_out = (g.unsqueeze(-1) * everything).sum(1)
        return outs, shared_out, shared


class PLE(MultiTaskModule):
    r"""Progressive Layered Extraction (Tang et al., RecSys 2020); ``num_levels=1`` is CGC.

    Each extraction level has ``num_specific`` experts per task and ``num_shared`` shared
    experts. Task t's gate mixes its own and the shared experts,
    :math:`y^{(l)}_t = \sum g_t(\cdot)_e\, f_e(\cdot)` over those
    ``num_specific + num_shared`` experts; below the last level a shared gate mixes all
    experts into the next level's shared input. Towers sit on the last level.

    Shared parameters: the shared experts and the shared gates (of every level). Task t:
    its experts, gates and tower. ``features`` is the last level's shared-expert output
    (B, S, D) when there is one level (CGC): then the task-specific experts read x
    directly and the shared experts form a clean cut. With more levels the task experts
    of level 2 read the level-1 shared mixture, so no single tensor separates shared
    from task computation: ``features`` is ``None`` and ``features=`` balancing is refused
    by :meth:`feature_cut`.

    Example:
        >>> m = PLE(12, {"a": 1, "b": 1}, num_levels=2, num_shared=2, num_specific=1, expert_dims=(8,))
        >>> sorted(m(torch.randn(3, 12)))
        ['a', 'b']
        >>> m.features is None
        True
    """

    _shared_names: ClassVar[tuple[str, ...]] = ("shared_experts", "shared_gates")

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        num_levels: int = 2,
        num_shared: int = 2,
        num_specific: int = 1,
        expert_dims: Sequence[int] = (64,),
        tower: Sequence[int] = (32,),
    ) -> None:
        super().__init__(tasks)
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        names = list(tasks)
        levels = []
        dim = input_dim
        for level in range(num_levels):
            levels.append(
                _Extraction(
                    dim, names, num_shared, num_specific, expert_dims, shared_gate=level < num_levels - 1
                )
            )
            dim = expert_dims[-1]
        # registered under names that tell shared from task parameters
        self.shared_experts = nn.ModuleList(lv.shared for lv in levels)
        self.shared_gates = nn.ModuleList(lv.shared_gate for lv in levels if lv.shared_gate is not None)
        self.task_experts = nn.ModuleList(lv.specific for lv in levels)
        self.task_gates = nn.ModuleList(lv.gates for lv in levels)
        self._levels = levels
        self.towers = nn.ModuleDict({t: _tower(expert_dims[-1], tower, o) for t, o in tasks.items()})
        self.last_gates: list[dict[str, Tensor]] = []

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        task_in = dict.fromkeys(self.tasks, x)
        shared_in: Tensor | None = x
        self.last_gates = []
        shared = x
        for level in self._levels:
            gates: dict[str, Tensor] = {}
            assert shared_in is not None
            task_in, shared_in, shared = level(task_in, shared_in, gates)
            self.last_gates.append(gates)
        self.features = shared if len(self._levels) == 1 else None
        return {t: self.towers[t](task_in[t]) for t in self.tasks}

    def feature_cut(self) -> Tensor:
        """``features`` if this model has a clean shared cut, else a clear error."""
        if self.features is None:
            raise ValueError(
                "PLE with more than one level has no single shared representation (task experts of "
                "level 2 read the level-1 shared mixture): balance shared_parameters() instead"
            )
        return self.features


class CGC(PLE):
    """Customized Gate Control (Tang et al., RecSys 2020): a single-level :class:`PLE`.

    Example:
        >>> m = CGC(12, {"a": 1, "b": 2}, num_shared=2, num_specific=2, expert_dims=(8,))
        >>> out = m(torch.randn(3, 12))
        >>> tuple(m.features.shape), tuple(m.last_gates[0]["b"].shape)
        ((3, 2, 8), (3, 4))
    """

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        num_shared: int = 2,
        num_specific: int = 1,
        expert_dims: Sequence[int] = (64,),
        tower: Sequence[int] = (32,),
    ) -> None:
        super().__init__(input_dim, tasks, 1, num_shared, num_specific, expert_dims, tower)


# ------------------------------------------------------------------------------- SNR
_BETA, _GAMMA, _ZETA = 2.0 / 3.0, -0.1, 1.1


def hard_concrete(log_alpha: Tensor, training: bool, generator: torch.Generator | None = None) -> Tensor:
    r"""Hard-concrete gates (Louizos, Welling & Kingma, ICLR 2018), β = 2/3, γ = −0.1, ζ = 1.1.

    Training: :math:`u \sim U(0,1)`, :math:`s = \sigma((\log u - \log(1-u) + \log\alpha)/\beta)`,
    :math:`z = \min(1, \max(0, s(\zeta-\gamma)+\gamma))`. Evaluation: the same with
    :math:`s = \sigma(\log\alpha)`, which is exactly 0 for :math:`\log\alpha` below
    :math:`\operatorname{logit}(-\gamma/(\zeta-\gamma))`.

    Example:
        >>> hard_concrete(torch.tensor([-5.0, 0.0, 5.0]), training=False)
        tensor([0.0000, 0.5000, 1.0000])
    """
    if training:
        u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
        u = u.clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / _BETA)
    else:
        s = torch.sigmoid(log_alpha)
    return (s * (_ZETA - _GAMMA) + _GAMMA).clamp(0.0, 1.0)


class SNR(MultiTaskModule):
    r"""Sub-Network Routing (Ma et al., AAAI 2019), SNR-Trans and SNR-Aver.

    ``num_lower`` shared lower sub-networks :math:`u_i(x)` (MLPs, output D) are routed
    to one upper sub-network per task by hard-concrete coding variables :math:`z_{ti}`:

    .. math::
        \text{trans: } v_t = \sum_i z_{ti} W_{ti} u_i,\qquad
        \text{aver: } v_t = \sum_i z_{ti} u_i,\qquad y_t = h_t(v_t),

    with :math:`W_{ti} \in \mathbb R^{D\times D}` (trans only) and towers :math:`h_t`. The
    expected L0 norm of the routing, :math:`\sum_{ti} \sigma(\log\alpha_{ti} - \beta\log(-\gamma/\zeta))`,
    is :meth:`l0_penalty`: add ``λ · model.l0_penalty()`` to the loss to prune connections.
    At evaluation the gates are deterministic and reach exact zeros. ``features`` are the
    lower outputs (B, num_lower, D); the routing belongs to the tasks.

    Example:
        >>> m = SNR(10, {"a": 1, "b": 1}, num_lower=3, lower_dims=(8,), mode="aver")
        >>> out = m(torch.randn(4, 10))
        >>> tuple(m.features.shape), tuple(m.log_alpha["a"].shape)
        ((4, 3, 8), (3,))
    """

    _shared_names: ClassVar[tuple[str, ...]] = ("lower",)

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        num_lower: int = 3,
        lower_dims: Sequence[int] = (64,),
        tower: Sequence[int] = (32,),
        mode: str = "trans",
        init_log_alpha: float = 3.0,
    ) -> None:
        super().__init__(tasks)
        if mode not in ("trans", "aver"):
            raise ValueError(f"mode must be 'trans' or 'aver', got {mode!r}")
        self.mode = mode
        d = lower_dims[-1]
        self.lower = nn.ModuleList(_mlp(input_dim, lower_dims) for _ in range(num_lower))
        self.log_alpha = nn.ParameterDict(
            {t: nn.Parameter(torch.full((num_lower,), float(init_log_alpha))) for t in tasks}
        )
        if mode == "trans":
            self.transforms = nn.ParameterDict(
                {t: nn.Parameter(torch.randn(num_lower, d, d) / math.sqrt(d)) for t in tasks}
            )
        self.towers = nn.ModuleDict({t: _tower(d, tower, o) for t, o in tasks.items()})
        self.last_gates: dict[str, Tensor] = {}

    def gates(self, task: str) -> Tensor:
        """The routing variables z of ``task`` (sampled in training, deterministic in eval)."""
        return hard_concrete(self.log_alpha[task], self.training)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        lower = torch.stack([net(x) for net in self.lower], dim=1)  # (B, L, D)
        self.features = lower
        out = {}
        for t in self.tasks:
            z = self.gates(t)
            self.last_gates[t] = z.detach()
            routed = lower if self.mode == "aver" else torch.einsum("bld,lde->ble", lower, self.transforms[t])
            out[t] = self.towers[t]((z[None, :, None] * routed).sum(1))
        return out

    def l0_penalty(self) -> Tensor:
        """Expected number of open routing connections (differentiable in log α)."""
        shift = _BETA * math.log(-_GAMMA / _ZETA)
        return torch.stack([torch.sigmoid(a - shift).sum() for a in self.log_alpha.values()]).sum()
