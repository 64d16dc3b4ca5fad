"""The one-command device check: every method on a device, the suite's device switch, and cost.

    python benchmarks/gpu_check.py --device cuda          # or `make gpu-check`; < 10 minutes on a GPU
    python benchmarks/gpu_check.py --device cpu --quick   # what CI runs, so the script cannot rot

Three parts, one table each, and an exit status that is non-zero if anything failed:

1. **Every method on the device**: one training step of a small multi-task MLP per
   method, in float32 and under bfloat16 autocast, in parameter mode and (where the
   method has one) feature mode. A step passes when the weights are finite, every
   gradient is finite and on the device, and the float32 step's direction matches the
   same step on the CPU (cosine ≥ 0.999).
2. **The test suite on the device**: pytest with ``TASKBALANCE_TEST_DEVICE`` set, which
   makes ``tests/conftest.py`` call ``torch.set_default_device`` (``--quick``: one file).
3. **Cost**: step time and peak memory of upgrad and mgda in both modes, as ratios to the
   plain sum, on an MLP encoder of about 1.6 M parameters, batch 256, K = 3, 10, 40
   (``--quick``: a small MLP, K = 3, 10). Each configuration runs in a fresh process;
   peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the growth of the
   resident set size on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import taskbalance as tb
from taskbalance.cli import _table

ROOT = Path(__file__).resolve().parents[1]


def _net(inp: int, hidden: int, tasks: int) -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Linear(inp, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 256),
            )
            self.heads = nn.ModuleList(nn.Linear(256, 1) for _ in range(tasks))

    return Net()


def _losses(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    z = net.encoder(x)
    return z, [F.mse_loss(h(z).squeeze(1), y[:, i]) for i, h in enumerate(net.heads)]


def _step(name: str, mode: str, device: str, autocast: bool) -> tuple[bool, str, torch.Tensor | None]:
    """One step of ``name``; (passed, why not, the encoder's gradient on the CPU)."""
    torch.manual_seed(0)
    net = _net(16, 32, 3).to(device)
    # the method's bench keywords; distinct static weights, as the test suite's
    distinct = {"weights": [1.0, 0.5, 2.0]} if name == "static" else {}
    kwargs = {**tb.get_method(name).bench_kwargs, **distinct}
    balancer = tb.create(name, tasks=3, **kwargs).to(device)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 16, generator=g).to(device), torch.randn(32, 3, generator=g).to(device)
    try:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            z, losses = _losses(net, x, y)
        if balancer.kind == "loss":
            balancer.backward(losses)
        elif mode == "features":
            balancer.backward(losses, features=z)
        else:
            balancer.backward(losses, shared_params=net.encoder.parameters())
        if type(balancer).after_step is not tb.Balancer.after_step:
            with torch.no_grad():
                balancer.after_step(_losses(net, x, y)[1])
    except Exception as exc:  # every failure is reported in the table
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}", None
    weights = torch.stack([w.detach().float().cpu() for w in balancer.weights.values()])
    grads = [p.grad for p in net.encoder.parameters()]
    if not torch.isfinite(weights).all():
        return False, "non-finite weights", None
    if any(gr is None or gr.device.type != torch.device(device).type for gr in grads):
        return False, "a gradient is missing or on the wrong device", None
    flat = torch.cat([gr.detach().float().cpu().reshape(-1) for gr in grads if gr is not None])
    if not torch.isfinite(flat).all():
        return False, "non-finite gradient", None
    return True, "", flat


def part_methods(device: str) -> list[list[str]]:
    rows = [["method", "mode", "float32", "bf16 autocast", "cos to CPU"]]
    for name in tb.methods():
        kind = tb.get_method(name).kind
        modes = ["-"] if kind == "loss" else ["params"]
        if kind == "gradient" and getattr(tb.get_method(name), "supports_features", False):
            modes.append("features")
        for mode in modes:
            ok32, why32, g32 = _step(name, mode, device, autocast=False)
            ok16, why16, _ = _step(name, mode, device, autocast=True)
            cos = "-"
            if ok32 and g32 is not None:
                _, _, ref = _step(name, mode, "cpu", autocast=False)
                if ref is not None:
                    c = float(F.cosine_similarity(g32.double(), ref.double(), dim=0))
                    cos = f"{c:.6f}"
                    if not c >= 0.999:
                        ok32, why32 = False, f"direction differs from the CPU's (cos {c:.4f})"
            rows.append(
                [name, mode, "ok" if ok32 else f"FAIL {why32}", "ok" if ok16 else f"FAIL {why16}", cos]
            )
    return rows


#: the loss-based methods whose own tests (tests/methods/test_<name>.py) run on the device
DEVICE_METHOD_TESTS = ("equal", "static", "dwa", "rlw", "uw-so", "geometric", "stch", "famo")


def part_tests(device: str, quick: bool) -> list[list[str]]:
    files = ["tests/test_precision.py"]
    if not quick:
        files += [f"tests/methods/test_{m.replace('-', '_')}.py" for m in DEVICE_METHOD_TESTS]
    env = {**os.environ, "TASKBALANCE_TEST_DEVICE": device, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-x", *files]
    if quick:
        args += ["-k", "amp_step or reported_weights"]
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return [
        ["pytest on the device", "files", "result", "seconds"],
        ["TASKBALANCE_TEST_DEVICE=" + device, " ".join(files), summary, f"{time.perf_counter() - t0:.0f}"],
    ]


def _worker(config: dict[str, Any]) -> dict[str, float]:
    """One cost configuration in this (fresh) process: ms per step and peak extra bytes."""
    device, k, method, mode = config["device"], config["k"], config["method"], config["mode"]
    torch.manual_seed(0)
    net = _net(config["inp"], config["hidden"], k).to(device)
    x = torch.randn(config["batch"], config["inp"], device=device)
    y = torch.randn(config["batch"], k, device=device)
    balancer = None if method == "sum" else tb.create(method, tasks=k).to(device)

    def step() -> None:
        for p in net.parameters():
            p.grad = None
        z, losses = _losses(net, x, y)
        if balancer is None:
            torch.stack(losses).sum().backward()
        elif mode == "features":
            balancer.backward(losses, features=z)
        else:
            balancer.backward(losses, shared_params=net.encoder.parameters())

    # the peak is measured from here (model, data and balancer in place) over every step,
    # the warm-up included; the time over the steps after it
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()  # warm-up
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(config["steps"]):
        step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"ms": 1e3 * (time.perf_counter() - t0) / config["steps"], "peak": float(max(peak, 0))}


def part_cost(device: str, quick: bool) -> list[list[str]]:
    shape = (
        {"inp": 64, "hidden": 128, "batch": 64, "steps": 3}
        if quick
        else {"inp": 512, "hidden": 1024, "batch": 256, "steps": 20}
    )
    ks = (3, 10) if quick else (3, 10, 40)
    params = sum(p.numel() for p in _net(shape["inp"], shape["hidden"], 1).encoder.parameters())
    rows = [["K", "method", "mode", "ms/step", "× sum time", "peak MB", "× sum peak"]]
    for k in ks:
        configs = [("sum", "-")] + [(m, mode) for m in ("upgrad", "mgda") for mode in ("params", "features")]
        base: dict[str, float] = {}
        for method, mode in configs:
            cfg = {**shape, "device": device, "k": k, "method": method, "mode": mode}
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(cfg)],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            if proc.returncode != 0:
                rows.append([str(k), method, mode, "FAIL", proc.stderr.strip().splitlines()[-1][:60], "", ""])
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if method == "sum":
                base = r
            ratio_t = r["ms"] / base["ms"] if base else float("nan")
            ratio_m = r["peak"] / base["peak"] if base and base["peak"] > 0 else float("nan")
            rows.append(
                [
                    str(k),
                    method,
                    mode,
                    f"{r['ms']:.1f}",
                    f"{ratio_t:.2f}",
                    f"{r['peak'] / 2**20:.1f}",
                    f"{ratio_m:.2f}",
                ]
            )
    rows.insert(
        1, [f"encoder: {params / 1e6:.2f} M parameters, batch {shape['batch']}", "", "", "", "", "", ""]
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes: the CI run on the CPU")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    name = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "CPU"
    print(f"taskbalance {tb.__version__}, torch {torch.__version__}, device {args.device} ({name})\n")
    methods = part_methods(args.device)
    print(_table(methods) + "\n")
    tests = part_tests(args.device, args.quick)
    print(_table(tests) + "\n")
    cost = part_cost(args.device, args.quick)
    print(_table(cost) + "\n")
    failed = sum("FAIL" in " ".join(r) for r in methods + cost) + (
        " passed" not in tests[1][2] or "failed" in tests[1][2]
    )
    print(f"{'all passed' if not failed else f'{failed} FAILED'} in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
