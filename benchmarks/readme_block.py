"""Put a benchmark's result into README.md between its markers (tests/test_readme_numbers.py
checks that the README and the committed results file agree)."""

from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def copy_to_readme(text: str, marker: str) -> None:
    """Replace what is between ``<!-- marker:start -->`` and ``<!-- marker:end -->``."""
    old = README.read_text()
    start, end = f"<!-- {marker}:start -->\n", f"<!-- {marker}:end -->"
    head, rest = old.split(start, 1)
    README.write_text(head + start + text + end + rest.split(end, 1)[1])


def parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark script's parser, with ``--out`` and ``--readme`` (see :func:`publish`)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", default=None, help="write the Markdown block here")
    p.add_argument("--readme", action="store_true", help="copy the block into README.md")
    return p


def publish(text: str, out: str | None, readme: bool, marker: str) -> None:
    """Print ``text``, write it to ``out`` if given, and into the README if asked."""
    print(text)
    if out:
        Path(out).write_text(text)
    if readme:
        copy_to_readme(text, marker)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        raise SystemExit("usage: python benchmarks/readme_block.py MARKER FILE")
    copy_to_readme(Path(sys.argv[2]).read_text(), sys.argv[1])
