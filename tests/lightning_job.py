"""Train through taskbalance.lightning.BalancedModule with Lightning's Trainer.

Run by tests/test_lightning.py as ``python tests/lightning_job.py OUT DEVICES``: with
DEVICES=2 the Trainer uses ``strategy="ddp"`` on CPU and re-launches this script for
rank 1; every rank writes ``OUT/<method>-<mode>-rank<r>.pt``. With DEVICES=1 the same
run on one process, on batches twice as large, writes ``...-single.pt``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import taskbalance as tb

CONFIGS = [("uw", "params"), ("famo", "params"), ("mgda", "params"), ("mgda", "features")]
GLOBAL_BATCH = 16
TASKS = ["a", "b"]


def build(method: str, mode: str) -> Any:
    from taskbalance.lightning import BalancedModule

    class TwoTasks(BalancedModule):
        def __init__(self) -> None:
            super().__init__(tb.create(method, tasks=TASKS), lr=0.01, balancer_lr=0.01)
            self.encoder = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
            self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in TASKS})

        def task_losses(self, batch: Any) -> Any:
            x, y = batch
            z = self.encoder(x)
            losses = {t: F.mse_loss(self.heads[t](z).squeeze(1), y[:, i]) + 0.1 for i, t in enumerate(TASKS)}
            return (losses, z) if mode == "features" else losses

        def shared_parameters(self) -> Any:
            return self.encoder.parameters()

        def train_dataloader(self) -> DataLoader[Any]:
            # rank r takes samples r, r + R, ...: together the ranks' batches are the global batch
            world = self.trainer.world_size
            sampler = DistributedSampler(data(), world, self.trainer.global_rank, shuffle=False)
            return DataLoader(data(), batch_size=GLOBAL_BATCH // world, sampler=sampler)

    return TwoTasks()


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10 * GLOBAL_BATCH, 4, generator=g)
    y = torch.stack([x[:, 0] - x[:, 1], x[:, 2] ** 2], 1)
    return TensorDataset(x, y)


def trainer(**options: Any) -> Any:
    """A CPU Trainer without logger, checkpoints, progress bar or model summary."""
    import lightning.pytorch as pl

    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


def main(out: Path, devices: int) -> None:
    warnings.filterwarnings("ignore")
    for method, mode in CONFIGS:
        torch.manual_seed(0)
        model = build(method, mode)
        start = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        run = trainer(
            devices=devices,
            strategy="ddp" if devices > 1 else "auto",
            max_epochs=2,
            use_distributed_sampler=False,
        )
        run.fit(model)
        params: Tensor = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        who = f"rank{run.global_rank}" if devices > 1 else "single"
        weights = torch.stack([model.balancer.weights[t] for t in TASKS])
        torch.save({"params": params, "start": start, "weights": weights}, out / f"{method}-{mode}-{who}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
