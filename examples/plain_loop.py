"""A plain PyTorch training loop with a balancer: the drop-in change.

    python examples/plain_loop.py --method uw
    python examples/plain_loop.py --method nash-mtl

Two regression tasks with different noise on a shared encoder. Switching the method
changes one string; the loop calls every hook, so it runs every method.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import taskbalance as tb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="uw", choices=tb.methods())
    parser.add_argument("--steps", type=int, default=200)
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

    def losses(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        z = encoder(x[rows])
        return {t: F.mse_loss(heads[t](z).squeeze(1), y[rows]) for t, y in targets.items()}

    for step in range(args.steps):
        rows = torch.randint(0, 512, (64,))
        optimizer.zero_grad()
        balancer.backward(losses(rows), shared_params=encoder.parameters())  # every method
        optimizer.step()
        with torch.no_grad():
            balancer.after_step(losses(rows))  # FAMO's post-step update; a no-op elsewhere
        if (step + 1) % 50 == 0:
            balancer.epoch_end()  # DWA's and STCH's per-epoch statistics; a no-op elsewhere
    print(args.method, {t: round(float(w), 3) for t, w in balancer.weights.items()})


if __name__ == "__main__":
    main()
