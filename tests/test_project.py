"""The project's paperwork: licence, version, changelog, the contributing guide's example,
and its checklist's test file for every method."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import taskbalance

from .helpers import child_env

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # read with re: tomllib is Python 3.11+


def _field(name: str) -> str:
    match = re.search(rf'^{name} = "([^"]*)"', PYPROJECT, flags=re.M)
    assert match, name
    return match.group(1)


def test_version_has_one_source() -> None:
    version = _field("version")
    assert taskbalance.__version__ == metadata.version("taskbalance") == version
    text = (ROOT / "src" / "taskbalance" / "__init__.py").read_text()
    assert version not in text, "the version is written in pyproject.toml only"
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text()


def test_license_file_matches_the_declared_licence() -> None:
    assert _field("license") == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_contributing_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    script = tmp_path / "example.py"
    script.write_text(blocks[0])  # a fresh process: the example registers a method
    proc = subprocess.run(
        [sys.executable, str(script)], env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_dev_extra_is_the_union_of_the_groups() -> None:
    assert 'dev = ["taskbalance[test,lint,docs,crosscheck,bench,lightning]"]' in PYPROJECT
    for group in ("test", "lint", "docs", "crosscheck", "bench", "lightning"):
        assert re.search(rf"^{group} = \[", PYPROJECT, flags=re.M), group


@pytest.mark.parametrize("name", taskbalance.methods())
def test_every_method_has_its_own_test_module(name: str) -> None:
    """CONTRIBUTING.md's checklist: a method's own tests are in tests/methods/test_<name>.py."""
    path = ROOT / "tests" / "methods" / f"test_{name.replace('-', '_')}.py"
    assert path.is_file(), f"{name}: no {path.relative_to(ROOT)}"
    text = path.read_text()
    assert re.search(r"^def test_", text, flags=re.M) and f'"{name}"' in text, name
