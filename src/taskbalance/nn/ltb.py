"""Learning To Branch (Guo, Lee & Ulbricht, ICML 2020)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from .architectures import MultiTaskModule, _mlp, _tower

__all__ = ["LTB", "gumbel_softmax"]


def gumbel_softmax(
    logits: Tensor, temperature: float, hard: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    r"""One Gumbel-softmax sample over the last dimension, reproducible with ``generator``.

    :math:`y = \operatorname{softmax}((\ell + g)/\tau)` with :math:`g = -\log(-\log u)`,
    :math:`u \sim U(0, 1)`. With ``hard`` the value is the one-hot of :math:`\arg\max y`
    and the gradient that of :math:`y` (straight-through, as ``F.gumbel_softmax(hard=True)``,
    which takes no generator).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = gumbel_softmax(torch.zeros(2, 3), 1.0, generator=g)
        >>> y.sum(-1), bool(((y == 0) | (y == 1)).all())
        (tensor([1., 1.]), True)
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    u = u.clamp(1e-10, 1 - 1e-7)
    soft = torch.softmax((logits - torch.log(-torch.log(u))) / temperature, dim=-1)
    if not hard:
        return soft
    index = soft.argmax(-1, keepdim=True)
    return torch.zeros_like(soft).scatter_(-1, index, 1.0) - soft.detach() + soft


class LTB(MultiTaskModule):
    r"""Learning To Branch (Guo, Lee & Ulbricht, ICML 2020), on MLP blocks.

    A layered tree of candidate blocks: layer l (0-based, l < L = ``len(hidden)``) holds
    ``branches[l]`` blocks :math:`f_{l,i}` (Linear-ReLU to ``hidden[l]``); the blocks of
    layer 0 read x, every block of layer l ≥ 1 (a child) reads one block of layer l−1
    (its parent), and task t's tower :math:`h_t` reads one block of the last layer. Each
    child c has branching logits :math:`\ell_c` over its possible parents; during the
    search the parent is a Gumbel-softmax sample at temperature τ,

    .. math::
        w_c = \operatorname{softmax}\big((\ell_c + g)/\tau\big),\qquad
        \text{input}_c = \sum_{p} w_{c,p}\, f_p(\cdot),\qquad
        y_t = h_t\Big(\sum_p w_{t,p}\, f_{L-1,p}\Big),

    one sample per forward for the whole batch. With ``hard=True`` (the default, as in
    LibMTL) :math:`w_c` is one-hot in value with the gradient of the soft sample
    (straight-through): each forward runs one sampled tree. In eval mode there is no
    noise: the argmax tree (``hard``) or :math:`\operatorname{softmax}(\ell/\tau)`.
    The logits start at 0 (uniform). ``branches`` defaults to T blocks per layer (LibMTL's
    design space); any count per layer works, e.g. ``(1, 2, T)``. Unlike LibMTL, where
    task t always reads the last layer's block t, the towers choose their block too.

    Schedule: :meth:`epoch_end` counts epochs and anneals
    :math:`\tau_e = \tau_0/\sqrt{e+1}` (LibMTL's law, where :math:`\tau_0` = epochs/20;
    ``temperature`` is :math:`\tau_0`); :meth:`set_temperature` sets τ directly for
    another schedule. During the first ``warmup_epochs`` every child reads the mean of
    all its parents (LibMTL sums them). After the search, :meth:`fix_branching` fixes
    each child's parent to the argmax of its logits (or to a given tree, e.g. the
    :meth:`branching` of a searched model, to retrain the found tree from scratch;
    LibMTL never fixes it): the forward then runs only that tree, the logits and the blocks no
    task uses are frozen (``requires_grad=False``). Temperature, epoch, the fixed flag
    and the tree are buffers: a state dict resumes exactly (loading re-applies the
    freezing).

    Shapes: x (B, d) -> blocks (B, hidden[l]) -> task t: (B, tasks[t]).

    Shared and task parameters. While the branching is searched every task can reach
    every block (each has a nonzero probability of lying on its path): all blocks and
    the logits of the inner children are shared, task t owns its tower and the tower's
    logits. ``features`` is then the stack of the last layer's blocks, (B, branches[-1],
    hidden[-1]), which the towers mix: every shared parameter lies behind it. (With
    ``hard=True`` a block off the sampled tree gets an exact zero gradient from every
    task in that step.) Once fixed, the split follows the tree: a block on the path of
    several tasks is shared (with three or more tasks, one shared by some of them gives
    the others an exact zero gradient), a block on one task's path is that task's, a
    block on no path (and every logit) is frozen and in neither set. ``features`` is
    then the concatenation, along the last dimension, of the shared blocks whose output leaves
    the shared trunk (that feed a task's block or tower), which those readers read
    back from it: a cut, (B, Σ widths). If the fixed tree shares no block,
    ``features`` is ``None`` and :meth:`feature_cut` refuses.

    Example:
        >>> m = LTB(10, {"a": 1, "b": 3}, hidden=(16, 8), temperature=2.0)
        >>> g = torch.Generator().manual_seed(0)
        >>> {t: tuple(y.shape) for t, y in m(torch.randn(5, 10), generator=g).items()}
        {'a': (5, 1), 'b': (5, 3)}
        >>> tuple(m.features.shape), m.temperature
        ((5, 2, 8), 2.0)
        >>> m.epoch_end(); round(m.temperature, 4)  # 2 / sqrt(2)
        1.4142
        >>> m.fix_branching([[0, 0]], {"a": 0, "b": 1})  # one trunk block, then a branch per task
        >>> out = m(torch.randn(5, 10))
        >>> tuple(m.features.shape), sum(p.numel() for p in m.shared_parameters())
        ((5, 16), 176)
    """

    tau: Tensor
    epoch: Tensor
    fixed: Tensor
    parents: Tensor
    tower_parents: Tensor

    def __init__(
        self,
        input_dim: int,
        tasks: Mapping[str, int],
        hidden: Sequence[int] = (64, 64),
        branches: Sequence[int] | None = None,
        tower: Sequence[int] = (),
        temperature: float = 5.0,
        hard: bool = True,
        warmup_epochs: int = 0,
    ) -> None:
        super().__init__(tasks)
        if not hidden:
            raise ValueError("hidden must name at least one layer")
        branches = tuple(branches) if branches is not None else (len(self.tasks),) * len(hidden)
        if len(branches) != len(hidden) or min(branches) < 1:
            raise ValueError(
                f"branches must give one positive block count per layer of hidden ({len(hidden)}), "
                f"got {branches!r}"
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.hidden, self.branches = tuple(hidden), branches
        self.hard, self.warmup_epochs, self.initial_temperature = hard, warmup_epochs, float(temperature)
        dims = [input_dim, *hidden]
        self.blocks = nn.ModuleList(
            nn.ModuleList(_mlp(dims[lv], (dims[lv + 1],)) for _ in range(n)) for lv, n in enumerate(branches)
        )
        self.branch_logits = nn.ParameterList(
            nn.Parameter(torch.zeros(branches[lv], branches[lv - 1])) for lv in range(1, len(branches))
        )
        self.tower_logits = nn.ParameterDict({t: nn.Parameter(torch.zeros(branches[-1])) for t in tasks})
        self.towers = nn.ModuleDict({t: _tower(hidden[-1], tower, o) for t, o in tasks.items()})
        self.register_buffer("tau", torch.tensor(float(temperature)))
        self.register_buffer("epoch", torch.tensor(0))
        self.register_buffer("fixed", torch.tensor(False))
        self.register_buffer("parents", torch.full((len(branches), max(branches)), -1))
        self.register_buffer("tower_parents", torch.full((len(self.tasks),), -1))
        self.last_weights: list[Tensor] = []
        self._refresh()
        # loading a state dict refreshes the mirrors and re-applies (or lifts) the freezing
        self.register_load_state_dict_post_hook(  # type: ignore[no-untyped-call]
            lambda module, _keys: cast(LTB, module)._refresh()
        )

    def _refresh(self) -> None:
        """Python mirrors of the state buffers, so a forward reads them without device syncs."""
        self._tau, self._epoch, self._fixed = float(self.tau), int(self.epoch), bool(self.fixed)
        self._parents = [self.parents[lv, :n].tolist() for lv, n in enumerate(self.branches)]
        self._towers = [int(p) for p in self.tower_parents.tolist()]
        self._owners = self._compute_owners()
        self._freeze()

    # ----------------------------------------------------------------------- schedule
    @property
    def temperature(self) -> float:
        """The current Gumbel-softmax temperature τ."""
        return self._tau

    @property
    def is_fixed(self) -> bool:
        """Whether :meth:`fix_branching` has fixed the tree."""
        return self._fixed

    def set_temperature(self, temperature: float) -> None:
        """Set τ (for a schedule other than :meth:`epoch_end`'s)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.tau.fill_(float(temperature))
        self._refresh()

    def epoch_end(self) -> None:
        """Call once per epoch: counts the epoch and anneals τ to τ₀/√(epoch + 1)."""
        self.epoch += 1
        self.tau.fill_(self.initial_temperature / math.sqrt(int(self.epoch) + 1))
        self._refresh()

    # ----------------------------------------------------------------------- the tree
    def branching(self) -> tuple[list[list[int]], dict[str, int]]:
        """The tree: each child's parent per layer ≥ 1, and each tower's last-layer block.

        The fixed tree once fixed, else the argmax of the logits (what :meth:`fix_branching`
        would fix).
        """
        if self.is_fixed:
            layers = [list(p) for p in self._parents[1:]]
            return layers, dict(zip(self.tasks, self._towers))
        layers = [logits.argmax(-1).tolist() for logits in self.branch_logits]
        return layers, {t: int(self.tower_logits[t].argmax()) for t in self.tasks}

    def fix_branching(
        self, layers: Sequence[Sequence[int]] | None = None, towers: Mapping[str, int] | None = None
    ) -> None:
        """Fix the tree: ``layers`` and ``towers`` as :meth:`branching` returns them (by default
        the argmax of the logits). Freezes the logits and the blocks no task uses."""
        argmax_layers, argmax_towers = self.branching()
        layers = argmax_layers if layers is None else [list(p) for p in layers]
        towers = argmax_towers if towers is None else dict(towers)
        if len(layers) != len(self.branches) - 1 or set(towers) != set(self.tasks):
            raise ValueError("give a parent for every child of layers 1.. and a block for every task's tower")
        for lv, ps in enumerate(layers, start=1):
            if len(ps) != self.branches[lv] or not all(0 <= p < self.branches[lv - 1] for p in ps):
                raise ValueError(
                    f"layer {lv}: need {self.branches[lv]} parents in 0..{self.branches[lv - 1] - 1}"
                )
        if not all(0 <= p < self.branches[-1] for p in towers.values()):
            raise ValueError(f"towers read a block in 0..{self.branches[-1] - 1}")
        with torch.no_grad():
            self.parents.fill_(-1)
            for lv, ps in enumerate(layers, start=1):
                self.parents[lv, : len(ps)] = torch.tensor(ps)
            self.tower_parents.copy_(torch.tensor([towers[t] for t in self.tasks]))
            self.fixed.fill_(True)
        self._refresh()

    def block_tasks(self) -> list[list[set[str]]]:
        """For each block, the tasks whose output can depend on it (all of them while searching)."""
        return [[set(tasks) for tasks in layer] for layer in self._owners]

    def _compute_owners(self) -> list[list[set[str]]]:
        if not self.is_fixed:
            return [[set(self.tasks) for _ in range(n)] for n in self.branches]
        owners: list[list[set[str]]] = [[set() for _ in range(n)] for n in self.branches]
        for i, t in enumerate(self.tasks):
            owners[-1][self._towers[i]].add(t)
        for lv in range(len(self.branches) - 1, 0, -1):
            for c in range(self.branches[lv]):
                owners[lv - 1][self._parents[lv][c]] |= owners[lv][c]
        return owners

    def _freeze(self) -> None:
        searching = not self.is_fixed
        for p in [*self.branch_logits, *self.tower_logits.values()]:
            p.requires_grad_(searching)
        for lv, owned in enumerate(self.block_tasks()):
            for i, tasks in enumerate(owned):
                self.block(lv, i).requires_grad_(searching or bool(tasks))

    def block(self, layer: int, index: int) -> nn.Module:
        """Block ``index`` of layer ``layer``."""
        return cast(nn.ModuleList, self.blocks[layer])[index]

    # ----------------------------------------------------------------------- the split
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Blocks on the paths of ≥ 2 tasks (all while searching), and the inner logits while searching."""
        for lv, owned in enumerate(self.block_tasks()):
            for i, tasks in enumerate(owned):
                if len(tasks) >= 2:
                    yield from self.block(lv, i).parameters()
        if not self.is_fixed and len(self.tasks) >= 2:
            yield from self.branch_logits

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Blocks on ``task``'s path alone, its tower (and the tower's logits while searching)."""
        if task not in self.tasks:
            raise KeyError(f"unknown task {task!r}; tasks are {list(self.tasks)}")
        for lv, owned in enumerate(self.block_tasks()):
            for i, tasks in enumerate(owned):
                if tasks == {task}:
                    yield from self.block(lv, i).parameters()
        if not self.is_fixed:
            if len(self.tasks) == 1:
                yield from self.branch_logits
            yield self.tower_logits[task]
        yield from self.towers[task].parameters()

    # ----------------------------------------------------------------------- forward
    def _weights(self, logits: Tensor, generator: torch.Generator | None) -> Tensor:
        if self._epoch < self.warmup_epochs:
            return torch.full_like(logits, 1.0 / logits.shape[-1]).detach()
        if self.training:
            return gumbel_softmax(logits, self.temperature, self.hard, generator)
        if self.hard:
            return torch.zeros_like(logits).scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
        return torch.softmax(logits / self.temperature, dim=-1)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Task outputs; ``generator`` drives the Gumbel noise of the search (else the global RNG)."""
        if self.is_fixed:
            return self._forward_fixed(x)
        self.last_weights = []
        outs = [block(x) for block in cast(nn.ModuleList, self.blocks[0])]
        for lv in range(1, len(self.branches)):
            w = self._weights(self.branch_logits[lv - 1], generator)  # (children, parents)
            self.last_weights.append(w.detach())
            mixed = torch.einsum("cp,bp...->bc...", w, torch.stack(outs, dim=1))
            outs = [block(mixed[:, c]) for c, block in enumerate(cast(nn.ModuleList, self.blocks[lv]))]
        last = torch.stack(outs, dim=1)  # (B, branches[-1], hidden[-1])
        self.features = last
        w = self._weights(torch.stack([self.tower_logits[t] for t in self.tasks]), generator)
        self.last_weights.append(w.detach())
        mixed = torch.einsum("tp,bp...->bt...", w, last)
        return {t: self.towers[t](mixed[:, i]) for i, t in enumerate(self.tasks)}

    def _forward_fixed(self, x: Tensor) -> dict[str, Tensor]:
        owners, parents = self._owners, self._parents
        depth = len(self.branches)
        out: dict[tuple[int, int], Tensor] = {}
        # the shared trunk first: a shared block's parent is shared
        for lv in range(depth):
            for i in range(self.branches[lv]):
                if len(owners[lv][i]) >= 2:
                    inp = x if lv == 0 else out[(lv - 1, parents[lv][i])]
                    out[(lv, i)] = self.block(lv, i)(inp)
        # the frontier: shared blocks read by a task's block or tower, concatenated into the cut
        read_by_one = {(depth - 1, p) for p in self._towers}
        for lv in range(1, depth):
            for c in range(self.branches[lv]):
                if len(owners[lv][c]) == 1:
                    read_by_one.add((lv - 1, parents[lv][c]))
        frontier = sorted(k for k in read_by_one if k in out)
        self.features = None
        if frontier:
            self.features = torch.cat([out[k] for k in frontier], dim=-1)
            start = 0
            for k in frontier:
                width = out[k].shape[-1]
                out[k] = self.features[..., start : start + width]
                start += width
        # the task branches, reading the trunk through the cut
        for lv in range(depth):
            for i in range(self.branches[lv]):
                if len(owners[lv][i]) == 1:
                    inp = x if lv == 0 else out[(lv - 1, parents[lv][i])]
                    out[(lv, i)] = self.block(lv, i)(inp)
        return {t: self.towers[t](out[(depth - 1, self._towers[j])]) for j, t in enumerate(self.tasks)}

    def feature_cut(self) -> Tensor:
        """``features``, or a clear error where the fixed tree shares no block."""
        if self.features is None:
            raise ValueError(
                "this LTB has no shared representation (its fixed tree shares no block, or no forward "
                "ran yet): balance shared_parameters() instead"
            )
        return self.features

    def extra_repr(self) -> str:
        state: dict[str, Any] = {"branches": self.branches, "hard": self.hard}
        return ", ".join(f"{k}={v}" for k, v in state.items())
