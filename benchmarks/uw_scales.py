"""Uncertainty weighting when the task losses differ in scale by 1000x (issue 13).

    python benchmarks/uw_scales.py [--seeds 3] [--out FILE] [--readme]

Fashion-MNIST (Debian's dataset-fashion-mnist), the first 6,000 training images and
2,000 test images, an MLP 784-256-128 with two heads: task A classifies the 10 classes
(cross-entropy, about 2.3 at the start), task B regresses the image's mean pixel value
in 0-255 units (MSE, about 6,000 at the start). Batch 64, 4 epochs (376 steps), Adam
1e-3 for the network and the documented ``param_groups(lr=0.1, betas=(0.9, 0.99))`` for
the balancer. Rows: classification alone, the plain sum, ``uw`` and ``uw-revised`` with
their defaults (``init="auto"``), with the defaults of before (s = 0, σ = 1), and
hand-initialised at the closed-form optimum of the first batch's losses (computed here,
passed as ``init=``). Mean ± std over seeds of test accuracy (A) and RMSE (B).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from readme_block import publish
from torch import nn

import taskbalance as tb
from taskbalance.bench.data import load_fashion_mnist
from taskbalance.weighting.uncertainty import revised_optimum

TRAIN, TEST, BATCH, EPOCHS = 6000, 2000, 64, 4


def data() -> tuple[torch.Tensor, ...]:
    x_tr, y_tr, x_te, y_te = load_fashion_mnist()
    xs = [torch.tensor(x[:n], dtype=torch.float32).reshape(n, -1) for x, n in ((x_tr, TRAIN), (x_te, TEST))]
    means = [x.mean(1) for x in xs]  # task B's target: the mean pixel, 0-255
    labels = [torch.from_numpy(y_tr[:TRAIN]), torch.from_numpy(y_te[:TEST])]
    return xs[0] / 255, labels[0], means[0], xs[1] / 255, labels[1], means[1]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.cls, self.reg = nn.Linear(128, 10), nn.Linear(128, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.cls(z), self.reg(z).squeeze(1)


def hand_init(method: str, first: dict[str, float]) -> dict[str, float]:
    """The closed-form optimum of the first losses, written out by hand."""
    if method == "uw":  # σ² = 2L (classification), L (regression); init is s = log σ²
        return {"A": math.log(2 * first["A"]), "B": math.log(first["B"])}
    return {t: math.sqrt(revised_optimum(v)) for t, v in first.items()}  # uw-revised: init is σ


def run(row: str, seed: int, d: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    x, y, m, x_te, y_te, m_te = d
    torch.manual_seed(seed)
    net = Net()
    gen = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(TRAIN, generator=gen) for _ in range(EPOCHS)]
    order = orders[0]
    method, _, variant = row.partition(" ")
    balancer = None
    if method in ("uw", "uw-revised"):
        tasks = {"A": "classification", "B": "regression"}
        if variant == "(previous default)":
            init: object = 0.0 if method == "uw" else 1.0
        elif variant == "(hand-initialised)":
            with torch.no_grad():
                logits, pred = net(x[order[:BATCH]])
                first = {
                    "A": float(F.cross_entropy(logits, y[order[:BATCH]])),
                    "B": float(F.mse_loss(pred, m[order[:BATCH]])),
                }
            init = hand_init(method, first)
        else:
            init = "auto"
        balancer = tb.create(method, tasks=tasks, init=init)
    groups: list[dict[str, object]] = [{"params": net.parameters(), "lr": 1e-3}]
    if balancer is not None:
        groups += balancer.param_groups(lr=0.1, betas=(0.9, 0.99))
    opt = torch.optim.Adam(groups)  # type: ignore[arg-type]
    for order in orders:
        for start in range(0, TRAIN, BATCH):
            rows = order[start : start + BATCH]
            logits, pred = net(x[rows])
            losses = {"A": F.cross_entropy(logits, y[rows]), "B": F.mse_loss(pred, m[rows])}
            opt.zero_grad()
            if balancer is not None:
                balancer.backward(losses)
            elif row == "classification alone":
                losses["A"].backward()
            else:  # plain sum
                (losses["A"] + losses["B"]).backward()
            opt.step()
    with torch.no_grad():
        logits, pred = net(x_te)
    acc = float((logits.argmax(1) == y_te).float().mean())
    rmse = float(F.mse_loss(pred, m_te).sqrt())
    return acc, rmse


ROWS = [
    "classification alone",
    "plain sum",
    "uw (previous default)",
    "uw-revised (previous default)",
    "uw (hand-initialised)",
    "uw-revised (hand-initialised)",
    "uw",
    "uw-revised",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    parser.add_argument("--readme", action="store_true", help="copy the result into README.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    d = data()
    start = time.perf_counter()
    results = {row: [run(row, s, d) for s in range(args.seeds)] for row in ROWS}
    lines = [
        f"Fashion-MNIST, 6,000 images, 4 epochs (376 steps), {args.seeds} seeds "
        f"({time.perf_counter() - start:.0f} s on 1 CPU thread)",
        "",
        "| run | accuracy (A) ↑ | RMSE of the mean pixel (B) ↓ |",
        "|---|---|---|",
    ]
    for row, runs in results.items():
        acc = [r[0] for r in runs]
        rmse = [r[1] for r in runs]
        b = (
            "—"
            if row == "classification alone"
            else f"{statistics.mean(rmse):.2f} ± {statistics.stdev(rmse):.2f}"
        )
        lines.append(f"| `{row}` | {statistics.mean(acc):.3f} ± {statistics.stdev(acc):.3f} | {b} |")
    text = "\n".join(lines) + "\n"
    publish(text, args.out, args.readme, "uwscales")


if __name__ == "__main__":
    main()
