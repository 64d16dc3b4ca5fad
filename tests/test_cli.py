from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from taskbalance.cli import main

from .helpers import child_env


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--methods", "uw,nope"], "unknown method 'nope'"),
        (["bench", "--problems", "imagenet"], "unknown problem 'imagenet'"),
    ],
)
def test_bench_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_data_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    for name in (
        "noisy-tasks",
        "noisy-scales",
        "gradnorm-toy",
        "multi-mnist",
        "multi-fashion",
        "census",
        "qm9",
    ):
        assert name in out
    assert " no " not in out, "the test command installs every data set"


def test_missing_data_is_reported_with_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["bench", "--problems", "multi-fashion", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Fashion-MNIST not found" in err and "apt-get install dataset-fashion-mnist" in err


def test_console_script_runs(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskbalance.cli",
            "bench",
            "--methods",
            "uw",
            "--quick",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
            "--no-plots",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "noisy-scales" in out.stdout and "learned σ" in out.stdout
    assert " ± " in out.stdout  # the default is 3 seeds, so the table shows a spread


def test_default_bench_is_three_seeds_of_every_method_on_noisy_scales() -> None:
    from taskbalance.bench.grid import LEARNED, PAIRS
    from taskbalance.cli import build_parser, resolve
    from taskbalance.registry import methods

    args = build_parser().parse_args(["bench"])
    problems, names = resolve(args)
    assert args.seeds == 3 and problems == ("noisy-scales",) and set(names) == set(methods())
    assert resolve(build_parser().parse_args(["bench", "--grid"])) == (tuple(PAIRS), LEARNED)


# ------------------------------------------------------------ issue 12, items 16 to 18
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
        (["--seeds", "-1"], "--seeds must be an integer >= 1, got -1"),
        (["--epochs", "-2"], "--epochs must be an integer >= 1, got -2"),
        (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--device", "banana"], "'banana' is not a torch device"),
    ],
)
def test_bench_arguments_are_validated_before_training(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--device", "cuda"])
    assert exc.value.code == 2
    assert "no CUDA device; use --device cpu" in capsys.readouterr().err


def test_unwritable_out_fails_before_any_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    started = time.perf_counter()
    code = main(["bench", "--methods", "uw", "--quick", "--out", str(blocker / "out")])
    assert code == 2 and time.perf_counter() - started < 5
    assert f"--out {blocker / 'out'}: cannot write there" in capsys.readouterr().err


def test_bench_without_matplotlib_writes_every_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskbalance.bench import report

    monkeypatch.setattr(report, "plots_available", lambda: False)
    code = main(
        ["bench", "--methods", "uw", "--quick", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "plots skipped" in out and "pip install 'taskbalance[bench]'" in out
    assert (tmp_path / "report.md").is_file() and (tmp_path / "results.csv").is_file()
    assert not list(tmp_path.glob("*.png"))


BENCH = ["bench", "--methods", "equal,uw,mgda", "--seeds", "2", "--quick", "--epochs", "2", "--no-plots"]


def _bench(out: Path, background: bool = False) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "taskbalance.cli", *BENCH, "--no-progress", "--out", str(out)]
    env = child_env(PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    if background:
        return subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, env=env, text=True, capture_output=True, check=True, timeout=600)


def _wait_for_cells(out: Path, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while len(list(out.glob("cells/**/*.json"))) < count:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no cell was written"
        time.sleep(0.05)


def _metrics(out: Path) -> dict[str, object]:
    results = json.loads((out / "results.json").read_text())
    return {p: {m: r["metrics"] for m, r in res["methods"].items()} for p, res in results["problems"].items()}


def test_interrupted_and_damaged_runs_resume_to_the_uninterrupted_result(tmp_path: Path) -> None:
    _bench(tmp_path / "whole")
    out = tmp_path / "broken"
    for sig in (signal.SIGINT, signal.SIGKILL):  # Ctrl-C, then a hard kill
        proc = _bench(out, background=True)
        assert isinstance(proc, subprocess.Popen)
        _wait_for_cells(out, 2 if sig == signal.SIGINT else 4, proc)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    cells = sorted(out.glob("cells/**/*.json"))
    assert len(cells) >= 4
    # cells are written atomically: every one left by the kills is whole (a SIGKILL may
    # leave a hidden .tmp file mid-write, which no run reads)
    assert all(isinstance(json.loads(c.read_text()), dict) for c in cells)
    # every kind of damage: bytes that are not UTF-8, JSON of the wrong kind, a cell of
    # the right configuration whose metrics are missing or null
    whole = {c.relative_to(tmp_path / "whole"): c for c in (tmp_path / "whole").glob("cells/**/*.json")}
    damage: list[bytes] = [b"\xff\xfe\x00garbage", b"[]", b"null", b'{"config": 1}']
    for key in ("missing", "null"):
        cell = json.loads(next(iter(whole.values())).read_text())
        if key == "missing":
            del cell["metrics"]
        else:
            cell["metrics"] = None
        damage.append(json.dumps(cell).encode())
    targets = [out / rel for rel in sorted(whole)][: len(damage)]
    for cell_path, data in zip(targets, damage):
        cell_path.parent.mkdir(parents=True, exist_ok=True)
        cell_path.write_bytes(data)
    _bench(out)
    assert _metrics(out) == _metrics(tmp_path / "whole")


def test_runs_resuming_into_one_folder_at_once_do_not_trip_over_the_write_probe(tmp_path: Path) -> None:
    """Two bench processes may start into the same --out (one per problem, say): the
    write check must not fail because the other one removed its probe file."""
    from concurrent.futures import ThreadPoolExecutor

    from taskbalance.cli import _writable

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _writable(str(tmp_path)), range(400)))
    assert answers == [None] * 400
    assert list(tmp_path.iterdir()) == []
