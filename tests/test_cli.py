from __future__ import annotations

import subprocess
import sys

import pytest

from taskbalance.cli import main


def test_bench_prints_sigma_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--methods", "equal,uw", "--noise", "1,5", "--epochs", "2", "--label-noise", "0.2"])
    out = capsys.readouterr().out
    assert code == 0
    header = out.splitlines()[1]
    assert "true σ" in header and "σ uw" in header and "σ equal" in header
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:7]}
    assert set(rows) >= {"reg_1", "reg_5", "cls"}
    assert rows["reg_5"][1] == "5"
    assert rows["reg_5"][3] == "-"  # equal learns no σ
    assert float(rows["reg_5"][4]) > 1.0  # uw's σ moved up from its init of 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--methods", "uw,nope"], "unknown method 'nope'"),
        (["bench", "--noise", "1,-2"], "noise stds must be positive"),
        (["bench", "--noise", "a"], "comma-separated numbers"),
    ],
)
def test_bench_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_console_script_runs() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskbalance.cli",
            "bench",
            "--methods",
            "uw",
            "--noise",
            "2",
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "reg_2" in out.stdout
