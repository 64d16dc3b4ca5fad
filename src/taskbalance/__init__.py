"""taskbalance: balance the losses of multi-task networks.

>>> import taskbalance as tb
>>> balancer = tb.create("uw", tasks={"depth": "regression", "seg": "classification"})
"""

from importlib import metadata as _metadata

from . import amp, distributed, monitor, nn
from .base import TASK_TYPES, Balancer, InvalidLossError, SeededGenerator, Step
from .gradient import (
    CRMOGM,
    DBMTL,
    IMTL,
    IMTLG,
    MGDA,
    PCD,
    AlignedMTL,
    CAGrad,
    ConFIG,
    DualProj,
    FairGrad,
    GradDrop,
    GradientBalancer,
    GradNorm,
    GradVac,
    Krum,
    NashMTL,
    PCGrad,
    TrimmedMean,
    UPGrad,
)
from .registry import create, get_method, methods, register
from .weighting import (
    DWA,
    FAMO,
    IMTLL,
    RLW,
    STCH,
    UWSO,
    AutomaticWeightedLoss,
    DynamicWeightedLoss,
    Equal,
    Geometric,
    Static,
    UncertaintyRevised,
    UncertaintySimplified,
    UncertaintyWeighting,
)

try:  # the version lives in pyproject.toml only
    __version__ = _metadata.version("taskbalance")
except _metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "amp",
    "distributed",
    "monitor",
    "DBMTL",
    "IMTL",
    "IMTLG",
    "MGDA",
    "AlignedMTL",
    "CAGrad",
    "FairGrad",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GradientBalancer",
    "TrimmedMean",
    "Krum",
    "ConFIG",
    "CRMOGM",
    "PCD",
    "DualProj",
    "NashMTL",
    "PCGrad",
    "UPGrad",
    "Balancer",
    "SeededGenerator",
    "Step",
    "DWA",
    "DynamicWeightedLoss",
    "AutomaticWeightedLoss",
    "Equal",
    "FAMO",
    "Geometric",
    "IMTLL",
    "InvalidLossError",
    "RLW",
    "STCH",
    "Static",
    "TASK_TYPES",
    "UWSO",
    "UncertaintyRevised",
    "UncertaintySimplified",
    "UncertaintyWeighting",
    "__version__",
    "create",
    "get_method",
    "methods",
    "nn",
    "register",
]
