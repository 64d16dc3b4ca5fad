"""The README quotes benchmark results verbatim from the committed results files."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gradient_block_is_the_results_file() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- gradient:start -->\n", "<!-- gradient:end -->"
    block = readme[readme.index(start) + len(start) : readme.index(end)]
    results = (ROOT / "benchmarks" / "results" / "gradient.md").read_text()
    assert block.strip().strip("`").strip() == results.strip(), (
        "README's gradient block differs from benchmarks/results/gradient.md: "
        "run `python benchmarks/gradient.py --out benchmarks/results/gradient.md --readme`"
    )
