"""`make gpu-check` runs end to end on the CPU (`--device cpu --quick`), so it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import taskbalance as tb

from .helpers import DEVICE, child_env

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert out.rstrip().splitlines()[-1].startswith("all passed")
    for name in tb.methods():  # every method, float32 and bf16 autocast, both modes
        assert any(
            line.split()[:1] == [name] and line.count(" ok ") + line.endswith(" ok")
            for line in out.splitlines()
        )
    assert "passed" in out and "TASKBALANCE_TEST_DEVICE=cpu" in out
    for mode in ("params", "features"):  # the cost table has both modes at K = 10
        assert any(line.startswith(f"| mlp | 10 | tb {mode} | upgrad | ") for line in out.splitlines())


def test_the_suite_runs_on_the_device_it_is_given() -> None:
    import torch

    assert torch.empty(1).device.type == DEVICE.type
