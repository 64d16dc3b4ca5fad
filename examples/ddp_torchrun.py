"""Data-parallel training with DistributedDataParallel, under torchrun.

    torchrun --nproc_per_node=2 examples/ddp_torchrun.py --method mgda
    torchrun --nproc_per_node=2 examples/ddp_torchrun.py --method uw --checkpoint /tmp/ckpt.pt

Nothing in the loop is specific to taskbalance: wrap the model in DDP as usual and
give each rank its shard. The balancer notices torch.distributed and balances the
global batch, so every rank computes the same weights and the run equals one process
on the global batch. Use ``--backend nccl`` and one GPU per process on GPUs.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import taskbalance as tb


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.heads = nn.ModuleDict({"depth": nn.Linear(32, 1), "seg": nn.Linear(32, 3)})

    def forward(self, x: torch.Tensor, y: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        return {
            "depth": F.mse_loss(self.heads["depth"](z).squeeze(1), y),
            "seg": F.cross_entropy(self.heads["seg"](z), label),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="mgda", choices=tb.methods())
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--checkpoint", default=None, help="save model, optimiser and balancer here")
    args = parser.parse_args()

    dist.init_process_group(args.backend)
    rank = dist.get_rank()
    device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if args.backend == "nccl" else "cpu")

    torch.manual_seed(0)  # the same data and initial weights on every rank
    x = torch.randn(1024, 8)
    data = TensorDataset(
        x, x[:, 0] * 2 + 0.1 * torch.randn(1024), (x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    )
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=32, sampler=sampler)

    model = Net().to(device)
    ddp = nn.parallel.DistributedDataParallel(model)
    balancer = tb.create(args.method, tasks={"depth": "regression", "seg": "classification"}).to(device)
    optimizer = torch.optim.Adam([{"params": model.parameters()}, *balancer.param_groups(lr=1e-2)], lr=1e-3)

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for x_b, y_b, label_b in loader:
            batch = (x_b.to(device), y_b.to(device), label_b.to(device))
            optimizer.zero_grad()
            balancer.backward(ddp(*batch), shared_params=model.encoder.parameters())
            optimizer.step()
            with torch.no_grad():
                balancer.after_step(ddp(*batch))
        balancer.epoch_end()
        weights = {t: round(float(w), 4) for t, w in balancer.weights.items()}
        print(f"rank {rank} epoch {epoch} weights {weights}", flush=True)

    if args.checkpoint and rank == 0:  # one rank saves; every rank loads the same file to resume
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "balancer": balancer.state_dict(),
        }
        torch.save(state, args.checkpoint)
    # Every rank waits here, so no rank tears the process group down while another
    # still uses it (gloo may abort a rank that leaves first).
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
