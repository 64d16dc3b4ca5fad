"""taskbalance: balance the losses of multi-task networks.

>>> import taskbalance as tb
>>> balancer = tb.create("uw", tasks={"depth": "regression", "seg": "classification"})
"""

from importlib import metadata as _metadata

from . import amp, distributed, losses, monitor, nn
from .base import TASK_TYPES, Balancer, InvalidLossError, SeededGenerator, Step
from .gradient import (
    DBMTL,
    IMTL,
    IMTLG,
    MGDA,
    RGW,
    AlignedMTL,
    CAGrad,
    ExcessMTL,
    FairGrad,
    GradDrop,
    GradientBalancer,
    GradNorm,
    GradVac,
    MoCo,
    MoDo,
    NashMTL,
    PCGrad,
    SDMGrad,
    UPGrad,
)
from .registry import create, get_method, methods, register
from .weighting import (
    COSMOS,
    DWA,
    FAMO,
    IMTLL,
    PBI,
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
    "losses",
    "monitor",
    "DBMTL",
    "IMTL",
    "IMTLG",
    "MGDA",
    "AlignedMTL",
    "CAGrad",
    "ExcessMTL",
    "FairGrad",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GradientBalancer",
    "MoCo",
    "MoDo",
    "NashMTL",
    "PCGrad",
    "RGW",
    "SDMGrad",
    "UPGrad",
    "Balancer",
    "COSMOS",
    "PBI",
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
