"""The two-objective toy: formulas at known points, every method runs, the plot is a PNG."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from taskbalance.bench.toy import STARTS, plot_toy, run_toy, toy_losses


def test_toy_formulas_at_hand_computed_points() -> None:
    # x2 > 0 large: c1 -> tanh, c2 = 0; x = (0, 10): f1 = log|(-7)/2 - tanh(-10)| + 6
    x = torch.tensor([0.0, 10.0], dtype=torch.float64)
    c1 = math.tanh(5.0)
    f1 = math.log(abs(-3.5 - math.tanh(-10.0))) + 6
    f2 = math.log(abs(1.5 + math.tanh(-10.0) + 2)) + 6
    got = toy_losses(x, scale=0.1)
    assert got.tolist() == pytest.approx([0.1 * c1 * f1, c1 * f2], rel=1e-12)
    # x2 < 0: only the quadratic terms
    x = torch.tensor([2.0, -4.0], dtype=torch.float64)
    c2 = math.tanh(2.0)
    g1 = ((-2 + 7) ** 2 + 0.1 * (4 - 8) ** 2) / 10 - 20
    g2 = ((-2 - 7) ** 2 + 0.1 * (4 - 8) ** 2) / 10 - 20
    assert toy_losses(x, scale=1.0).tolist() == pytest.approx([c2 * g1, c2 * g2], rel=1e-12)


def test_every_method_runs_on_the_toy_and_moves(any_method: str) -> None:
    path = run_toy(any_method, STARTS[0], steps=15)
    assert path.shape == (16, 2) and bool(torch.isfinite(path).all())
    assert float((path[-1] - path[0]).norm()) > 0


def test_plot_is_a_real_png(tmp_path: Path) -> None:
    out = tmp_path / "toy.png"
    plot_toy({m: [run_toy(m, s, steps=5) for s in STARTS[:2]] for m in ("equal", "mgda")}, str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    matplotlib_image = pytest.importorskip("matplotlib.image")
    img = matplotlib_image.imread(str(out))
    assert img.shape[0] > 100 and img.shape[1] > 100 and float(img.std()) > 0.05
