"""Parameter mode at model scale: peak memory and step time against the plain sum and TorchJD 0.18.

    python benchmarks/gramian_memory.py [--models mlp,resnet18] [--ks 3,10,40] [--width 64]
                                        [--device cpu] [--steps N] [--out FILE] [--readme]

Two shared encoders, each with K linear heads and MSE losses:

- ``mlp``: 400-1024-1024-128 (1.59 M parameters), batch 256;
- ``resnet18``: ResNet-18 (basic blocks 2-2-2-2, 3 × 3 stem for 32 × 32 inputs) with
  GroupNorm (gcd(32, channels) groups) in place of BatchNorm, base width ``--width``
  (64: the standard 11.2 M parameters), batch 64.

Each configuration runs in a fresh process, one K at a time, all paths interleaved:

- ``sum``: ``torch.stack(losses).sum().backward()``;
- ``tb params``: ``balancer.backward(losses, shared_params=encoder.parameters())``
  (the Gramian engine: per-parameter blocks of per-task gradients are added to the
  K × K Gramian in float64 and combined with the weights; J is never concatenated);
- ``tb features``: ``balancer.backward(losses, features=z)``;
- ``torchjd autojac``: ``mtl_backward(losses, features=z)`` + ``jac_to_grad(encoder
  parameters, aggregator)``;
- ``torchjd autogram``: ``Engine(encoder, batch_dim=None).compute_gramian(losses)``, the
  method's weighting, then ``losses.backward(weights)``.

Peak memory is the growth over the steps, from the state with model, data and balancer
in place: of the resident set size (``ru_maxrss``) on the CPU, of
``torch.cuda.max_memory_allocated`` on a GPU. Time is the median step after one
warm-up. Both are given as ratios to the plain sum's. ``benchmarks/gpu_check.py`` runs
the same workers on a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from readme_block import parser as readme_parser
from readme_block import publish
from torch import nn

MLP_SIZES = (400, 1024, 1024, 128)
BATCH = {"mlp": 256, "resnet18": 64}
#: timed steps after the warm-up (ResNet-18 at K = 40 takes over a minute a step on one CPU thread)
STEPS = {"mlp": 5, "resnet18": 2}


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class _Block(nn.Module):
    """ResNet's basic block with GroupNorm."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout)
        self.shortcut = (
            nn.Sequential()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


def resnet18(width: int = 64) -> nn.Sequential:
    """ResNet-18 for 32 × 32 inputs (3 × 3 stem, no max-pool) with GroupNorm; features
    of size 8 × ``width``."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), _norm(width), nn.ReLU()]
    cin = width
    for stage, mult in enumerate((1, 2, 4, 8)):
        for j in range(2):
            layers.append(_Block(cin, width * mult, 2 if stage > 0 and j == 0 else 1))
            cin = width * mult
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def mlp() -> nn.Sequential:
    """The MLP encoder 400-1024-1024-128."""
    a, b, c, d = MLP_SIZES
    return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c), nn.ReLU(), nn.Linear(c, d))


def build(
    model: str, k: int, width: int, device: str
) -> tuple[nn.Module, nn.ModuleList, torch.Tensor, torch.Tensor]:
    """The encoder, K heads, and one batch of inputs and targets, on ``device``."""
    torch.manual_seed(0)
    encoder = mlp() if model == "mlp" else resnet18(width)
    features = MLP_SIZES[-1] if model == "mlp" else 8 * width
    heads = nn.ModuleList(nn.Linear(features, 1) for _ in range(k))
    shape = (MLP_SIZES[0],) if model == "mlp" else (3, 32, 32)
    x, y = torch.randn(BATCH[model], *shape), torch.randn(BATCH[model], k)
    return encoder.to(device), heads.to(device), x.to(device), y.to(device)


def worker(cfg: dict[str, Any]) -> dict[str, float]:
    """One configuration in this (fresh) process: median ms per step and peak extra MB."""
    torch.set_num_threads(1)
    k, kind, method, device = cfg["k"], cfg["kind"], cfg["method"], cfg.get("device", "cpu")
    encoder, heads, x, y = build(cfg["model"], k, cfg.get("width", 64), device)
    if kind.startswith("tb"):
        import taskbalance as tb

        balancer = tb.create(method, tasks=k).to(device)
    elif kind.startswith("torchjd"):
        from torchjd import aggregation as agg
        from torchjd.autogram import Engine
        from torchjd.autojac import jac_to_grad, mtl_backward

        aggregator = {"upgrad": agg.UPGrad, "mgda": agg.MGDA}[method]()
        weighting = {"upgrad": agg.UPGradWeighting, "mgda": agg.MGDAWeighting}[method]()
        engine = Engine(encoder, batch_dim=None) if kind == "torchjd autogram" else None

    def step() -> None:
        for p in [*encoder.parameters(), *heads.parameters()]:
            p.grad = None
        z = encoder(x)
        losses = [F.mse_loss(h(z).squeeze(1), y[:, i]) for i, h in enumerate(heads)]
        if kind == "sum":
            torch.stack(losses).sum().backward()
        elif kind == "tb params":
            balancer.backward(losses, shared_params=encoder.parameters())
        elif kind == "tb features":
            balancer.backward(losses, features=z)
        elif kind == "torchjd autojac":
            mtl_backward(losses, features=z)
            jac_to_grad(list(encoder.parameters()), aggregator)
        else:
            stacked = torch.stack(losses)
            stacked.backward(weighting(engine.compute_gramian(stacked)))

    cuda = torch.device(device).type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()
    times = []
    for _ in range(cfg["steps"]):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"ms": 1e3 * statistics.median(times), "mb": max(peak, 0) / 2**20}


PATHS = [
    ("sum", "-"),
    ("tb params", "upgrad"),
    ("torchjd autojac", "upgrad"),
    ("torchjd autogram", "upgrad"),
    ("tb features", "upgrad"),
    ("tb params", "mgda"),
    ("torchjd autojac", "mgda"),
    ("torchjd autogram", "mgda"),
    ("tb features", "mgda"),
]


def run_one(cfg: dict[str, Any]) -> dict[str, float] | str:
    """``cfg`` in a fresh process: its result, or the last line of its error."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:80]
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def table(
    models: list[str],
    ks: list[int],
    width: int,
    steps: int | None,
    device: str,
    paths: list[tuple[str, str]] = PATHS,
) -> tuple[list[str], int]:
    """The Markdown rows of every model × K × path (ratios to the plain sum) and the
    number of configurations that failed."""
    rows = [
        "| model | K | path | method | peak memory × sum | step time × sum |",
        "|---|---|---|---|---|---|",
    ]
    failed = 0
    for model in models:
        for k in ks:
            base: dict[str, float] | None = None
            for kind, method in paths:
                cfg = {"model": model, "k": k, "kind": kind, "method": method, "steps": steps or STEPS[model]}
                r = run_one({**cfg, "width": width, "device": device})
                if isinstance(r, str):
                    failed += 1
                    rows.append(f"| {model} | {k} | {kind} | {method} | FAIL: {r} | |")
                elif kind == "sum":
                    base = r
                    rows.append(f"| {model} | {k} | plain sum | - | {r['mb']:.0f} MB | {r['ms']:.1f} ms |")
                elif base is not None:
                    rows.append(
                        f"| {model} | {k} | {kind} | {method} | {r['mb'] / max(base['mb'], 1e-9):.2f} "
                        f"| {r['ms'] / base['ms']:.2f} |"
                    )
    return rows, failed


def main() -> None:
    parser = readme_parser(__doc__)
    parser.add_argument("--models", default="mlp,resnet18")
    parser.add_argument("--ks", default="3,10,40")
    parser.add_argument("--width", type=int, default=64, help="ResNet-18's base width (64: the standard one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default: 5 for the MLP, 2 for ResNet-18)"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    t0 = time.perf_counter()
    models, ks = args.models.split(","), [int(v) for v in args.ks.split(",")]
    rows, failed = table(models, ks, args.width, args.steps, args.device)
    sizes = {
        "mlp": f"MLP {'-'.join(map(str, MLP_SIZES))} (1.59 M parameters), batch {BATCH['mlp']}",
        "resnet18": f"ResNet-18 with GroupNorm, width {args.width} "
        f"({sum(p.numel() for p in resnet18(args.width).parameters()) / 1e6:.1f} M parameters), "
        f"32 × 32 inputs, batch {BATCH['resnet18']}",
    }
    where = "1 CPU thread" if args.device == "cpu" else args.device
    head = (
        f"{'; '.join(sizes[m] for m in models)}. torch {torch.__version__}, {where}, the median step time "
        f"after a warm-up ({', '.join(f'{m}: {args.steps or STEPS[m]} steps' for m in models)}), each "
        "configuration in a fresh process "
        f"({time.perf_counter() - t0:.0f} s in all). Peak memory growth and step time as ratios to "
        "the plain sum's (its absolute values in the first row of each model and K):"
    )
    publish("\n".join([head, "", *rows]) + "\n", args.out, args.readme, "gramianmem")
    if failed:
        raise SystemExit(f"{failed} configurations failed")


if __name__ == "__main__":
    main()
