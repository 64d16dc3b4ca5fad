"""Loss-based methods: each computes weights from the task losses (and its own state)."""

from .dwa import DWA
from .equal import Equal, Static
from .famo import FAMO
from .geometric import Geometric
from .imtl_l import IMTLL
from .preference import COSMOS, PBI
from .rlw import RLW
from .stch import STCH
from .uncertainty import (
    AutomaticWeightedLoss,
    DynamicWeightedLoss,
    UncertaintyRevised,
    UncertaintySimplified,
    UncertaintyWeighting,
)
from .uw_so import UWSO

__all__ = [
    "COSMOS",
    "PBI",
    "DWA",
    "DynamicWeightedLoss",
    "AutomaticWeightedLoss",
    "Equal",
    "FAMO",
    "Geometric",
    "IMTLL",
    "RLW",
    "STCH",
    "Static",
    "UWSO",
    "UncertaintyRevised",
    "UncertaintySimplified",
    "UncertaintyWeighting",
]
