"""Issue 12's repros: each broke a promise of the contract, failed silently, or ended
in a traceback from inside torch. One test per item, named after it; the items about one
method's own behaviour (2 for RLW, 7, 8, 11, and 12 for GradNorm) are in that method's
tests/methods/test_<name>.py, with the item in their docstrings."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch
from torch import nn

import taskbalance as tb

from .helpers import make


def t(v: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(v, dtype=dtype, requires_grad=True)


# ------------------------------------------------------------ silent wrong results
MODES = [
    (m, mode)
    for m in tb.methods("gradient")
    for mode in ("features", "params")
    if mode == "params" or tb.get_method(m).supports_features  # type: ignore[attr-defined]
]


@pytest.mark.parametrize(("gradient_method", "mode"), MODES)
def test_1_unrelated_features_or_params_are_refused(gradient_method: str, mode: str) -> None:
    enc, head = nn.Linear(3, 4), nn.Linear(4, 2)
    x = torch.randn(5, 3)
    z_old = enc(x)  # an earlier forward: the losses below do not depend on it
    out = head(enc(x))
    losses = {"0": out[:, 0].pow(2).mean(), "1": out[:, 1].pow(2).mean()}
    b = tb.create(gradient_method, tasks=2)
    if mode == "features":
        with pytest.raises(ValueError, match=r"features= tensor 0 .* gets no gradient from any task"):
            b.backward(losses, features=z_old)
    else:
        unused = nn.Parameter(torch.ones(3))
        with pytest.raises(ValueError, match=r"shared_params= tensor 2 .* gets no gradient"):
            b.backward(losses, shared_params=[*enc.parameters(), unused])


def test_2_evaluation_leaves_the_reported_weights(method: str) -> None:
    b = make(method)
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b(list(x.unbind()))
    before = {k: v.clone() for k, v in b.weights.items()}
    with torch.no_grad():
        b(list(torch.tensor([0.02, 100.0, 5.0]).unbind()))
    after = b.weights
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_3_duplicated_shared_params_count_once(gradient_method: str) -> None:
    g = torch.Generator().manual_seed(0)
    a, c = torch.randn(2, 3, generator=g), torch.randn(3, generator=g)
    grads = []
    for params in (lambda w: [w], lambda w: [w, w]):
        w = nn.Parameter(torch.ones(3))
        losses = [(a[0] @ w) ** 2 + 1, (a[1] @ w - c @ w) ** 2 + 1]
        tb.create(gradient_method, tasks=2, **({"seed": 0} if _seeded(gradient_method) else {})).backward(
            losses, shared_params=params(w)
        )
        assert w.grad is not None
        grads.append(w.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def _seeded(name: str) -> bool:
    """Whether the method draws random numbers (it takes a ``seed``)."""
    return "seed" in inspect.signature(tb.get_method(name)).parameters


def test_4_load_state_dict_copies(any_method: str) -> None:
    source = make(any_method)
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for _ in range(2):
        _step(source, x)
    state = source.state_dict()
    a, b = make(any_method), make(any_method)
    a.load_state_dict(state)
    b.load_state_dict(state)
    snapshot = {k: v.clone() for k, v in b.state_dict().items() if isinstance(v, torch.Tensor)}
    _step(a, torch.tensor([5.0, 0.5, 2.0], requires_grad=True))
    for k, v in b.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, snapshot[k]), f"{any_method}: {k} moved when another balancer trained"
    assert_tree_unshared(a.get_extra_state(), state)


def assert_tree_unshared(got: Any, source: Any) -> None:
    """No tensor of ``got`` shares memory with a tensor of the source state dict."""
    ptrs = {v.data_ptr() for v in _tensors(source) if v.numel()}
    assert not any(v.data_ptr() in ptrs for v in _tensors(got) if v.numel())


def _tensors(tree: Any) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in _tensors(v)]
    if isinstance(tree, (list, tuple)):
        return [x for v in tree for x in _tensors(v)]
    return []


def _step(b: tb.Balancer, x: torch.Tensor) -> None:
    losses = [v * 1 for v in x.unbind()]
    if b.kind == "gradient":
        w = nn.Parameter(torch.ones(2))
        b.backward([v * (w.sum() + i) for i, v in enumerate(losses)], shared_params=[w])
    else:
        b.backward(losses)
    b.epoch_end()


def test_5_state_for_other_task_types_is_refused() -> None:
    saved = tb.create("uw", tasks={"a": "regression"}).state_dict()
    b = tb.create("uw", tasks={"a": "classification"})
    with pytest.raises(ValueError, match="'a': saved 'regression', declared 'classification'"):
        b.load_state_dict(saved)


def test_6_unordered_task_declarations_are_refused() -> None:
    with pytest.raises(TypeError, match=r"order changes .* pass a list or tuple"):
        tb.create("equal", tasks={"a", "b"})
    with pytest.raises(TypeError, match="frozenset"):
        tb.create("equal", tasks=frozenset({"a"}))


# ---------------------------------------------------------- numerical failures
@pytest.mark.parametrize("name", ["graddrop", "gradnorm", "db-mtl"])
def test_9_huge_losses_and_gradients_stay_finite(name: str) -> None:
    w = nn.Parameter(torch.ones(3))
    b = tb.create(name, tasks=2, **({"seed": 0} if name == "graddrop" else {}))
    losses = [1e30 * (w @ torch.tensor([1.0, 2.0, 0.5])), 1e30 * (w @ torch.tensor([-1.0, 0.5, 1.0])) + 3e30]
    b.backward(losses, shared_params=[w])
    assert bool(torch.isfinite(torch.stack(list(b.weights.values()))).all())
    assert w.grad is not None and bool(torch.isfinite(w.grad).all())
    if name == "gradnorm":
        grad = b.weights_param.grad  # type: ignore[union-attr]
        assert grad is not None and bool(torch.isfinite(grad).all())


HALF_CASES = [(n, 1e-6) for n in ("uw-so", "famo", "stch", "db-mtl", "uw", "uw-simplified", "imtl-l")]
HALF_CASES.append(("db-mtl", 0.0))  # the others refuse a loss of exactly 0 (they take its log)


@pytest.mark.parametrize(("name", "value"), HALF_CASES)
def test_10_half_precision_small_losses_stay_finite(name: str, value: float) -> None:
    kw: dict[str, Any] = {"nadir": [1.0, 1.0]} if name == "stch" else {}
    if name in ("uw", "uw-simplified", "imtl-l"):
        # init="auto" would give L = 1e-6 its optimal weight, about 5e5: beyond float16's
        # range, so the gradient into a float16 loss overflows (losses from autocast are
        # float32); what is tested here is the method's arithmetic on a tiny half loss
        kw["init"] = 0.0
    b = tb.create(name, tasks=2, **kw)
    w = nn.Parameter(torch.ones(2, dtype=torch.float16))
    losses = [(w * 0).sum() + value, w.sum() * 0.5]
    b.backward(losses, shared_params=[w])
    assert bool(torch.isfinite(torch.stack(list(b.weights.values())).float()).all())
    assert w.grad is not None and bool(torch.isfinite(w.grad).all())


@pytest.mark.parametrize("name", ["uw", "uw-simplified", "imtl-l"])
def test_10_subnormal_float32_loss_stays_finite(name: str) -> None:
    b = tb.create(name, tasks=1)
    opt = torch.optim.Adam(b.param_groups(lr=1.0))
    for _ in range(200):
        opt.zero_grad()
        x = torch.tensor(1e-40, requires_grad=True)
        total = b([x])
        total.backward()
        opt.step()
        assert math.isfinite(float(total)) and x.grad is not None and math.isfinite(float(x.grad))


@pytest.mark.parametrize("name", ["dwa", "stch", "famo", "rlw", "uw"])
def test_12_grad_scaler_overflow_touches_no_state(name: str) -> None:
    """The losses are finite, the scaled gradients overflow: the step is skipped, and
    tb.amp.step(..., balancer) puts every statistic back."""
    b = make(name, tasks=["a", "b"], **({"warmup_epochs": 2} if name == "stch" else {}))
    w = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w, *b.parameters()], lr=0.0)  # the state, not the model, is under test

    def step(scaler: torch.amp.GradScaler) -> bool:
        opt.zero_grad()
        # ∂/∂w of (3w + 1)^40 is large for every method, log-based ones included
        b.backward([(w[0] * 3 + 1) ** 40, w[1] + 2], scaler=scaler)
        return tb.amp.step(scaler, opt, b)

    assert step(torch.amp.GradScaler("cpu", init_scale=2.0**10))
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in b.state_dict().items()}
    assert not step(torch.amp.GradScaler("cpu", init_scale=2.0**127))  # the scaled total is inf
    for k, v in b.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, before[k]), f"{name}: {k} changed on an overflow step"
    b.after_step([w[0] + 1, w[1] + 2])  # a no-op after a skipped step


# ------------------------------------------------------ errors that do not help
def test_13_skip_with_a_leading_none(method: str) -> None:
    b = make(method, on_nonfinite="skip")
    total = b({"a": None, "b": t(float("nan")), "c": t(1.0)})  # type: ignore[dict-item]
    assert b.skipped and float(total) == 0.0


def test_14_backward_under_no_grad_names_the_problem(gradient_method: str) -> None:
    w = nn.Parameter(torch.ones(2))
    b = tb.create(gradient_method, tasks=2)
    with torch.no_grad(), pytest.raises(RuntimeError, match=r"under torch.no_grad"):
        b.backward([w.sum(), w.sum()], shared_params=[w])


def test_14_detached_features_name_the_argument(recwarn: pytest.WarningsRecorder) -> None:
    enc = nn.Linear(2, 2)
    z = enc(torch.ones(3, 2))
    losses = [z.sum(), z.pow(2).sum()]
    with pytest.raises(ValueError, match="features= tensor 0 does not require grad"):
        tb.create("mgda", tasks=2).backward(losses, features=z.detach())
    assert not [w for w in recwarn if "falling back" in str(w.message)]


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("uw", {"init": math.nan}, "init of task '0' must be finite"),
        ("uw-simplified", {"init": math.inf}, "init of task '0' must be finite"),
        ("uw-revised", {"init": math.nan}, "init of task '0' must be finite"),
        ("imtl-l", {"init": {"0": 1.0, "1": math.nan}}, "init of task '1' must be finite"),
        ("uw", {"init": "zero"}, "init must be 'auto', a number, a mapping or a sequence"),
        ("imtl", {"init": math.nan}, "init must be a finite number"),
        ("famo", {"w_lr": math.nan}, "w_lr must be a finite number > 0"),
        ("famo", {"gamma": -1.0}, "gamma must be a finite number >= 0"),
        ("famo", {"eps": -1e-8}, "eps must be a finite number > 0"),
        ("cagrad", {"c": math.nan}, "c must be a finite number >= 0"),
        ("cagrad", {"c": math.inf}, "c must be a finite number >= 0"),
        ("nash-mtl", {"max_norm": math.nan}, "max_norm must be a finite number > 0"),
        ("nash-mtl", {"max_norm": -1.0}, "max_norm must be a finite number > 0"),
        ("fairgrad", {"alpha": math.nan}, "alpha must be a finite number >= 0"),
        ("upgrad", {"pref": [math.nan, 1.0]}, "preference weights of task '0' must be finite"),
        ("aligned-mtl", {"pref": [1.0, math.inf]}, "preference weights of task '1' must be finite"),
        ("db-mtl", {"beta": 2.0}, "beta must be a finite number >= 0 and <= 1"),
        ("db-mtl", {"eps": math.nan}, "eps must be a finite number > 0"),
        ("rlw", {"seed": 2**70}, r"seed must be an int in \[0, 2\*\*63\)"),
        ("dwa", {"temperature": math.inf}, "temperature must be a finite number > 0"),
        ("stch", {"mu": math.inf}, "mu must be a finite number > 0"),
        ("gradnorm", {"alpha": math.nan}, "alpha must be a finite number >= 0"),
        ("gradvac", {"eps": math.nan}, "eps must be a finite number > 0"),
        ("upgrad", {"reg": math.nan}, "reg must be a finite number >= 0"),
    ],
)
def test_15_out_of_range_arguments_are_refused_at_construction(
    name: str, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        tb.create(name, tasks=2, **kwargs)
