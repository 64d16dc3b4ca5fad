"""Gradient-based methods: each combines the per-task gradients into one direction."""

from .aligned_mtl import AlignedMTL
from .cagrad import CAGrad
from .config import ConFIG
from .core import GradientBalancer, GramianBalancer
from .cr_mogm import CRMOGM
from .db_mtl import DBMTL
from .dualproj import DualProj
from .excess_mtl import ExcessMTL
from .fairgrad import FairGrad
from .graddrop import GradDrop
from .gradnorm import GradNorm
from .gradvac import GradVac
from .imtl import IMTL, IMTLG
from .krum import Krum
from .mgda import MGDA
from .moco import MoCo
from .modo import MoDo
from .nash_mtl import NashMTL
from .pcd import PCD
from .pcgrad import PCGrad
from .rgw import RGW
from .sdmgrad import SDMGrad
from .trimmed_mean import TrimmedMean
from .upgrad import UPGrad

__all__ = [
    "TrimmedMean",
    "Krum",
    "ConFIG",
    "CRMOGM",
    "PCD",
    "DualProj",
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
    "GramianBalancer",
    "MoCo",
    "MoDo",
    "NashMTL",
    "PCGrad",
    "RGW",
    "SDMGrad",
    "UPGrad",
]
