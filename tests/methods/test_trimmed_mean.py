"""Coordinate-wise trimmed mean.

The definition against a direct per-coordinate computation, the reported weights, the
degraded cases, feature mode (each sample trimmed on its own), and the agreement with
TorchJD 0.18's ``TrimmedMean`` on every matrix family and scale.
"""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..properties import finite, matrices, representable, scaled
from .common import compare, cross_jacobians

aggregation = pytest.importorskip("torchjd.aggregation", reason="the test command installs torchjd")

F64 = torch.float64
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SCALED = scaled(matrices(sizes=((3, 7), (5, 3), (10, 4)), seed=1))


def _trimmed(jac: torch.Tensor, **kw: int) -> tuple[torch.Tensor, torch.Tensor]:
    d, w = tb.create("trimmed-mean", tasks=jac.shape[0], **kw).aggregate(jac)  # type: ignore[attr-defined]
    return d, w


@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_each_coordinate_drops_its_t_extremes(t: int) -> None:
    g = torch.Generator().manual_seed(t)
    for k in range(2 * t + 1, 10):
        jac = torch.randn(k, 12, generator=g, dtype=F64)
        d, w = _trimmed(jac, trim_number=t)
        for n in range(jac.shape[1]):
            col = sorted(jac[:, n].tolist())
            assert float(d[n]) == pytest.approx(sum(col[t : k - t]) / (k - 2 * t), rel=1e-12, abs=1e-15)
        # weight i = ⟨dᵢ, gᵢ⟩/‖gᵢ‖²: the kept share of its squared gradient, over K - 2t
        lo, hi = torch.sort(jac, 0).values[t], torch.sort(jac, 0).values[k - t - 1]
        kept = (jac >= lo) & (jac <= hi)
        want = (jac * jac * kept).sum(1) / (jac * jac).sum(1) / (k - 2 * t)
        torch.testing.assert_close(w, want)


def test_median_of_three_ignores_one_extreme_task() -> None:
    jac = torch.tensor([[1.0, 2.0], [1.5, 1.0], [1e6, -1e6]], dtype=F64)
    d, _ = _trimmed(jac)  # default: t = 1 with three tasks
    torch.testing.assert_close(d, torch.tensor([1.5, 1.0], dtype=F64))


def test_defaults_and_fewer_tasks_present() -> None:
    assert tb.create("trimmed-mean", tasks=2).trim_number == 0  # type: ignore[attr-defined]
    assert tb.create("trimmed-mean", tasks=5).trim_number == 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="trim_number"):
        tb.create("trimmed-mean", tasks=4, trim_number=2)
    w = torch.zeros(2, requires_grad=True)
    b = tb.create("trimmed-mean", tasks=["a", "b", "c", "d", "e"], trim_number=2)
    ga, gb = torch.tensor([1.0, 3.0]), torch.tensor([2.0, -1.0])
    b.backward({"a": w @ ga, "b": w @ gb}, shared_params=[w])  # two present: t -> 0, the mean
    torch.testing.assert_close(w.grad, (ga + gb) / 2)


def test_feature_mode_trims_each_sample_on_its_own() -> None:
    z = torch.tensor([[1.0], [2.0]], requires_grad=True)  # 2 samples, 1 feature
    scales = torch.tensor([[1.0, 10.0], [2.0, -5.0], [3.0, 0.0]])  # task i, sample s
    losses = [(scales[i] * z[:, 0]).sum() for i in range(3)]
    tb.create("trimmed-mean", tasks=3).backward(losses, features=z)
    torch.testing.assert_close(z.grad, torch.tensor([[2.0], [0.0]]))  # per-sample medians


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_finite_on_every_family_and_scale(dtype: torch.dtype) -> None:
    failures = []
    for case in matrices() + SCALED:
        if not representable(case.jac, dtype):
            continue
        d, w = _trimmed(case.jac.to(dtype))
        msg = finite(case, d, w, dtype, 0.0)
        if msg:
            failures.append(f"{case.id}: {msg}")
    assert not failures, "; ".join(failures[:8])


@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_agrees_with_torchjd(t: int) -> None:
    """Identical directions to TorchJD's ``TrimmedMean`` (the same sort, narrow and mean)
    on the 60 random Jacobians of the TorchJD cross-checks (tests/helpers.py), every matrix family and every
    scale from 0 to 1e15."""
    jacs = [
        j
        for j in cross_jacobians(max_tasks=10, min_tasks=1) + [c.jac for c in SCALED]
        if j.shape[0] >= 2 * t + 1
    ]
    agreement = compare(
        lambda j: _trimmed(j, trim_number=t)[0], lambda j: aggregation.TrimmedMean(trim_number=t)(j), jacs
    )
    assert agreement.cos >= 0.999 and agreement.ratio <= 1e-12, agreement
