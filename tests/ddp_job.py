"""A small multi-task training run, on one process or under ``torchrun`` with DDP.

Imported by tests/test_distributed.py for the single-process reference, and run by it as
``torchrun --nproc_per_node=2 tests/ddp_job.py OUT``: each rank trains on its half of
every global batch, and writes what it ended with to ``OUT/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

import taskbalance as tb

#: (method, mode) pairs run under DDP; the issue's list plus the generic feature path
CONFIGS: list[tuple[str, str]] = [
    ("uw", "params"),
    ("dwa", "params"),
    ("rlw", "params"),
    ("famo", "params"),
    ("gradnorm", "params"),
    ("mgda", "params"),
    ("mgda", "features"),
    ("pcgrad", "params"),
    ("nash-mtl", "params"),
    ("gradnorm", "features"),
    ("graddrop", "features"),
    ("stch", "params"),
    # DDP(find_unused_parameters=True), task "c" absent from every third global batch
    ("mgda", "features-unused"),
    ("uw", "params-unused"),
]
STEPS = 20
GLOBAL_BATCH = 16
EPOCH = 5  # steps per "epoch" (DWA's and STCH's epoch_end)
TASKS = {"a": "regression", "b": "regression", "c": "classification"}


class Net(nn.Module):
    """Shared encoder, three heads; returns the features and the task losses."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh())
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 1), "b": nn.Linear(8, 1), "c": nn.Linear(8, 3)})

    def forward(self, x: Tensor, y: Tensor, label: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.encoder(x)
        losses = {
            "a": F.mse_loss(self.heads["a"](z).squeeze(1), y[:, 0]),
            "b": F.mse_loss(self.heads["b"](z).squeeze(1), y[:, 1]) + 0.5,
            "c": F.cross_entropy(self.heads["c"](z), label),
        }
        return z, losses


def data() -> list[tuple[Tensor, Tensor, Tensor]]:
    """The global batches, the same on every rank."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(STEPS):
        x = torch.randn(GLOBAL_BATCH, 6, generator=g)
        y = torch.stack([x[:, 0] * 2 + 0.1 * torch.randn(GLOBAL_BATCH, generator=g), x[:, 1] ** 2], 1)
        out.append((x, y, (x[:, 2] > 0).long() + (x[:, 3] > 1).long()))
    return out


def build(method: str, seed: int, sync: bool = True) -> tuple[Net, tb.Balancer, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = Net()
    balancer = tb.create(method, tasks=TASKS, sync_dist=sync)
    opt = torch.optim.SGD(
        [{"params": model.parameters()}, *balancer.param_groups(lr=0.02)], lr=0.02, momentum=0.9
    )
    return model, balancer, opt


def train(
    method: str,
    mode: str,
    *,
    start: int = 0,
    stop: int = STEPS,
    state: dict[str, Any] | None = None,
    seed: int = 0,
    sync: bool = True,
) -> dict[str, Any]:
    """Train steps ``start``..``stop``; on every rank of the initialised group if any."""
    model, balancer, opt = build(method, seed, sync)
    if state is not None:
        model.load_state_dict(state["model"])
        balancer.load_state_dict(state["balancer"])
        opt.load_state_dict(state["opt"])
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    unused = mode.endswith("-unused")  # a task may be absent: its head is then unused
    net: nn.Module = (
        nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused) if world > 1 else model
    )
    shard = GLOBAL_BATCH // world
    weights = []
    for step, (x, y, label) in enumerate(data()[start:stop], start=start):
        rows = slice(rank * shard, (rank + 1) * shard)
        batch = (x[rows], y[rows], label[rows])
        opt.zero_grad()
        z, losses = net(*batch)
        if unused and step % 3 == 2:
            del losses["c"]
        if mode.startswith("features"):
            balancer.backward(losses, features=z)
        else:
            balancer.backward(losses, shared_params=model.encoder.parameters())
        opt.step()
        with torch.no_grad():
            balancer.after_step(net(*batch)[1])
        if (step + 1) % EPOCH == 0:
            balancer.epoch_end()
        weights.append(
            torch.stack([balancer.weights.get(t, torch.tensor(0.0)).float() for t in TASKS]).detach()
        )
    return {
        "params": torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
        "balancer": {k: v.clone() for k, v in balancer.state_dict().items() if isinstance(v, Tensor)},
        "weights": torch.stack(weights),
        "state": {"model": model.state_dict(), "balancer": balancer.state_dict(), "opt": opt.state_dict()},
    }


def fsdp_step(method: str, mode: str, sharded: bool) -> dict[str, Any]:
    """One step of a 2-task model whose encoder is sharded with FSDP2 (``fully_shard``).

    Returns the encoder's full gradient and the weights, or the error raised.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8))
    heads = nn.ModuleList([nn.Linear(8, 1), nn.Linear(8, 1)])
    x, y, _ = data()[0]
    balancer = tb.create(method, tasks=["a", "b"], sync_dist=sharded)
    if sharded:
        fully_shard(enc, mesh=init_device_mesh("cpu", (dist.get_world_size(),)))
        heads = nn.parallel.DistributedDataParallel(heads).module
        shard = GLOBAL_BATCH // dist.get_world_size()
        rows = slice(dist.get_rank() * shard, (dist.get_rank() + 1) * shard)
        x, y = x[rows], y[rows]
    z = enc(x)
    losses = {
        "a": F.mse_loss(heads[0](z).squeeze(1), y[:, 0]),
        "b": F.mse_loss(heads[1](z).squeeze(1), y[:, 1]),
    }
    try:
        if mode == "features":
            balancer.backward(losses, features=z)
        else:
            balancer.backward(losses, shared_params=enc.parameters())
    except ValueError as err:
        return {"error": str(err)}
    grads = [p.grad.full_tensor() if sharded else p.grad for p in enc.parameters()]  # type: ignore[union-attr]
    return {
        "grad": torch.cat([g.reshape(-1) for g in grads]),
        "weights": torch.stack(list(balancer.weights.values())),
    }


FSDP_CONFIGS = [("uw", "params"), ("mgda", "features"), ("mgda", "params")]


def main(out: Path) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))  # a hang fails, not stalls
    rank = dist.get_rank()
    results: dict[str, Any] = {}
    for method, mode in CONFIGS:
        full = train(method, mode)
        half = train(method, mode, stop=STEPS // 2)
        ckpt = out / f"{method}-{mode}.ckpt"
        if rank == 0:  # saved by one rank, loaded by all, as under DDP in practice
            torch.save(half["state"], ckpt)
        dist.barrier()
        resumed = train(method, mode, start=STEPS // 2, state=torch.load(ckpt, weights_only=False), seed=99)
        del full["state"]
        results[f"{method}/{mode}"] = {**full, "resumed": resumed["params"]}
    # the control: each rank balancing its own shard is NOT the single-process run
    unsynced = train("mgda", "params", sync=False)
    del unsynced["state"]
    results["unsynced"] = unsynced
    # FSDP2: loss-based methods and feature mode work; parameter mode is refused
    for method, mode in FSDP_CONFIGS:
        results[f"fsdp/{method}/{mode}"] = fsdp_step(method, mode, sharded=True)
    # evaluation on one rank only: no collective under no_grad, so no hang
    balancer = tb.create("dwa", tasks=TASKS)
    if rank == 0:
        with torch.no_grad():
            results["eval_alone"] = float(balancer({t: torch.tensor(1.0 + i) for i, t in enumerate(TASKS)}))
    dist.barrier()
    # a task present on one rank only: every rank must raise the same clear error
    balancer = tb.create("uw", tasks=TASKS)
    w = torch.ones(3, requires_grad=True)
    losses = {"a": w.sum(), "b": w.sum(), **({"c": w.sum()} if rank == 0 else {})}
    try:
        balancer(losses)
        results["partial"] = None
    except ValueError as err:
        results["partial"] = str(err)
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
