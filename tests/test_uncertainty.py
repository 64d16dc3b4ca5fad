"""Uncertainty weighting against its closed-form optima, and the two-line bug."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import taskbalance as tb
from taskbalance.bench.noisy import make_noisy_tasks, train_noisy

LOSSES = (0.3, 2.5, 40.0)


def minimise(balancer: tb.Balancer, losses: list[float]) -> None:
    """Minimise the balancer's objective over its own parameters, losses fixed."""
    balancer.double()
    values = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in losses]
    opt = torch.optim.LBFGS(
        balancer.parameters(),
        lr=1,
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        total = balancer(values)
        total.backward()
        return total

    for _ in range(3):
        opt.step(closure)


def revised_optimum(loss: float) -> float:
    return (loss + math.sqrt(loss * loss + 8 * loss)) / 4


@pytest.mark.parametrize(
    ("name", "tasks", "learned", "expected"),
    [
        ("uw", ["r0", "r1", "r2"], lambda b: torch.exp(b.log_vars), lambda L: L),
        (
            "uw",
            {"c0": "classification", "c1": "classification", "c2": "classification"},
            lambda b: torch.exp(b.log_vars),
            lambda L: 2 * L,
        ),
        ("uw-simplified", 3, lambda b: b.log_vars, math.log),
        ("uw-revised", 3, lambda b: torch.exp(b.log_vars), revised_optimum),
        ("imtl-l", 3, lambda b: b.log_scales, lambda L: -math.log(L)),
    ],
)
def test_closed_form_optimum(name, tasks, learned, expected) -> None:  # type: ignore[no-untyped-def]
    b = tb.create(name, tasks=tasks)
    minimise(b, list(LOSSES))
    got = learned(b).detach()
    want = torch.tensor([expected(v) for v in LOSSES], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-6)


def test_mixed_task_types_get_their_own_optimum() -> None:
    b = tb.create("uw", tasks={"depth": "regression", "seg": "classification"})
    minimise(b, [3.0, 3.0])
    torch.testing.assert_close(
        torch.exp(b.log_vars.detach()), torch.tensor([3.0, 6.0], dtype=torch.float64), rtol=1e-3, atol=0
    )
    sigma = b.sigma
    assert math.isclose(float(sigma["seg"]) ** 2, 6.0, rel_tol=1e-3)


@pytest.mark.parametrize("name", ["uw", "uw-simplified", "uw-revised", "imtl-l"])
def test_every_parameter_has_a_gradient_away_from_the_optimum(name: str) -> None:
    """The test that catches the two-line bug: each s must feel its regulariser."""
    b = tb.create(name, tasks=3, init=1.0 if name == "uw-revised" else 0.0)
    values = [torch.tensor(v, requires_grad=True) for v in LOSSES]
    b(values).backward()
    (param,) = list(b.parameters())
    assert param.grad is not None and bool((param.grad.abs() > 1e-3).all())
    # ... and the gradient vanishes at the optimum, which the buggy form never reaches
    minimise(b, list(LOSSES))
    b.zero_grad()
    values64 = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in LOSSES]
    b(values64).backward()
    assert param.grad is not None and float(param.grad.abs().max()) < 1e-6


def test_two_line_snippet_bug_runs_away_and_ours_does_not() -> None:
    """``loss_sum += exp(-s) * loss`` then ``+ s`` on its own line drops the regulariser."""
    s_bug = torch.zeros(2, requires_grad=True)
    ours = tb.create("uw-simplified", tasks=2)
    opt = torch.optim.SGD([s_bug, *ours.parameters()], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss_sum = torch.zeros(())
        for i, loss in enumerate([torch.tensor(1.0), torch.tensor(4.0)]):
            loss_sum += torch.exp(-s_bug[i]) * loss
            +s_bug[i]  # the snippet's second line: a statement with no effect
        loss_sum.backward()
        ours([torch.tensor(1.0, requires_grad=True), torch.tensor(4.0, requires_grad=True)]).backward()
        opt.step()
    assert bool((s_bug > 3.0).all()), "the buggy form should drive every σ up"
    torch.testing.assert_close(ours.log_vars.detach(), torch.tensor([0.0, math.log(4.0)]), atol=1e-2, rtol=0)


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


def test_revised_needs_nonzero_init() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        tb.create("uw-revised", tasks=2, init=0.0)


def test_known_noise_is_recovered() -> None:
    """Two regression tasks with noise std 1 and 10, plus a classifier: σ² -> noise variance."""
    data = make_noisy_tasks((1.0, 10.0), label_noise=0.1, n_train=8192, n_test=4096, seed=0)
    uw = train_noisy("uw", data, epochs=30, seed=0)
    for std, task in zip((1.0, 10.0), ("reg_1", "reg_10")):
        var = std * std
        assert abs(uw.learned_sigma[task] ** 2 - var) / var < 0.10, (task, uw.learned_sigma)
        assert abs(uw.test_residual_std[task] ** 2 - var) / var < 0.10, (task, uw.test_residual_std)
    assert uw.test_accuracy is not None and uw.test_accuracy > 0.8
    # uw-revised learns its own optimum of the training MSE, not the noise variance
    rev = train_noisy("uw-revised", data, epochs=30, seed=0)
    for task in ("reg_1", "reg_10"):
        mse = uw.test_residual_std[task] ** 2
        assert abs(rev.learned_sigma[task] ** 2 - revised_optimum(mse)) / revised_optimum(mse) < 0.10
    assert rev.learned_sigma["reg_10"] ** 2 < 0.6 * 100


OPTIMUM_S = {  # the optimal parameter for a fixed loss L
    "uw": math.log,
    "uw-simplified": math.log,
    "uw-revised": lambda L: math.log(revised_optimum(L)),
    "imtl-l": lambda L: -math.log(L),
}


def track(name: str, scale: float, init: object = "auto", steps: int = 300) -> float:
    """Train only the balancer on noisy losses of mean ``scale`` whose first value is 3x
    the mean, with the documented Adam settings; the parameter's error from the optimum
    of the mean loss, averaged over the last 50 steps (in log σ², or s for imtl-l)."""
    g = torch.Generator().manual_seed(0)
    b = tb.create(name, tasks=2, init=init)
    opt = torch.optim.Adam(b.param_groups(lr=0.1, betas=(0.9, 0.99)))
    tail = []
    for t in range(steps):
        noise = 1 + 0.1 * torch.randn(2, generator=g)
        values = torch.full((2,), 3.0 * scale) if t == 0 else scale * noise
        opt.zero_grad()
        b(list(values.clone().requires_grad_().unbind())).backward()
        opt.step()
        if t >= steps - 50:
            tail.append(next(iter(b.parameters())).detach().clone())
    got = torch.stack(tail).mean(0)
    return float((got - OPTIMUM_S[name](scale)).abs().max())


@pytest.mark.parametrize("name", sorted(OPTIMUM_S))
@pytest.mark.parametrize("scale", [1e-4, 1e-2, 1.0, 1e2, 1e4])
def test_sigma_reaches_its_optimum_at_any_loss_scale(name: str, scale: float) -> None:
    """Issue 13: with the default init and the documented optimiser settings, σ² is within
    10% of the optimum (0.1 in log σ²) after 300 steps, from 1e-4 to 1e4."""
    assert track(name, scale) < 0.1


def test_without_auto_init_a_large_loss_scale_is_not_reached_in_time() -> None:
    """The control: from s = 0, Adam moves s by about its learning rate per step and is
    still far from log 1e4 ≈ 9.2 after 60 steps; with init="auto" the same run is there."""
    assert track("uw", 1e4, init=0.0, steps=60) > 2.0
    assert track("uw", 1e4, steps=60) < 0.5


def test_init_per_task_and_old_revised_checkpoints() -> None:
    b = tb.create("uw", tasks=["a", "b"], init={"a": 0.0, "b": 2.0})
    torch.testing.assert_close(b.log_vars.detach(), torch.tensor([0.0, 2.0]))
    r = tb.create("uw-revised", tasks=2, init=[1.0, 2.0])
    torch.testing.assert_close(torch.stack(list(r.sigma.values())), torch.tensor([1.0, 2.0]))
    # a checkpoint of the former parametrisation, σ itself under "sigma_param"
    state = r.state_dict()
    state["sigma_param"] = torch.tensor([3.0, 0.5])
    del state["log_vars"]
    fresh = tb.create("uw-revised", tasks=2)
    fresh.load_state_dict(state)
    torch.testing.assert_close(torch.stack(list(fresh.sigma.values())), torch.tensor([3.0, 0.5]))


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
