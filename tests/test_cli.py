from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskbalance.cli import main


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
    for name in ("noisy-tasks", "gradnorm-toy", "multi-mnist", "multi-fashion", "census", "qm9"):
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
    assert "noisy-tasks" in out.stdout and "learned σ" in out.stdout
