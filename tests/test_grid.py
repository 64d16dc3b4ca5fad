"""`taskbalance bench --grid`: learned weights placed among static weights on two-task pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskbalance.bench import grid as grid_mod
from taskbalance.bench.grid import (
    PAIRS,
    GridPoint,
    GridResults,
    LearnedMethod,
    PairResult,
    grid_markdown,
    grid_points,
    run_grid,
)
from taskbalance.bench.problems import get_problem
from taskbalance.bench.results import MeanStd
from taskbalance.bench.runner import parse_method
from taskbalance.cli import main


@pytest.mark.parametrize("log_ratios", [False, True])
def test_grid_points_are_convex_weights_with_the_equal_point_and_both_ends(log_ratios: bool) -> None:
    points = grid_points(log_ratios)
    assert all(a >= 0 and b >= 0 and abs(a + b - 1) < 1e-12 for a, b in points)
    assert (0.5, 0.5) in points and (0.0, 1.0) in points and (1.0, 0.0) in points
    assert points == sorted(points) and len(set(points)) == len(points)
    ratios = {round(a / b, 6) for a, b in points if a and b}
    if log_ratios:  # 10^-5 .. 10^5 for scale-disparate pairs
        assert {1e-5, 1e5} <= ratios
    else:
        assert max(ratios) == 9.0


def test_grid_ranks_every_learned_method_among_the_grid_points(tmp_path: Path) -> None:
    results = run_grid(
        ["noisy-scales"], ["equal", "uw"], [0, 1], tmp_path, quick=True, epochs=1, progress=False
    )
    res = results.pairs["noisy-scales"]
    assert res.tasks == ("reg_3", "reg_300") and len(res.grid) == 21
    deltas = [g.delta_equal.mean for g in res.grid]
    for m, entry in res.learned.items():
        assert entry.rank == 1 + sum(d < entry.delta_equal.mean for d in deltas), m
    assert res.learned["equal"].delta_equal == MeanStd(0.0, 0.0)
    # each grid point trains with its own static weights
    for g in res.grid:
        assert [g.weights[t].mean for t in res.tasks] == pytest.approx(g.w, abs=1e-6)
    text = grid_markdown(results)
    assert "`noisy-scales[reg_3+reg_300]`" in text and "uw is " in text and "(rank " in text
    written = json.loads((tmp_path / "grid.json").read_text())
    assert written["pairs"]["noisy-scales"]["grid"] == [g.to_dict() for g in res.grid]
    assert GridResults.from_dict(written) == results


def test_grid_resumes_without_training_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_grid(["noisy-scales"], ["uw"], [0], tmp_path, quick=True, epochs=1, progress=False)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(grid_mod, "train_cell", refuse)
    again = run_grid(["noisy-scales"], ["uw"], [0], tmp_path, quick=True, epochs=1, progress=False)
    assert again.pairs == first.pairs


def test_grid_command_writes_table_figure_and_refuses_other_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--grid", "--quick", "--epochs", "1", "--seeds", "1", "--no-progress"]
    assert main([*argv, "--problems", "noisy-scales", "--methods", "equal,uw", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "best grid point" in out and "uw is " in out
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    assert "![" in (tmp_path / "grid.md").read_text()
    assert main([*argv, "--problems", "noisy-tasks", "--out", str(tmp_path)]) == 2
    assert "--grid runs on the pairs noisy-scales, multi-mnist, census, qm9" in capsys.readouterr().err


def test_method_options_on_the_command_line() -> None:
    assert parse_method("famo:gamma=0.001:w_lr=0.05") == ("famo", {"gamma": 0.001, "w_lr": 0.05})
    assert parse_method("static:weights=1+0") == ("static", {"weights": [1.0, 0.0]})
    with pytest.raises(ValueError, match="famo has no option 'gama'"):
        parse_method("famo:gama=0.1")
    with pytest.raises(ValueError, match="key=value"):
        parse_method("famo:0.1")
    with pytest.raises(ValueError, match="unknown method"):
        parse_method("famous")


def test_qm9_pair_in_physical_units_keeps_the_targets_scales() -> None:
    pair = PAIRS["qm9"]
    problem = pair.build()
    # the heads' units come from the data: only the loaded problem builds the model
    assert not hasattr(problem, "model")
    data = problem.load(quick=True)
    train, test = data.train, data.test
    standardised = get_problem("qm9").load(quick=True).train
    for t in pair.tasks:
        assert abs(float(standardised.y[t].std()) - 1) < 0.1
    assert float(train.y["r2"].std()) > 50 * float(train.y["mu"].std())  # Bohr² against Debye
    out = data.model()(test.x[:8])[1]
    assert set(out) == {"mu", "r2"}
    assert abs(float(out["r2"].mean()) - float(train.y["r2"].mean())) < 0.5 * float(train.y["r2"].std())
    with pytest.raises(ValueError, match="physical_units is for qm9"):
        get_problem("census").restrict(["income"], physical_units=True)
    with pytest.raises(ValueError, match="restrict to distinct tasks"):
        get_problem("census").restrict(["income", "income"])


@pytest.mark.parametrize(
    ("uw", "best", "words"),
    [
        ((-5.0, 1.0), (-4.0, 0.5), ["better than equal weighting", "within the seed spread of the best"]),
        ((-0.01, 0.0), (0.0, 0.0), ["level with equal weighting", "within the seed spread of the best"]),
        ((3.0, 1.0), (-4.0, 0.5), ["worse than equal weighting", "7.00 points behind the best grid point"]),
        ((-1.0, 1.0), (-1.5, 0.5), ["within the seed spread of equal weighting"]),
    ],
)
def test_claim_sentence_follows_its_rule(
    uw: tuple[float, float], best: tuple[float, float], words: list[str]
) -> None:
    point = GridPoint((0.5, 0.5), {}, MeanStd(*best), {})
    res = PairResult(
        "p[a+b]", ("a", "b"), "why", 1, {}, [point], {"uw": LearnedMethod({}, MeanStd(*uw), {}, rank=1)}
    )
    sentence = grid_mod._claim(res, point)
    assert all(w in sentence for w in words), sentence
