"""DSelect-k mixture of experts (Hazimeh et al., NeurIPS 2021)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from .architectures import MultiTaskModule, _mlp, _tower

__all__ = ["DSelectK", "smooth_step"]

_EPS = 1e-6  # inside the entropy's log, as in the reference implementation


def smooth_step(t: Tensor, gamma: float = 1.0) -> Tensor:
    r"""The smooth-step function of DSelect-k (Hazimeh et al., NeurIPS 2021, equation 2).

    .. math::
        S(t) = \begin{cases} 0 & t \le -\gamma/2 \\
        -\frac{2}{\gamma^3} t^3 + \frac{3}{2\gamma} t + \frac12 & -\gamma/2 < t < \gamma/2 \\
        1 & t \ge \gamma/2 \end{cases}

    Continuously differentiable, and exactly 0 or 1 (with zero gradient) outside
    :math:`(-\gamma/2, \gamma/2)`: this is what lets the gates reach exact sparsity.

    Example:
        >>> smooth_step(torch.tensor([-1.0, -0.25, 0.0, 0.25, 1.0]))
        tensor([0.0000, 0.1562, 0.5000, 0.8438, 1.0000])
    """
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(
        t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), cubic)
    )


class _DSelectGate(nn.Module):
    """k single-expert selectors (binary encodings through smooth-steps) and their softmax weights."""

    codes: Tensor

    def __init__(self, input_dim: int, num_experts: int, k: int, gamma: float, per_example: bool) -> None:
        super().__init__()
        self.k, self.gamma, self.per_example = k, gamma, per_example
        self.num_binary = max(1, math.ceil(math.log2(num_experts)))
        self.z: nn.Linear | nn.Parameter
        self.w: nn.Linear | nn.Parameter
        # initialisation of the reference: z ~ U(-γ/100, γ/100), w ~ U(-0.05, 0.05)
        if per_example:
            self.z = nn.Linear(input_dim, k * self.num_binary)
            self.w = nn.Linear(input_dim, k)
            for p in self.z.parameters():
                nn.init.uniform_(p, -gamma / 100, gamma / 100)
            for p in self.w.parameters():
                nn.init.uniform_(p, -0.05, 0.05)
        else:
            self.z = nn.Parameter(torch.empty(k, self.num_binary).uniform_(-gamma / 100, gamma / 100))
            self.w = nn.Parameter(torch.empty(k).uniform_(-0.05, 0.05))
        # row e: the binary code of expert e, most significant bit first
        bits = 2 ** torch.arange(self.num_binary - 1, -1, -1)
        self.register_buffer("codes", (torch.arange(num_experts)[:, None] & bits).ne(0), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Expert weights (B, E) (or (E,)) and selector outputs (B, k, E) (or (k, E))."""
        if isinstance(self.z, nn.Linear):
            assert isinstance(self.w, nn.Linear)
            z = self.z(x).view(-1, self.k, 1, self.num_binary)
            w = torch.softmax(self.w(x), dim=-1)  # (B, k)
        else:
            assert isinstance(self.w, nn.Parameter)
            z, w = self.z[:, None, :], torch.softmax(self.w, dim=-1)  # (k, 1, nb), (k,)
        s = smooth_step(z, self.gamma)
        selectors = torch.where(self.codes, s, 1 - s).prod(-1)  # (..., k, E)
        return (w.unsqueeze(-1) * selectors).sum(-2), selectors


class DSelectK(MultiTaskModule):
    r"""DSelect-k mixture of experts (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder,
    Hong & Chi, NeurIPS 2021).

    E shared experts :math:`f_e` (MLPs) and, per task, a gate that selects at most k of
    them. The gate holds k single-expert selectors; selector i encodes an expert index in
    :math:`m = \lceil\log_2 E\rceil` bits through smooth-steps :math:`S` of logits
    :math:`z_i \in \mathbb R^m`:

    .. math::
        r_i(z_i)_e = \prod_{j=1}^{m} \big(S(z_{ij})\big)^{[b_{ej}=1]} \big(1 - S(z_{ij})\big)^{[b_{ej}=0]},
        \qquad
        q_t = \sum_{i=1}^{k} \operatorname{softmax}(w)_i\, r_i(z_i),
        \qquad y_t = h_t\Big(\sum_{e=1}^{E} q_{t,e}\, f_e(x)\Big),

    with :math:`b_e` the binary code of expert e. Each :math:`r_i` sums to 1 over the
    :math:`2^m` codes, and once every :math:`S(z_{ij})` is exactly 0 or 1 (the smooth-step
    saturates outside :math:`(-\gamma/2, \gamma/2)`) it is one-hot: the gate then mixes at
    most k experts, with exact zeros elsewhere. ``routing="task"`` learns z and w per task
    (the paper's static gate); ``routing="example"`` computes them from x by linear maps
    (the per-example gate, as in LibMTL's ``DSelect_k``). The constants and initialisation
    follow the reference implementation (google-research ``dselect_k_moe``):
    :math:`z \sim U(-\gamma/100, \gamma/100)`, :math:`w \sim U(-0.05, 0.05)`.

    :meth:`regularization` is the reference's extra loss of the last forward:
    ``entropy_reg`` times the entropy of the selectors (pushes them to one-hot sooner;
    0 turns it off) and, when E is not a power of 2, :math:`\sum 1/\sum_{e\le E} r_{i,e}`,
    which keeps the selectors off the unused codes. Add it to the objective, e.g.
    ``model.regularization().backward(retain_graph=True)`` before ``balancer.backward``.

    Shapes: x (B, d), expert outputs ``features`` (B, E, D) with D = ``expert_dims[-1]``,
    ``last_gates[t]`` (B, E) (example routing) or (E,) (task routing), task t:
    (B, tasks[t]). Shared parameters: the experts; task t: its gate and tower.

    Example:
        >>> m = DSelectK(16, {"a": 1, "b": 2}, num_experts=5, k=2, expert_dims=(8,))
        >>> {t: tuple(y.shape) for t, y in m(torch.randn(3, 16)).items()}
        {'a': (3, 1), 'b': (3, 2)}
        >>> tuple(m.features.shape), tuple(m.last_gates["a"].shape)
        ((3, 5, 8), (3, 5))
        >>> float(m.regularization()) > 0  # E = 5 is not a power of 2
        True
    """

    _shared_names: ClassVar[tuple[str, ...]] = ("experts",)

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        num_experts: int = 4,
        k: int = 2,
        expert_dims: Sequence[int] = (64,),
        tower: Sequence[int] = (32,),
        gamma: float = 1.0,
        routing: str = "example",
        entropy_reg: float = 0.0,
    ) -> None:
        super().__init__(tasks)
        if routing not in ("example", "task"):
            raise ValueError(f"routing must be 'example' or 'task', got {routing!r}")
        if num_experts < 2 or not 1 <= k <= num_experts:
            raise ValueError(f"need num_experts >= 2 and 1 <= k <= num_experts, got {num_experts} and {k}")
        if gamma <= 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        self.num_experts, self.k, self.routing, self.entropy_reg = num_experts, k, routing, entropy_reg
        self.experts = nn.ModuleList(_mlp(input_dim, expert_dims) for _ in range(num_experts))
        self.gates = nn.ModuleDict(
            {t: _DSelectGate(input_dim, num_experts, k, gamma, routing == "example") for t in tasks}
        )
        self.towers = nn.ModuleDict({t: _tower(expert_dims[-1], tower, o) for t, o in tasks.items()})
        self.last_gates: dict[str, Tensor] = {}
        self.last_selectors: dict[str, Tensor] = {}
        self._selectors: dict[str, Tensor] = {}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # (B, E, D)
        self.features = experts
        out = {}
        for t, gate in self.gates.items():
            q, selectors = gate(x)
            self._selectors[t] = selectors
            self.last_gates[t] = q.detach()
            self.last_selectors[t] = selectors.detach()
            out[t] = self.towers[t]((q.unsqueeze(-1) * experts).sum(1))
        return out

    def regularization(self) -> Tensor:
        """The reference's extra loss on the last forward's selectors (see the class docstring)."""
        if not self._selectors:
            raise RuntimeError("regularization() reads the selectors of a forward pass: call the model first")
        total = torch.zeros(())
        for s in self._selectors.values():
            total = total.to(s)
            if self.entropy_reg:
                total = total - self.entropy_reg * (s * torch.log(s + _EPS)).sum()
            if self.num_experts & (self.num_experts - 1):  # not a power of 2
                total = total + (1.0 / s.sum(-1)).sum()
        return total
