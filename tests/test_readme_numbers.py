"""The README quotes benchmark results verbatim from the committed results files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(script: str, file: str) -> str:
    return f"python benchmarks/{script} --out benchmarks/results/{file} --readme"


BLOCKS = {
    # marker: (results file under benchmarks/results/, the command that writes both)
    "gradient": ("gradient.md", _script("gradient.py", "gradient.md")),
    "uwscales": ("uw_scales.md", _script("uw_scales.py", "uw_scales.md")),
    "nashtoy": ("nash_toy_steps.md", _script("nash_toy_steps.py", "nash_toy_steps.md")),
    "arch": ("architectures.md", _script("architectures.py", "architectures.md")),
    "gradnormtoy": ("gradnorm_toy.md", _script("gradnorm_toy.py", "gradnorm_toy.md")),
    "qm9famo": ("qm9_famo.md", _script("qm9_famo.py", "qm9_famo.md")),
    "default": ("default_run.md", _script("default_bench.py", "default_run.md")),
    "grid": (
        "grid/summary.md",
        "taskbalance bench --grid --out benchmarks/results/grid; "
        "python benchmarks/readme_block.py grid benchmarks/results/grid/summary.md",
    ),
    "fullrun": (
        "real-run/table.md",
        "python benchmarks/real_run_table.py benchmarks/results/real-run --marker fullrun --readme",
    ),
}


@pytest.mark.parametrize("marker", sorted(BLOCKS))
def test_readme_block_is_the_results_file(marker: str) -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = f"<!-- {marker}:start -->\n", f"<!-- {marker}:end -->"
    block = readme[readme.index(start) + len(start) : readme.index(end)]
    file, command = BLOCKS[marker]
    results = (ROOT / "benchmarks" / "results" / file).read_text()
    assert block.strip() == results.strip(), f"README's {marker} block differs from {file}: run `{command}`"


def test_method_pages_quote_the_full_step_ratio_of_the_results_file() -> None:
    results = (ROOT / "benchmarks" / "results" / "gradient.md").read_text()
    section = results[results.index("(c) full training step") :]
    ratios = dict(re.findall(r"^\| ([a-z-]+) \| ([0-9.]+) \|", section, flags=re.M))
    sentence = re.compile(r"`benchmarks/gradient.py`\): \*\*([0-9.]+)×\*\* the plain sum")
    checked = 0
    for name, ratio in ratios.items():
        page = ROOT / "docs" / "methods" / f"{name}.md"
        if not page.is_file():
            continue
        quoted = sentence.findall(page.read_text())
        assert quoted == [ratio], f"docs/methods/{name}.md quotes {quoted}, the results file says {ratio}"
        checked += 1
    assert checked >= 13
