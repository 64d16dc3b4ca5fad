"""The bench's typed objects (issue 15): problems that return their data with what the
model needs, results as dataclasses that read and write the JSON the bench has always
written, one source for each method's bench keywords, and one training loop."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import taskbalance as tb
from taskbalance.bench import problems as problems_mod
from taskbalance.bench.grid import PAIRS, GridResults
from taskbalance.bench.noisy import make_noisy_tasks, train_noisy
from taskbalance.bench.problems import (
    PROBLEMS,
    LoadedProblem,
    MMoESynthetic,
    NoisyProblem,
    Problem,
    Split,
    get_problem,
    register_problem,
)
from taskbalance.bench.results import BenchResults, CellResult, MeanStd
from taskbalance.bench.runner import _method_kwargs, read_cell, save_cell, train_cell, train_model

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ problems
def test_a_problem_builds_no_model_before_it_is_loaded() -> None:
    """The model and the metrics need the data (the census input width, QM9's
    standardisation): only the loaded problem has them, so none can be built too early."""
    for name in ("model", "evaluate"):
        assert not hasattr(Problem, name), name
    problem = get_problem("census")
    data = problem.load(quick=True)
    first = next(m for m in data.model().modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == data.input_dim == data.train.x.shape[1]
    assert set(data.evaluate(data.model())) == {"income", "never_married"}


def test_loading_changes_nothing_on_the_problem() -> None:
    problem = PAIRS["qm9"].build()  # QM9 in physical units: the heads' units come from the data
    before = copy.deepcopy(problem)
    data = problem.load(quick=True)
    assert problem == before == PAIRS["qm9"].build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.epochs = 1  # type: ignore[misc]
    # the targets in their units: the heads end in the training split's std and mean
    assert set(data.output_units) == {"mu", "r2"} and data.target_std == {"mu": 1.0, "r2": 1.0}
    for t, (scale, shift) in data.output_units.items():
        assert float(data.train.y[t].std()) == pytest.approx(scale, rel=0.01)
        assert float(data.train.y[t].mean()) == pytest.approx(shift, rel=1e-3, abs=1e-3)
    standardised = get_problem("qm9").load(quick=True)
    assert standardised.output_units == {} and standardised.target_std["r2"] == data.output_units["r2"][0]


def test_a_loaded_problem_holds_the_data_of_its_tasks_only() -> None:
    problem = get_problem("noisy-tasks")
    data = problem.load(quick=True)
    wrong = Split(data.train.x, {"reg_1": data.train.y["reg_1"]})
    with pytest.raises(ValueError, match="train has the tasks"):
        LoadedProblem(problem, wrong, data.test, data.target_std)
    with pytest.raises(ValueError, match="output units for unknown tasks"):
        LoadedProblem(problem, data.train, data.test, data.target_std, output_units={"x": (1.0, 0.0)})
    pair = problem.restrict(["reg_10", "cls"]).load(quick=True)
    assert list(pair.train.y) == ["reg_10", "cls"] and list(pair.target_std) == ["reg_10", "cls"]
    assert torch.equal(pair.train.y["reg_10"], data.train.y["reg_10"])


def test_one_registry_of_problems() -> None:
    for name, problem in PROBLEMS.items():
        assert isinstance(problem, Problem) and problem.name == name
        assert get_problem(name) is problem
    rho = get_problem("mmoe-synthetic:0.25")
    assert isinstance(rho, MMoESynthetic) and rho.correlation == 0.25 and rho.name == "mmoe-synthetic:0.25"
    assert PROBLEMS["mmoe-synthetic"].correlation == 0.5
    with pytest.raises(ValueError, match="already registered"):
        register_problem(PROBLEMS["census"])
    short = NoisyProblem.build("noisy-short", (1.0, 10.0), epochs=1, batch_size=64, lr=1e-2)
    register_problem(short)
    try:
        assert get_problem("noisy-short") is short
        assert "noisy-short" in problems_mod.PROBLEMS
    finally:
        del PROBLEMS["noisy-short"]


def test_noisy_problem_takes_data_of_its_own_noise_only() -> None:
    problem = NoisyProblem.build("two", (1.0, 10.0), label_noise=-1, epochs=1, batch_size=64, lr=1e-2)
    data = problem.from_tasks(make_noisy_tasks((1.0, 10.0), label_noise=-1, n_train=64, n_test=32))
    assert list(data.tasks) == ["reg_1", "reg_10"] and data.input_dim == 8
    with pytest.raises(ValueError, match="noise stds"):
        problem.from_tasks(make_noisy_tasks((1.0, 3.0), label_noise=-1, n_train=64, n_test=32))


# ------------------------------------------------------------------- results
@pytest.mark.parametrize("run", ["default-run", "real-run-long"])
def test_committed_results_read_back_to_the_same_json(run: str) -> None:
    text = json.loads((ROOT / "benchmarks" / "results" / run / "results.json").read_text())
    results = BenchResults.from_dict(text)
    assert results.to_dict() == text
    assert json.dumps(results.to_dict()) == json.dumps(text)  # the key order too
    row = next(iter(results.problems.values())).methods["equal"]
    assert row.delta_equal == MeanStd(0.0, 0.0)


def test_committed_grid_results_read_back_to_the_same_json() -> None:
    text = json.loads((ROOT / "benchmarks" / "results" / "grid" / "grid.json").read_text())
    results = GridResults.from_dict(text)
    assert json.dumps(results.to_dict()) == json.dumps(text)
    qm9 = results.pairs["qm9"]
    assert qm9.tasks == ("mu", "r2") and qm9.best in qm9.grid
    assert qm9.learned["uw"].rank == 1 + sum(
        g.delta_equal.mean < qm9.learned["uw"].delta_equal.mean for g in qm9.grid
    )


def test_a_trimmed_results_file_from_before_the_arch_option_still_reads() -> None:
    """The committed real run keeps the tables only (no curves, no seed count, no arch)."""
    text = json.loads((ROOT / "benchmarks" / "results" / "real-run" / "results.json").read_text())
    results = BenchResults.from_dict(text)
    assert results.config.arch is None and results.config.to_dict() == {**text["config"], "arch": None}
    for name, problem in text["problems"].items():
        summary = results.problems[name]
        for method, row in problem["methods"].items():
            got = summary.methods[method].to_dict()
            assert {k: got[k] for k in row} == row, (name, method)


def test_a_damaged_cell_is_refused_by_name(tmp_path: Path) -> None:
    cell = CellResult({"a": 0.5}, {"a": [1.0]}, {"a": [1.0]}, {}, 0.001, 3)
    good = cell.to_dict()
    for damage, message in [
        ({**good, "metrics": None}, "metrics must be a mapping"),
        ({**good, "metrics": {"a": "x"}}, "metric 'a' must be a number"),
        ({**good, "metrics": {"a": True}}, "metric 'a' must be a number"),
        ({**good, "steps": 1.5}, "steps must be an integer"),
        ({**good, "sigma": []}, "sigma must be a mapping"),
        ({**good, "time_per_step": None}, "time_per_step must be a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            CellResult.from_dict(damage)
    with pytest.raises(ValueError, match="not for"):
        CellResult.from_dict(good, tasks=["a", "b"])
    save_cell(tmp_path / "c.json", {"seed": 0}, cell)
    assert json.loads((tmp_path / "c.json").read_text()) == {**good, "config": {"seed": 0}}
    assert read_cell(tmp_path / "c.json", {"seed": 0}, ["a"]) == cell
    assert read_cell(tmp_path / "c.json", {"seed": 0}, ["b"]) is None


# ------------------------------------------------------- method bench keywords
def test_bench_keywords_live_on_the_method_classes() -> None:
    assert tb.Balancer.bench_kwargs == {}
    assert tb.get_method("stch").bench_kwargs == {"warmup_epochs": 1}
    assert tb.get_method("static").bench_kwargs == {"weights": 1.0}
    # the one static entry serves any number of tasks: equal weighting
    for k in (1, 2, 5):
        static = tb.create("static", tasks=k, **tb.get_method("static").bench_kwargs)
        assert static.static_weights.tolist() == [1.0] * k
    assert _method_kwargs("static:weights=0.3+0.7") == {"weights": [0.3, 0.7]}
    assert _method_kwargs("stch:mu=0.5") == {"warmup_epochs": 1, "mu": 0.5}
    assert _method_kwargs("uw") == {}


def test_every_method_runs_a_bench_cell_with_its_bench_keywords_alone() -> None:
    data = get_problem("noisy-tasks").restrict(["reg_1", "cls"]).load(quick=True)
    small = dataclasses.replace(
        data, train=Split(data.train.x[:128], {t: v[:128] for t, v in data.train.y.items()})
    )
    for name in tb.methods():
        cell = train_cell(small, name, seed=0, epochs=1)
        assert set(cell.metrics) == {"reg_1", "cls"} and cell.steps == 1, name


# ------------------------------------------------------------ one training loop
def test_train_noisy_is_the_bench_loop_with_a_cosine_schedule() -> None:
    data = make_noisy_tasks((1.0, 10.0), label_noise=0.1, n_train=256, n_test=64)
    result = train_noisy("uw", data, epochs=3, batch_size=64, seed=1)
    problem = NoisyProblem.build("noisy-tasks", (1.0, 10.0), epochs=3, batch_size=64, lr=3e-3)
    run = train_model(problem.from_tasks(data), "uw", 1, 3, balancer_lr=0.1, lr_schedule="cosine")
    sigma = {k: float(v) for k, v in run.balancer.sigma.items()}
    assert result.learned_sigma == sigma
    assert result.weights == {k: float(v) for k, v in run.balancer.weights.items()}
    with torch.no_grad():
        _, out = run.model(data.x_test)
    assert result.test_accuracy == float((out["cls"].argmax(1) == data.y_test["cls"]).float().mean())
    assert run.steps == 12 and len(run.loss_curves["reg_1"]) == 3
