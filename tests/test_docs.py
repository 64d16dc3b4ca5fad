"""The documentation site: it builds strictly, its Python examples run, every method has a page.

* ``mkdocs build --strict`` into a temporary directory must succeed with no warning
  (broken links, missing pages, docstrings Griffe cannot read).
* Every fenced ```` ```python ```` block of ``docs/**/*.md`` is executed. The blocks of one
  page share a namespace and run in order, in a temporary working directory, so a
  page reads like a session; the test id names the page and the block
  (``getting-started.md#3``). Each block gets a small CPU budget. Code that cannot run
  here (another library's) is fenced as ```` ```text ```` and the page says so.
* Every registered method has ``docs/methods/<name>.md``, a nav entry, a bench plot
  ``docs/img/methods/<name>.png`` shown on its page, and its constructor with the
  defaults of the code.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import taskbalance as tb

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG = ROOT / "mkdocs.yml"
CPU_BUDGET_S = 20.0  # CPU seconds per code block: tiny models, a few steps
IMAGE_LIMIT = 60 * 1024

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<lang>[^\s`]*)[^\n]*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to docs/
    index: int  # 1-based position among the page's Python blocks
    line: int  # 1-based line of the opening fence
    code: str


def fences(text: str) -> list[tuple[str, int, str]]:
    """``(language, line, body)`` of every fenced block (indented fences included)."""
    out: list[tuple[str, int, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.group("indent"), m.group("ticks"), m.group("lang")
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(
            rf"^{re.escape(indent)}{ticks[0]}{{{len(ticks)},}}\s*$", lines[i]
        ):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        out.append((lang.lower(), start + 1, "\n".join(body)))
        i += 1
    return out


def python_blocks() -> dict[str, list[Block]]:
    pages: dict[str, list[Block]] = {}
    for path in sorted(DOCS.rglob("*.md")):
        page = path.relative_to(DOCS).as_posix()
        found = [(line, body) for lang, line, body in fences(path.read_text()) if lang == "python"]
        if found:
            pages[page] = [Block(page, n, line, body) for n, (line, body) in enumerate(found, 1)]
    return pages


PAGES = python_blocks()
ALL_BLOCKS = [b for blocks in PAGES.values() for b in blocks]


# ---------------------------------------------------------------- code blocks
class _PageRun:
    """The shared namespace of one page and how far its blocks have run."""

    def __init__(self, workdir: Path) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        self.workdir = workdir
        self.environ = dict(os.environ)  # the page's own environment (e.g. torchrun's variables)
        self.done = 0
        self.failed: int | None = None


_RUNS: dict[str, _PageRun] = {}


def _execute(block: Block, run: _PageRun) -> None:
    code = compile(block.code, f"docs/{block.page}:block{block.index}(line {block.line})", "exec")
    cwd = os.getcwd()
    os.chdir(run.workdir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(run.environ)
    start = time.process_time()
    try:
        exec(code, run.namespace)
    except BaseException:
        run.failed = block.index
        raise
    finally:
        run.environ = dict(os.environ)
        os.environ.clear()
        os.environ.update(saved)
        torch.set_num_threads(threads)
        os.chdir(cwd)
    spent = time.process_time() - start
    run.done = block.index
    assert spent < CPU_BUDGET_S, (
        f"docs/{block.page} block {block.index} (line {block.line}) used {spent:.1f} s of CPU; "
        f"examples must stay under {CPU_BUDGET_S:.0f} s (tiny models, few steps)"
    )


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[f"{b.page}#{b.index}" for b in ALL_BLOCKS])
def test_python_block_runs(block: Block, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = _RUNS.get(block.page)
    if run is None:
        run = _RUNS[block.page] = _PageRun(tmp_path_factory.mktemp(re.sub(r"\W", "_", block.page)))
    if run.failed is not None and run.failed < block.index:
        pytest.fail(f"an earlier block of docs/{block.page} (#{run.failed}) failed; this one needs its names")
    for earlier in PAGES[block.page][run.done : block.index - 1]:  # when run alone (-k)
        _execute(earlier, run)
    torch.manual_seed(0)
    _execute(block, run)


def test_every_fence_has_a_language() -> None:
    """A bare ``` fence would hide a Python example from the runner."""
    bare = [
        f"{p.relative_to(DOCS)}:{line}"
        for p in DOCS.rglob("*.md")
        for lang, line, _ in fences(p.read_text())
        if not lang
    ]
    assert not bare, f"fenced blocks without a language: {bare}"


def test_fence_parser() -> None:
    text = (
        'a\n```python\nx = 1\n```\n    ```text\n    y\n    ```\n=== "Tab"\n\n'
        "    ```python\n    z = 2\n    ```\n"
    )
    assert fences(text) == [("python", 2, "x = 1"), ("text", 5, "y"), ("python", 10, "z = 2")]


# ------------------------------------------------------------------- methods
def signature_line(cls: type) -> str:
    """The constructor as the method pages show it: ``DWA(tasks, temperature=2.0, window='epoch')``."""
    params, star = [], False
    for p in inspect.signature(cls).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        params.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"{cls.__name__}({', '.join(params)})"


def _nav_pages(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in _nav_pages(item)]
    if isinstance(node, dict):
        return [p for value in node.values() for p in _nav_pages(value)]
    return []


def nav_pages() -> list[str]:
    import yaml  # installed with mkdocs (dev extra)

    return _nav_pages(yaml.safe_load(CONFIG.read_text())["nav"])


@pytest.mark.parametrize("name", tb.methods())
def test_method_has_page_nav_and_plot(name: str) -> None:
    page = DOCS / "methods" / f"{name}.md"
    assert page.is_file(), f"docs/methods/{name}.md is missing: every registered method needs a page"
    assert f"methods/{name}.md" in nav_pages(), f"methods/{name}.md is not in the nav of mkdocs.yml"
    image = DOCS / "img" / "methods" / f"{name}.png"
    assert image.is_file(), f"{image.relative_to(ROOT)} is missing: run `.venv/bin/python docs/gen_plots.py`"
    assert image.stat().st_size < IMAGE_LIMIT, f"{image.name} is {image.stat().st_size} bytes"
    text = page.read_text()
    assert f"(../img/methods/{name}.png)" in text, f"the page does not show img/methods/{name}.png"
    line = signature_line(tb.get_method(name))
    assert line in text, f"docs/methods/{name}.md must show the constructor with the code's defaults: {line}"
    assert any(b.page == f"methods/{name}.md" for b in ALL_BLOCKS), "the page needs a runnable usage snippet"
    assert f'tb.create("{name}"' in text, (
        f'the usage snippet should build the method by name: tb.create("{name}", ...)'
    )


def test_every_page_is_in_the_nav() -> None:
    nav = set(nav_pages())
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not pages - nav, f"pages missing from the nav: {sorted(pages - nav)}"


# ---------------------------------------------------------------------- site
def test_site_builds_strictly(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        assert importlib.util.find_spec(module) is not None, f"{module} is missing: pip install -e '.[dev]'"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(CONFIG),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-4000:]}"
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    assert (tmp_path / "site" / "methods" / "uw" / "index.html").is_file()
