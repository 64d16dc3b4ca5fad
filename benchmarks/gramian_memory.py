"""Parameter mode at model scale: peak memory and step time against the plain sum and TorchJD 0.18.

    python benchmarks/gramian_memory.py [--ks 3,10,40] [--steps 5] [--out FILE] [--readme]

An MLP encoder 400-1024-1024-128 (1.59 M parameters), batch 256, K linear heads with
MSE losses. Each configuration runs in a fresh process (interleaved, in one run):

- ``sum``: ``torch.stack(losses).sum().backward()``;
- ``tb <method> params``: ``balancer.backward(losses, shared_params=encoder.parameters())``
  (the Gramian engine: the per-parameter blocks of per-task gradients are added to the
  K × K Gramian in float64 and combined with the weights; J is never concatenated);
- ``tb <method> features``: ``balancer.backward(losses, features=z)``;
- ``torchjd autojac``: ``mtl_backward(losses, features=z)`` + ``jac_to_grad(encoder
  parameters, aggregator)``;
- ``torchjd autogram``: ``Engine(encoder, batch_dim=None).compute_gramian(losses)``, the
  method's weighting, then ``losses.backward(weights)``.

Peak memory is the growth of the resident set size (``ru_maxrss``) over the steps, from
the state with model, data and balancer in place; time is the median step after one
warm-up. Both are given as ratios to the plain sum's.
"""

from __future__ import annotations

import argparse
import json
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

INPUT, HIDDEN, FEATURES, BATCH = 400, 1024, 128, 256


def _worker(cfg: dict[str, Any]) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    k, kind, method = cfg["k"], cfg["kind"], cfg["method"]
    encoder = nn.Sequential(
        nn.Linear(INPUT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, FEATURES)
    )
    heads = nn.ModuleList(nn.Linear(FEATURES, 1) for _ in range(k))
    x, y = torch.randn(BATCH, INPUT), torch.randn(BATCH, k)
    step: Any
    if kind.startswith("tb"):
        import taskbalance as tb

        balancer = tb.create(method, tasks=k)
    elif kind.startswith("torchjd"):
        from torchjd import aggregation as agg
        from torchjd.autogram import Engine
        from torchjd.autojac import jac_to_grad, mtl_backward

        aggregator = {"upgrad": agg.UPGrad, "mgda": agg.MGDA}[method]()
        weighting = {"upgrad": agg.UPGradWeighting, "mgda": agg.MGDAWeighting}[method]()
        engine = Engine(encoder, batch_dim=None) if kind == "torchjd autogram" else None

    def losses_of() -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = encoder(x)
        return z, [F.mse_loss(h(z).squeeze(1), y[:, i]) for i, h in enumerate(heads)]

    def step() -> None:
        for p in [*encoder.parameters(), *heads.parameters()]:
            p.grad = None
        z, losses = losses_of()
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
            gramian = engine.compute_gramian(stacked)
            stacked.backward(weighting(gramian))

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()
    times = []
    for _ in range(cfg["steps"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"ms": 1e3 * statistics.median(times), "mb": peak / 2**20}


CONFIGS = [
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


def main() -> None:
    parser = readme_parser(__doc__)
    parser.add_argument("--ks", default="3,10,40")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    t0 = time.perf_counter()
    ks = [int(v) for v in args.ks.split(",")]
    results: dict[tuple[int, str, str], dict[str, float]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ks:  # interleaved: every configuration of one K, then the next K
        for kind, method in CONFIGS:
            cfg = {"k": k, "kind": kind, "method": method, "steps": args.steps}
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(cfg)],
                capture_output=True,
                text=True,
                env=env,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{cfg}: {proc.stderr.strip().splitlines()[-1]}")
            results[(k, kind, method)] = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = [
        f"MLP encoder {INPUT}-{HIDDEN}-{HIDDEN}-{FEATURES} (1.59 M parameters), batch {BATCH}, torch "
        f"{torch.__version__}, 1 CPU thread, {args.steps} steps after a warm-up, each configuration in a "
        f"fresh process ({time.perf_counter() - t0:.0f} s). Peak memory growth and median step time, "
        "as ratios to the plain sum's (its absolute values in the first row of each K):",
        "",
        "| K | path | method | peak memory × sum | step time × sum |",
        "|---|---|---|---|---|",
    ]
    for k in ks:
        base = results[(k, "sum", "-")]
        lines.append(f"| {k} | plain sum | - | {base['mb']:.0f} MB | {base['ms']:.1f} ms |")
        for kind, method in CONFIGS[1:]:
            r = results[(k, kind, method)]
            lines.append(
                f"| {k} | {kind} | {method} | {r['mb'] / base['mb']:.2f} | {r['ms'] / base['ms']:.2f} |"
            )
    publish("\n".join(lines) + "\n", args.out, args.readme, "gramianmem")


if __name__ == "__main__":
    main()
