"""The README's side-by-side table: every method and architecture of TorchJD 0.18 and of
LibMTL has a row, and every row names something taskbalance really provides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import taskbalance as tb

ROOT = Path(__file__).resolve().parents[1]
TABLE = re.compile(r"<!-- peers:start -->\n(.*?)<!-- peers:end -->", re.S)

#: LibMTL's weightings (the files of ``LibMTL/weighting/``) and architectures (``__all__``
#: of ``LibMTL/architecture/__init__.py``), median-research-group/LibMTL, read 2026-11
LIBMTL = {
    "Aligned_MTL", "CAGrad", "DB_MTL", "DWA", "EW", "ExcessMTL", "FAMO", "FairGrad", "GLS",
    "GradDrop", "GradNorm", "GradVac", "IMTL", "MGDA", "MoCo", "MoDo", "Nash_MTL", "PCGrad",
    "RGW", "RLW", "SDMGrad", "STCH", "UPGrad", "UW",
    "HPS", "Cross_stitch", "MMoE", "MTAN", "CGC", "PLE", "DSelect_k", "LTB",
}  # fmt: skip


def _rows() -> list[list[str]]:
    match = TABLE.search((ROOT / "README.md").read_text())
    assert match, "README.md needs the side-by-side table between <!-- peers:start/end -->"
    lines = [line for line in match.group(1).splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def _names(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


def _torchjd() -> set[str]:
    aggregation = pytest.importorskip("torchjd.aggregation")
    scalarization = pytest.importorskip("torchjd.scalarization")
    bases = {"Aggregator", "Weighting", "GramianWeightedAggregator", "WeightedAggregator", "Scalarizer"}
    names = {n for n in dir(aggregation) if n[:1].isupper()} | {
        n for n in dir(scalarization) if n[:1].isupper()
    }
    # a weighting is listed under its method's name (UPGradWeighting and UPGrad are one row)
    return {n if n in bases else n.removesuffix("Weighting") for n in names} - bases


def test_every_torchjd_class_has_a_row() -> None:
    listed = set().union(*(_names(r[2]) for r in _rows()))
    missing = sorted(_torchjd() - listed)
    assert not missing, f"TorchJD classes with no row in the README's table: {missing}"


def test_every_libmtl_method_and_architecture_has_a_row() -> None:
    listed = set().union(*(_names(r[3]) for r in _rows()))
    assert not LIBMTL - listed, f"LibMTL names with no row: {sorted(LIBMTL - listed)}"


def test_every_row_names_what_taskbalance_provides() -> None:
    for row in _rows():
        ours = _names(row[1])
        assert ours, f"row {row[0]!r} has nothing in the taskbalance column"
        for name in ours:
            known = (
                name in tb.methods()
                or hasattr(tb.nn, name.split("(")[0])
                or hasattr(tb.losses, name.removeprefix("losses."))
            )
            assert known, f"row {row[0]!r}: taskbalance has no {name!r}"
