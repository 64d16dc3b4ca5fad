"""The runnable examples in examples/ run, and say what they should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import child_env

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
ENV = child_env(PYTHONPATH=str(ROOT / "src"))


def run(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.parametrize("method", ["uw", "famo", "nash-mtl"])
def test_plain_loop(method: str) -> None:
    out = run(str(EXAMPLES / "plain_loop.py"), "--method", method, "--steps", "60")
    weights = dict(re.findall(r"'(\w+)': ([\d.e-]+)", out))
    assert out.startswith(method) and set(weights) == {"clean", "noisy"}


def test_tensorboard_logging(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for method in ("uw", "mgda"):
        run(
            str(EXAMPLES / "tensorboard_logging.py"),
            "--method",
            method,
            "--logdir",
            str(tmp_path / method),
            "--steps",
            "20",
            "--every",
            "5",
        )
        events = EventAccumulator(str(tmp_path / method))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"balancer/weight/clean", "balancer/grad_norm/noisy", "balancer/cosine/clean,noisy"} <= tags
        assert len(events.Scalars("balancer/weight/noisy")) == 4
    assert "balancer/sigma/clean" in EventAccumulator(str(tmp_path / "uw")).Reload().Tags()["scalars"]


def test_ddp_under_torchrun(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.pt"
    out = run(
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(EXAMPLES / "ddp_torchrun.py"),
        "--method",
        "mgda",
        "--epochs",
        "1",
        "--checkpoint",
        str(ckpt),
    )
    lines = re.findall(r"rank (\d) epoch 0 weights (\{.*?\})", out)
    assert sorted(r for r, _ in lines) == ["0", "1"]
    assert lines[0][1] == lines[1][1], "the ranks must print the same weights"
    assert ckpt.is_file()


def test_lightning_example_under_ddp() -> None:
    out = run(
        str(EXAMPLES / "lightning_example.py"),
        "--method",
        "nash-mtl",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--epochs",
        "1",
    )
    assert re.search(r"nash-mtl \{'depth': [\d.]+, 'seg': [\d.]+\}", out)
