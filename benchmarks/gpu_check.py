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
3. **Cost**: ``benchmarks/gramian_memory.py``'s benchmark on the device: step time and
   peak memory of upgrad and mgda in both modes, and of TorchJD 0.18's autojac and
   autogram paths, as ratios to the plain sum, on the MLP encoder (1.6 M parameters,
   batch 256) and ResNet-18 with GroupNorm (11.2 M, 32 × 32 inputs, batch 64) at
   K = 3, 10, 40 (``--quick``: the MLP at K = 3 and 10, taskbalance's paths). Each
   configuration runs in a fresh process; peak memory is
   ``torch.cuda.max_memory_allocated`` on a GPU and the growth of the resident set size
   on the CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

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


def part_cost(device: str, quick: bool) -> tuple[list[str], int]:
    """The parameter-mode benchmark (``benchmarks/gramian_memory.py``'s workers) on the
    device: the MLP and ResNet-18 at K = 3, 10, 40 against the plain sum and TorchJD
    (``--quick``: the MLP at K = 3 and 10, taskbalance's paths only)."""
    import gramian_memory as gm

    if quick:
        paths = [p for p in gm.PATHS if not p[0].startswith("torchjd")]
        return gm.table(["mlp"], [3, 10], 64, 2, device, paths)
    return gm.table(["mlp", "resnet18"], [3, 10, 40], 64, 3, device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes: the CI run on the CPU")
    args = parser.parse_args()
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
    cost, cost_failed = part_cost(args.device, args.quick)
    print("\n".join(cost) + "\n")
    failed = (
        sum("FAIL" in " ".join(r) for r in methods)
        + cost_failed
        + (" passed" not in tests[1][2] or "failed" in tests[1][2])
    )
    print(f"{'all passed' if not failed else f'{failed} FAILED'} in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
