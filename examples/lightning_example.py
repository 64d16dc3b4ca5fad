"""Lightning: subclass BalancedModule, write task_losses, pick a method by name.

    python examples/lightning_example.py --method uw
    python examples/lightning_example.py --method nash-mtl --devices 2 --strategy ddp

Loss-based methods train with automatic optimisation, gradient-based ones with manual
optimisation; BalancedModule chooses. The balancer's weights are logged every step.
"""

from __future__ import annotations

import argparse
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import taskbalance as tb
from taskbalance.lightning import BalancedModule


class DepthAndSegmentation(BalancedModule):
    def __init__(self, method: str) -> None:
        super().__init__(tb.create(method, tasks={"depth": "regression", "seg": "classification"}), lr=1e-3)
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.depth = nn.Linear(32, 1)
        self.seg = nn.Linear(32, 3)

    def task_losses(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y, label = batch
        z = self.encoder(x)
        return {"depth": F.mse_loss(self.depth(z).squeeze(1), y), "seg": F.cross_entropy(self.seg(z), label)}

    def shared_parameters(self) -> Any:  # what a gradient-based method balances
        return self.encoder.parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="uw", choices=tb.methods())
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.randn(1024, 8)
    data = TensorDataset(
        x, x[:, 0] * 2 + 0.1 * torch.randn(1024), (x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    )
    model = DepthAndSegmentation(args.method)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, DataLoader(data, batch_size=32, shuffle=True))
    if trainer.global_rank == 0:
        print(args.method, {t: round(float(w), 4) for t, w in model.balancer.weights.items()})


if __name__ == "__main__":
    main()
