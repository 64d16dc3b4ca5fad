"""Property-based tests of the contract, over every registered method (hypothesis).

Random task declarations, random loss inputs (types, shapes, dtypes from float16 to
float64, NaN, inf, negative, zero, 1e-30, 1e30, missing, extra and None entries) and
random call orders (steps, evaluation, epoch_end, after_step, state round trips, loading
another method's or task set's state). Every call must end in one of two ways:

* a named error: an exception raised by taskbalance itself (its last frame is in the
  package, not inside torch), whose message names a task, an argument or the fix;
* a finite result: a finite total and finite weights, and no NaN in any ``.grad``.

CI runs the "ci" profile (fixed seed, about a minute); ``HYPOTHESIS_PROFILE=dev``
runs ten times as many examples locally.
"""

from __future__ import annotations

import math
import os
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

import taskbalance as tb

settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile("dev", max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PACKAGE = str(Path(tb.__file__).parent)
SPECIAL = [0.0, -1.0, 1e-30, 1e30, 1e-6, 2.0, 0.5, math.nan, math.inf, -math.inf, 3.0]
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
NAMES = ["a", "b", "c", "d"]


@st.composite
def declarations(draw: st.DrawFn) -> tuple[Any, list[str]]:
    k = draw(st.integers(1, 4))
    names = NAMES[:k]
    form = draw(st.sampled_from(["list", "mapping", "count"]))
    if form == "count":
        return k, [str(i) for i in range(k)]
    if form == "list":
        return names, names
    kinds = draw(st.lists(st.sampled_from(["regression", "classification"]), min_size=k, max_size=k))
    return dict(zip(names, kinds)), names


@st.composite
def loss_inputs(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """A loss dict with possible defects: values, dtypes, None, missing, extra, wrong kinds."""
    dtype = draw(st.sampled_from(DTYPES))
    out: dict[str, Any] = {}
    for n in names:
        kind = draw(st.sampled_from(["value"] * 24 + ["none", "missing", "int", "vector", "detached"]))
        value = draw(st.floats(1e-3, 1e3) | st.floats(1e-3, 1e3) | st.sampled_from(SPECIAL))
        if kind == "missing":
            continue
        out[n] = {"kind": kind, "value": value, "dtype": dtype}
    if draw(st.booleans()) and draw(st.booleans()):
        out["zz-extra"] = {"kind": "value", "value": 1.0, "dtype": dtype}
    return out


def build(spec: dict[str, Any], w: torch.Tensor, c: torch.Tensor) -> dict[str, Any]:
    """Turn a loss spec into tensors that depend on the shared parameter ``w``."""
    losses: dict[str, Any] = {}
    for i, (n, s) in enumerate(spec.items()):
        kind, v, dtype = s["kind"], s["value"], s["dtype"]
        base = (w.to(dtype) * c[i % len(c)].to(dtype)).sum() * 0.1 + torch.tensor(v, dtype=dtype)
        if kind == "value":
            losses[n] = base
        elif kind == "none":
            losses[n] = None
        elif kind == "int":
            losses[n] = 3
        elif kind == "vector":
            losses[n] = base.expand(2)
        else:  # detached
            losses[n] = base.detach()
    return losses


ACTIONS = ["step", "step", "features", "eval", "epoch_end", "after_step", "roundtrip", "load_other"]


def ours(exc: BaseException) -> bool:
    """Raised by taskbalance itself (its last frame in the package), with a message."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PACKAGE) and len(str(exc)) > 10


@given(
    method=st.sampled_from(tb.methods()),
    decl=declarations(),
    data=st.data(),
    actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=6),
)
def test_every_call_ends_in_a_named_error_or_a_finite_result(
    method: str, decl: tuple[Any, list[str]], data: st.DataObject, actions: list[str]
) -> None:
    tasks, names = decl
    b = tb.create(method, tasks=tasks, **tb.get_method(method).bench_kwargs)  # for any number of tasks
    g = torch.Generator().manual_seed(0)
    w = nn.Parameter(torch.randn(3, generator=g))
    c = torch.randn(4, 3, generator=g)
    for action in actions:
        spec = data.draw(loss_inputs(names))
        try:
            run(action, b, spec, w, c, names)
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            assert ours(exc), f"{method} {action}: an error from inside torch: {exc!r}"
            event(f"named error in {action}")
            continue
        event(f"finite result of {action}")
        assert w.grad is None or not bool(torch.isnan(w.grad).any()), f"{method} {action}: NaN in .grad"
        for p in b.parameters():
            assert p.grad is None or not bool(torch.isnan(p.grad).any()), f"{method}: NaN in its own .grad"
        weights = b.weights
        assert all(bool(torch.isfinite(v).all()) for v in weights.values()), f"{method} {action}: {weights}"


def run(
    action: str, b: tb.Balancer, spec: dict[str, Any], w: nn.Parameter, c: torch.Tensor, names: list[str]
) -> None:
    if action == "epoch_end":
        b.epoch_end()
        return
    if action == "roundtrip":
        state = b.state_dict()
        b.load_state_dict(state)
        return
    if action == "load_other":
        other = tb.create("uw", tasks=names[::-1] if len(names) > 1 else ["other"])
        b.load_state_dict(other.state_dict())
        return
    w.grad = None
    if action == "features":  # gradients w.r.t. a shared representation z
        z = torch.tanh(w * 1.5)
        b.backward(build(spec, z, c), features=z)
        return
    losses = build(spec, w, c)
    if action == "eval":
        with torch.no_grad():
            total = b(losses) if b.kind == "loss" else None
        assert total is None or math.isfinite(float(total)) or b.skipped
        return
    if action == "after_step":
        with torch.no_grad():
            b.after_step({k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in losses.items()})
        return
    total = b.backward(losses, shared_params=[w])
    assert math.isfinite(float(total)) or b.skipped, f"total {total}"


@pytest.mark.parametrize("method", tb.methods())
def test_named_errors_name_the_task(method: str) -> None:
    """The deterministic core of the fuzz: a NaN loss names its task, for every method."""
    b = tb.create(method, tasks=["x", "y"], **tb.get_method(method).bench_kwargs)
    w = nn.Parameter(torch.ones(2))
    with pytest.raises(tb.InvalidLossError, match="'y'"):
        b.backward({"x": w.sum(), "y": w.sum() * math.nan}, shared_params=[w])
