"""The README quotes benchmark results verbatim from the committed results files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import taskbalance as tb

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
    "gramianmem": ("gramian_memory.md", _script("gramian_memory.py", "gramian_memory.md")),
    "grid": (
        "grid/summary.md",
        "taskbalance bench --grid --out benchmarks/results/grid; "
        "python benchmarks/readme_block.py grid benchmarks/results/grid/summary.md",
    ),
    "fullrunlong": (
        "real-run-long/table.md",
        "python benchmarks/real_run_table.py benchmarks/results/real-run-long --marker fullrunlong --readme",
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
    """`python benchmarks/gradient.py --out benchmarks/results/gradient.md --readme` writes them."""
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


def test_docs_method_table_is_the_results_files() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("method_table", ROOT / "benchmarks" / "method_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = (ROOT / "docs" / "methods" / "index.md").read_text()
    assert module.ROW.findall(page), "no method rows found"
    assert len(module.ROW.findall(page)) == len(module.columns()) - 1  # every method (not single-task)
    rows = {m.group("name") for m in module.ROW.finditer(page)}
    assert rows == set(tb.methods()), f"rows missing: {sorted(set(tb.methods()) - rows)}"
    assert page == module.render(page), (
        "docs/methods/index.md differs: run `python benchmarks/method_table.py`"
    )


def test_method_pages_quote_their_own_qm9_result_of_the_real_run() -> None:
    """The first "QM9 ... +x% Δm" of a method page is that method's result in the committed
    real run (benchmarks/results/real-run/results.json), to the digits quoted."""
    import json

    real = json.loads((ROOT / "benchmarks" / "results" / "real-run" / "results.json").read_text())
    qm9 = real["problems"]["qm9"]["methods"]
    quote = re.compile(r"QM9[^.]*?([+-]\d+(?:\.\d+)?)% Δm")
    checked = 0
    for page in sorted((ROOT / "docs" / "methods").glob("*.md")):
        found = quote.search(page.read_text())
        if found is None or page.stem not in qm9:
            continue
        text = found.group(1)
        digits = len(text.split(".")[1]) if "." in text else 0
        assert float(text) == round(qm9[page.stem]["delta_stl"]["mean"], digits), (
            f"docs/methods/{page.name} quotes {text}% on QM9; the results file says "
            f"{qm9[page.stem]['delta_stl']['mean']:+.{digits}f}"
        )
        checked += 1
    assert checked >= 10


def _ms(d: dict[str, float]) -> str:
    return f"{d['mean']:+.2f} ± {d['std']:.2f}"


def test_method_pages_real_run_rows_are_the_results_file() -> None:
    """Every `| \\`method\\` | ... |` row of a method page's real-run table."""
    import json
    import statistics

    real = json.loads((ROOT / "benchmarks" / "results" / "real-run" / "results.json").read_text())
    problems = real["problems"]
    row = re.compile(r"^\| `([a-z0-9-]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", re.M)
    checked = 0
    for page in sorted((ROOT / "docs" / "methods").glob("*.md")):
        for name, *cells in row.findall(page.read_text()):
            if name not in problems["qm9"]["methods"]:
                continue
            expected = [_ms(problems[p]["methods"][name]["delta_stl"]) for p in problems]
            mean = statistics.mean(problems[p]["methods"][name]["delta_stl"]["mean"] for p in problems)
            assert [c.strip() for c in cells] == [*expected, f"{mean:+.2f}"], (
                f"docs/methods/{page.name}: {name}"
            )
            checked += 1
    assert checked >= 25


def test_method_pages_captions_are_the_docs_run() -> None:
    """Each method page's "test Δm% is **x** ... **y**" comes from the committed docs run
    (``python docs/gen_plots.py`` writes both)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("gen_plots", ROOT / "docs" / "gen_plots.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    run = json.loads(gen.RESULTS.read_text())["methods"]
    checked = 0
    for page in sorted((ROOT / "docs" / "methods").glob("*.md")):
        found = gen.CAPTION.search(page.read_text())
        if page.stem not in run:
            continue
        assert found, f"docs/methods/{page.name} has no caption sentence"
        assert (found[2], found[4]) == gen.caption_numbers(run[page.stem]), f"docs/methods/{page.name}"
        checked += 1
    assert checked >= 25


@pytest.mark.parametrize(
    ("page", "method"), [("uw", "uw"), ("uw-simplified", "uw-simplified"), ("uw-revised", "uw-revised")]
)
def test_uncertainty_pages_quote_the_sigma_of_the_docs_run(page: str, method: str) -> None:
    import json

    run = json.loads((ROOT / "benchmarks" / "results" / "noisy-tasks-docs.json").read_text())["methods"]
    sigma = [f"{run[method]['sigma'][t]['mean']:.2f}" for t in ("reg_1", "reg_3", "reg_10")]
    text = (ROOT / "docs" / "methods" / f"{page}.md").read_text()
    assert ", ".join(sigma) + " for" in text or ", ".join(sigma) + " against" in text, (page, sigma)


def test_uncertainty_captions_quote_the_learned_sigma_of_the_docs_run() -> None:
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("gen_plots", ROOT / "docs" / "gen_plots.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    run = json.loads(gen.RESULTS.read_text())["methods"]
    for page in sorted((ROOT / "docs" / "methods").glob("*.md")):
        found = gen.SIGMA.search(page.read_text())
        if found:
            assert found.group(0) == gen.sigma_sentence(run[page.stem]), f"docs/methods/{page.name}"


def _memory_rows() -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """(model, K, path, method) -> (memory ratio, time ratio) of the committed memory run."""
    text = (ROOT / "benchmarks" / "results" / "gramian_memory.md").read_text()
    rows = re.findall(
        r"^\| (\w+) \| (\d+) \| ([a-z ]+) \| ([a-z-]+) \| ([0-9.]+) \| ([0-9.]+) \|$", text, flags=re.M
    )
    return {(m, k, path, meth): (float(mem), float(t)) for m, k, path, meth, mem, t in rows}


def test_the_readme_claims_on_parameter_mode_hold_in_the_memory_run() -> None:
    """The README's sentence after the memory table: tb's parameter mode within 1.1× the
    memory of TorchJD's Gramian engine and at most as slow as TorchJD's faster path, for
    both methods at every K on both models; feature mode ≤ 1.5× the sum on the MLP at 10."""
    rows = _memory_rows()
    cells = {(m, k, meth) for m, k, path, meth in rows if path == "tb params"}
    assert {m for m, _, _ in cells} == {"mlp", "resnet18"} and len(cells) == 2 * 3 * 2
    for model, k, method in sorted(cells):
        mem, time = rows[(model, k, "tb params", method)]
        gram_mem, gram_time = rows[(model, k, "torchjd autogram", method)]
        jac_time = rows[(model, k, "torchjd autojac", method)][1]
        where = f"{model}, K = {k}, {method}"
        assert mem <= 1.1 * gram_mem, f"{where}: memory {mem} > 1.1 × autogram's {gram_mem}"
        assert time <= min(gram_time, jac_time), f"{where}: step {time} slower than TorchJD's"
    for method in ("upgrad", "mgda"):
        assert rows[("mlp", "10", "tb features", method)][1] <= 1.5


def _solver_rows() -> dict[tuple[str, str], float]:
    """Section (b) of the committed gradient results: (method, size) -> worst speed-up."""
    results = (ROOT / "benchmarks" / "results" / "gradient.md").read_text()
    section = results[results.index("(b) solvers") : results.index("(c) full training step")]
    assert "QP implementation: compiled" in section, "the solver table was measured without the kernel"
    row = re.compile(
        r"^\| ([a-z-]+) \| (\d+x\d+(?: scaled)?) \| \S+ \| [0-9.]+ \| [0-9.]+ \| ([0-9.]+)x \|", re.M
    )
    return {(name, size): float(worst) for name, size, worst in row.findall(section)}


def test_the_readme_claims_on_solver_speed_hold_in_the_results_file() -> None:
    """The README's sentence after the solver table (issue 11's acceptance): every Gramian
    method at least as fast as TorchJD on its worst family at every size and scale,
    Nash-MTL and CAGrad at least 5× faster, measured with the compiled kernel."""
    rows = _solver_rows()
    methods = {"mgda", "upgrad", "cagrad", "nash-mtl", "fairgrad", "imtl-g", "aligned-mtl"}
    assert {name for name, _ in rows} == methods and len(rows) == 5 * len(methods)
    for (name, size), worst in sorted(rows.items()):
        assert worst >= 1.0, f"{name} at {size}: {worst}x TorchJD's speed on its worst family"
        if name in ("nash-mtl", "cagrad"):
            assert worst >= 5.0, f"{name} at {size}: only {worst}x faster than TorchJD"
    readme = " ".join((ROOT / "README.md").read_text().split())
    claim = "Every Gramian method is at least as fast as TorchJD on its worst family at every size and scale"
    assert claim in readme
    assert "Nash-MTL and CAGrad are at least 5× faster" in readme


def _table(section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| method") and not line.startswith("| model")
    ]


def test_the_readme_prose_on_the_gradient_tables_quotes_the_results_file() -> None:
    """The numbers of the bullets after the gradient block: the engine's times at 10 tasks,
    its memory range, the full step's range and its two outliers, feature mode on the CNN."""
    results = (ROOT / "benchmarks" / "results" / "gradient.md").read_text()
    engine = _table(results[results.index("(a) Jacobian") : results.index("(b) solvers")])
    step = {r[0]: float(r[1]) for r in _table(results[results.index("(c) full training step") :])}
    at = {(r[0], r[1], r[2]): r[3:] for r in engine}
    mlp, cnn = at[("mlp", "10", "params")], at[("cnn", "10", "params")]
    mem = [float(r[5]) for r in engine]
    cnn_features = [float(t) for r in engine if r[0] == "cnn" and r[2] == "features" for t in r[3:5]]
    methods = [v for k, v in step.items() if k not in ("sum", "graddrop", "trimmed-mean")]
    expected = [
        f"{mlp[0]} plain backwards against the loop's {mlp[1]} for the MLP at 10 tasks",
        f"{cnn[0]} against {cnn[1]} for the CNN",
        f"holds {min(mem):.1f}–{max(mem):.1f}× the memory of a plain backward",
        f"step costs {min(methods):.1f}–{max(methods):.1f}× the plain sum at 3 tasks",
        f"(GradDrop {step['graddrop']:.1f}×, TrimmedMean {step['trimmed-mean']:.1f}×",
        f"cheap one: {min(cnn_features):.1f}–{max(cnn_features):.1f}× for the CNN",
    ]
    readme = " ".join((ROOT / "README.md").read_text().split())
    for phrase in expected:
        assert phrase in readme, f"README should say {phrase!r} (benchmarks/results/gradient.md)"
