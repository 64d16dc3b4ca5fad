"""The contract every method shares: tasks, validation, absent tasks, weights."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb
from taskbalance.base import parse_tasks

from .helpers import make


def losses3(
    values: tuple[float, float, float] = (1.0, 2.0, 3.0),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = torch.tensor(values, requires_grad=True)
    return x, {"a": x[0] * 1, "b": x[1] * 1, "c": x[2] * 1}


def test_parse_tasks_forms() -> None:
    assert parse_tasks(["x", "y"]) == (("x", "y"), ("regression", "regression"))
    assert parse_tasks({"x": "classification"}) == (("x",), ("classification",))
    assert parse_tasks(3)[0] == ("0", "1", "2")
    with pytest.raises(ValueError, match="task 'x' has type 'segmentation'"):
        parse_tasks({"x": "segmentation"})
    with pytest.raises(ValueError, match="unique"):
        parse_tasks(["x", "x"])
    with pytest.raises(ValueError, match="at least 1"):
        parse_tasks(0)
    with pytest.raises(TypeError):
        parse_tasks("ab")
    with pytest.raises(ValueError, match="at least one"):
        parse_tasks([])
    with pytest.raises(TypeError):
        parse_tasks([1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        parse_tasks(True)


def test_forward_returns_scalar_and_backward_reaches_inputs(method: str) -> None:
    b = make(method)
    x, losses = losses3()
    total = b(losses)
    assert total.ndim == 0 and total.requires_grad
    total.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_weights_are_the_gradient_of_the_total(method: str) -> None:
    """For every method, weights[i] == ∂ total / ∂ L_i (an independent autograd check)."""
    b = make(method)
    for step in range(3):  # later steps exercise the stateful branches
        x, losses = losses3((1.0 + step, 2.0, 0.5 * (step + 1)))
        total = b(losses)
        (grad,) = torch.autograd.grad(total, x)
        w = torch.stack(list(b.weights.values()))
        torch.testing.assert_close(w, grad, rtol=1e-5, atol=1e-7)
        assert not any(v.requires_grad for v in b.weights.values())
        b.epoch_end()
        if method == "famo":
            b.after_step({k: v.detach() * 0.9 for k, v in losses.items()})


def test_backward_equals_forward_then_backward(method: str) -> None:
    x1, l1 = losses3()
    x2, l2 = losses3()
    b1 = make(method, seed=1) if method == "rlw" else make(method)
    b2 = make(method, seed=1) if method == "rlw" else make(method)
    out = b1.backward(l1, shared_params=[x1])
    b2(l2).backward()
    assert not out.requires_grad
    torch.testing.assert_close(x1.grad, x2.grad)


def test_sequence_and_mapping_inputs_agree(method: str) -> None:
    _, l1 = losses3()
    _, l2 = losses3()
    kw = {"seed": 3} if method == "rlw" else {}
    t1 = make(method, **kw)(l1)
    t2 = make(method, **kw)([l2["a"], l2["b"], l2["c"]])
    torch.testing.assert_close(t1, t2)


def test_absent_task_gets_no_gradient_and_keeps_its_state(method: str) -> None:
    b = make(method)
    before = {k: v.clone() for k, v in b.state_dict().items() if isinstance(v, torch.Tensor)}
    x, losses = losses3()
    del losses["b"]
    total = b(losses)
    total.backward()
    assert x.grad is not None and x.grad[1] == 0
    assert set(b.weights) == {"a", "c"}
    for p in b.parameters():
        assert p.grad is not None and p.grad[1] == 0, "the absent task's parameter got a gradient"
    b.epoch_end()
    if method == "famo":
        b.after_step({"a": torch.tensor(0.5), "c": torch.tensor(2.0)})
    for k, v in b.state_dict().items():
        if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[-1] == 3 and k in before:
            assert torch.equal(v[..., 1], before[k][..., 1]), f"{k} of the absent task changed"


def test_sequence_with_none_marks_absent_task() -> None:
    b = tb.create("uw", tasks=["a", "b"])
    x = torch.tensor([2.0, 3.0], requires_grad=True)
    b([None, x[1]]).backward()
    assert set(b.weights) == {"b"}
    assert b.log_vars.grad is not None and b.log_vars.grad[0] == 0


@pytest.mark.parametrize(
    ("losses", "error", "match"),
    [
        ({"a": torch.ones(2, requires_grad=True)}, tb.InvalidLossError, r"task 'a' has shape \(2,\)"),
        ({"a": torch.tensor(1, dtype=torch.long)}, tb.InvalidLossError, "task 'a' has dtype"),
        ({"a": torch.tensor(1.0)}, tb.InvalidLossError, "task 'a' does not require grad"),
        ({"zz": torch.tensor(1.0, requires_grad=True)}, KeyError, "unknown task 'zz'"),
        ({"a": 1.0}, TypeError, "task 'a' is a float"),
        ({}, ValueError, "no task loss"),
        ([torch.tensor(1.0, requires_grad=True)], ValueError, "got 1 losses for 2 declared tasks"),
        ("ab", TypeError, "losses must be"),
    ],
)
def test_bad_input_names_the_task(losses: object, error: type[Exception], match: str) -> None:
    b = tb.create("equal", tasks=["a", "b"])
    with pytest.raises(error, match=match):
        b(losses)  # type: ignore[arg-type]


def test_no_grad_evaluation_is_allowed_and_leaves_statistics() -> None:
    b = tb.create("dwa", tasks=["a", "b"])
    with torch.no_grad():
        total = b({"a": torch.tensor(1.0), "b": torch.tensor(2.0)})
    assert float(total) == 3.0
    assert float(b.epoch_count.sum()) == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_loss_raises_by_default(method: str, bad: float) -> None:
    b = make(method)
    _, losses = losses3((1.0, bad, 3.0))
    with pytest.raises(tb.InvalidLossError, match="task 'b' is not finite"):
        b(losses)


def test_nonfinite_loss_can_skip_without_touching_state(method: str) -> None:
    b = make(method, on_nonfinite="skip")
    opt = torch.optim.SGD(b.parameters(), lr=0.1) if list(b.parameters()) else None
    x, good = losses3()
    b.backward(good)
    if opt:
        opt.step()
    b.after_step({k: v.detach() for k, v in good.items()})
    weights = dict(b.weights)
    state = {k: v.clone() for k, v in b.state_dict().items() if isinstance(v, torch.Tensor)}
    if opt:
        opt.zero_grad(set_to_none=True)
    x, bad = losses3((1.0, float("nan"), 3.0))
    out = b.backward(bad)
    assert b.skipped and float(out) == 0.0
    assert x.grad is None
    assert all(p.grad is None for p in b.parameters())
    b.after_step({k: v.detach() for k, v in bad.items()})
    for k, v in b.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, state[k]), k
    assert b.weights == weights
    b(good)
    assert not b.skipped


POSITIVE = ["uw", "uw-simplified", "geometric", "uw-so", "imtl-l", "stch", "famo", "dwa"]


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_nonpositive_loss_is_refused_by_log_based_methods(name: str, value: float) -> None:
    b = make(name)
    _, losses = losses3((1.0, 2.0, value))
    with pytest.raises(tb.InvalidLossError, match=r"task 'c' is .*needs losses > 0"):
        b(losses)


def test_methods_without_sign_needs_accept_negative_losses() -> None:
    for name in ["equal", "static", "rlw"]:
        _, losses = losses3((1.0, -2.0, 3.0))
        make(name)(losses).backward()


def test_check_false_skips_value_checks() -> None:
    b = tb.create("uw", tasks=["a"], check=False)
    out = b({"a": torch.tensor(-1.0, requires_grad=True)})
    assert torch.isfinite(out)


def test_on_nonfinite_is_validated() -> None:
    with pytest.raises(ValueError, match="on_nonfinite"):
        tb.create("equal", tasks=2, on_nonfinite="ignore")  # type: ignore[arg-type]


def test_param_groups_have_no_weight_decay_and_own_lr() -> None:
    b = tb.create("uw", tasks=2)
    (group,) = b.param_groups(lr=0.05, weight_decay=1e-2, betas=(0.9, 0.99))
    assert group["lr"] == 0.05 and group["weight_decay"] == 0.0 and group["betas"] == (0.9, 0.99)
    assert group["params"] == [b.log_vars]
    assert tb.create("equal", tasks=2).param_groups() == []


def test_weights_empty_before_first_step_and_repr_names_tasks() -> None:
    b = tb.create("equal", tasks=["a", "b"], reduction="mean")
    assert b.weights == {}
    assert "tasks=['a', 'b']" in repr(b) and "reduction='mean'" in repr(b)


def test_state_for_other_tasks_is_refused() -> None:
    state = tb.create("uw", tasks=["a", "b"]).state_dict()
    with pytest.raises(ValueError, match="saved for tasks"):
        tb.create("uw", tasks=["a", "c"]).load_state_dict(state)


def test_hooks_are_no_ops_for_stateless_methods() -> None:
    b = tb.create("equal", tasks=2)
    b.epoch_end()
    b.after_step([torch.tensor(1.0), torch.tensor(2.0)])
    assert b.weights == {}


def test_per_task_values_accept_a_mapping_a_sequence_or_one_number() -> None:
    assert tb.create("static", tasks=["a", "b"], weights=0.5).static_weights.tolist() == [0.5, 0.5]
    b = tb.create("famo", tasks=["a", "b"], min_losses={"a": -1.0, "b": 0.0})
    assert b.min_losses.tolist() == [-1.0, 0.0]
    with pytest.raises(ValueError, match=r"min_losses must name exactly the tasks.*unknown \['z'\]"):
        tb.create("famo", tasks=["a", "b"], min_losses={"a": 0.0, "b": 0.0, "z": 1.0})
    with pytest.raises(ValueError, match="must be given"):
        b._per_task(None, "the things")
