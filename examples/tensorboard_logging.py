"""Log a balancer's weights, σ, gradient norms and cosines to TensorBoard.

    python examples/tensorboard_logging.py --method uw --logdir runs/uw
    tensorboard --logdir runs

Every balancer calls its step hooks with detached tensors; TensorBoardHook writes them
every ``--every`` steps (reading them from the device only then). Loss-based methods do
not form per-task gradients: taskbalance.monitor.task_gradient_stats computes them on
demand, here every ``--every`` steps.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.tensorboard import SummaryWriter

import taskbalance as tb
from taskbalance.monitor import TensorBoardHook, task_gradient_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="uw", choices=tb.methods())
    parser.add_argument("--logdir", default="runs/taskbalance")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.randn(512, 8)
    targets = {"clean": x[:, 0] + x[:, 1], "noisy": x[:, 0] - x[:, 2] + 3.0 * torch.randn(512)}
    encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
    heads = nn.ModuleDict({t: nn.Linear(32, 1) for t in targets})
    balancer = tb.create(args.method, tasks=list(targets))
    optimizer = torch.optim.Adam(
        [{"params": [*encoder.parameters(), *heads.parameters()]}, *balancer.param_groups(lr=1e-2)], lr=1e-2
    )

    writer = SummaryWriter(args.logdir)
    balancer.register_step_hook(TensorBoardHook(writer, every=args.every))
    for step in range(1, args.steps + 1):
        rows = torch.randint(0, 512, (64,))
        z = encoder(x[rows])
        losses = {t: F.mse_loss(heads[t](z).squeeze(1), y[rows]) for t, y in targets.items()}
        if balancer.kind == "loss" and step % args.every == 0:
            for tag, value in task_gradient_stats(losses, encoder.parameters()).items():
                writer.add_scalar(f"balancer/{tag}", float(value), step)
        optimizer.zero_grad()
        balancer.backward(losses, shared_params=encoder.parameters())
        optimizer.step()
    writer.close()
    print(f"wrote {args.steps // args.every} points per tag to {args.logdir}")


if __name__ == "__main__":
    main()
