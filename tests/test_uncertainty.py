"""What the learned-scale methods (uw, uw-simplified, uw-revised, imtl-l) share, checked on
uw: init="auto" and its control, per-task init, and the warning for parameters in no
optimiser; and the snippet-compatible classes DynamicWeightedLoss and AutomaticWeightedLoss
against the balancers and the snippet. Each method's own optimum and behaviour are in
tests/methods/test_<name>.py."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import taskbalance as tb

from .helpers import track


@pytest.mark.parametrize(
    ("form", "name"), [("simplified", "uw-simplified"), ("uw", "uw"), ("revised", "uw-revised")]
)
def test_dynamic_weighted_loss_matches_balancer(form: str, name: str) -> None:
    types = ["regression", "classification"]
    crit = tb.DynamicWeightedLoss(num=2, form=form, task_types=types)  # type: ignore[arg-type]
    bal = tb.create(name, tasks=dict(zip(["0", "1"], types)), init=1.0 if form == "revised" else 0.0)
    x = torch.tensor([2.0, 5.0], requires_grad=True)
    a = crit(x[0] * 1, x[1] * 1)
    b = bal([x[0] * 1, x[1] * 1])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(
        torch.stack(list(crit.weights.values())), torch.stack(list(bal.weights.values()))
    )
    assert list(crit.weights) == list(bal.weights) == ["0", "1"]
    a.backward()
    assert crit.params.grad is not None and bool((crit.params.grad != 0).all())
    assert list(crit.state_dict()) == ["params", "_extra_state"]  # the form travels with params
    torch.testing.assert_close(crit([x[0] * 1, x[1] * 1]), a)  # a list works too


@pytest.mark.parametrize(
    ("saved", "loaded", "warns"),
    [
        ("revised", "simplified", True),
        ("revised", "uw", True),
        ("simplified", "revised", True),
        ("uw", "revised", True),
        ("simplified", "uw", False),  # both hold log-variances
        ("revised", "revised", False),
    ],
)
def test_a_checkpoint_of_another_form_keeps_each_tasks_sigma(saved: str, loaded: str, warns: bool) -> None:
    """σ saved where log-variances are expected (or the reverse) is converted, with a warning."""
    src = tb.DynamicWeightedLoss(num=3, form=saved)  # type: ignore[arg-type]
    with torch.no_grad():
        src.params.copy_(
            torch.tensor([2.0, 0.5, 1.3]) if saved == "revised" else torch.tensor([1.2, -1.4, 0.3])
        )
    dst = tb.DynamicWeightedLoss(num=3, form=loaded)  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dst.load_state_dict(src.state_dict())
    messages = [str(w.message) for w in caught]
    assert bool(messages) == warns, messages
    if warns:
        assert f"saved with form={saved!r}" in messages[0] and f"form={loaded!r}" in messages[0]
    torch.testing.assert_close(torch.stack(list(dst.sigma.values())), torch.stack(list(src.sigma.values())))


def test_dynamic_weighted_loss_loads_snippet_checkpoint_and_validates() -> None:
    crit = tb.DynamicWeightedLoss(num=2, form="revised")
    assert torch.equal(crit.params.detach(), torch.ones(2))  # the snippet's σ init
    crit.load_state_dict({"params": torch.tensor([2.0, 3.0])})
    assert torch.equal(crit.params.detach(), torch.tensor([2.0, 3.0]))
    with pytest.raises(tb.InvalidLossError, match="task '1' is -1"):
        crit(torch.tensor(1.0, requires_grad=True), torch.tensor(-1.0, requires_grad=True))
    with pytest.raises(ValueError, match="form"):
        tb.DynamicWeightedLoss(2, form="kendall")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task_types"):
        tb.DynamicWeightedLoss(2, form="uw", task_types=["regression"])


def test_without_auto_init_a_large_loss_scale_is_not_reached_in_time() -> None:
    """The control: from s = 0, Adam moves s by about its learning rate per step and is
    still far from log 1e4 ≈ 9.2 after 60 steps; with init="auto" the same run is there."""
    assert track("uw", 1e4, init=0.0, steps=60) > 2.0
    assert track("uw", 1e4, steps=60) < 0.5


def test_init_per_task() -> None:
    """A mapping gives each task its own initial s (uw-revised's init, σ itself, and its
    former checkpoints: tests/methods/test_uw_revised.py)."""
    b = tb.create("uw", tasks=["a", "b"], init={"a": 0.0, "b": 2.0})
    torch.testing.assert_close(b.log_vars.detach(), torch.tensor([0.0, 2.0]))


def test_auto_init_happens_once_per_task_and_survives_a_checkpoint() -> None:
    b = tb.create("uw", tasks=["a", "b"])
    x = torch.tensor([4.0, 9.0], requires_grad=True)
    b({"a": x[0] * 1})  # b absent: only a is initialised
    assert float(b.log_vars[0]) == pytest.approx(math.log(4.0)) and float(b.log_vars[1]) == 0.0
    b({"a": x[0] * 2, "b": x[1] * 1})
    assert float(b.log_vars[0]) == pytest.approx(math.log(4.0))  # not again
    assert float(b.log_vars[1]) == pytest.approx(math.log(9.0))
    again = tb.create("uw", tasks=["a", "b"])
    again.load_state_dict(b.state_dict())
    again({"a": x[0] * 100, "b": x[1] * 100})
    torch.testing.assert_close(again.log_vars.detach(), b.log_vars.detach())


def test_automatic_weighted_loss_is_the_revised_snippet() -> None:
    """The widely copied class: σ at 1, 0.5/σ²·L + log(1 + σ²), and its constructor names."""
    for kw in ({"num": 3}, {"num_losses": 3}, {"num_tasks": 3}):
        awl = tb.AutomaticWeightedLoss(**kw)
        assert awl.params.shape == (3,) and torch.equal(awl.params.detach(), torch.ones(3))
    awl = tb.AutomaticWeightedLoss(2)
    losses = [torch.tensor(2.0, requires_grad=True), torch.tensor(4.0, requires_grad=True)]
    snippet = sum(
        0.5 / awl.params[i] ** 2 * loss + torch.log(1 + awl.params[i] ** 2) for i, loss in enumerate(losses)
    )
    torch.testing.assert_close(awl(*losses), snippet)
    assert set(awl.sigma) == {"0", "1"} and awl.param_groups(lr=0.1)[0]["weight_decay"] == 0.0
    with pytest.raises(TypeError, match="once"):
        tb.DynamicWeightedLoss(num=2, num_tasks=2)


def test_parameters_in_no_optimiser_are_reported_once() -> None:
    b = tb.create("uw", tasks=2)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)  # the balancer's group forgotten
    x = torch.ones(4, 2)
    with pytest.warns(RuntimeWarning, match=r"uw: its parameters received gradients for 100 steps"):
        for _ in range(2 * b.STALL_CHECK):
            opt.zero_grad()
            out = model(x)
            b.backward([out[:, 0].pow(2).mean() + 1, out[:, 1].pow(2).mean() + 1])
            opt.step()
    trained = tb.create("uw", tasks=2)
    opt = torch.optim.Adam([*model.parameters(), *trained.param_groups(lr=0.1)[0]["params"]])
    for _ in range(2 * trained.STALL_CHECK):  # in the optimiser: no warning (warnings are errors here)
        opt.zero_grad()
        out = model(x)
        trained.backward([out[:, 0].pow(2).mean() + 1, out[:, 1].pow(2).mean() + 1])
        opt.step()
