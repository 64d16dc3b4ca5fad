"""The README quotes benchmark results verbatim from the committed results files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCKS = {
    # marker: results file; `python benchmarks/<script> --out benchmarks/results/<file> --readme`
    # writes both
    "gradient": ("gradient.md", "gradient.py"),
    "uwscales": ("uw_scales.md", "uw_scales.py"),
}


@pytest.mark.parametrize("marker", sorted(BLOCKS))
def test_readme_block_is_the_results_file(marker: str) -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = f"<!-- {marker}:start -->\n", f"<!-- {marker}:end -->"
    block = readme[readme.index(start) + len(start) : readme.index(end)]
    file, script = BLOCKS[marker]
    command = f"python benchmarks/{script} --out benchmarks/results/{file} --readme"
    results = (ROOT / "benchmarks" / "results" / file).read_text()
    assert block.strip() == results.strip(), f"README's {marker} block differs from {file}: run `{command}`"
