"""Multi-task architectures that know which parameters are shared.

Every module here maps an input batch to a dict of task outputs and exposes:

* ``features``: the shared representation of the last forward (a tensor), the cut a
  gradient balancer differentiates against with ``backward(losses, features=...)``;
  ``None`` where no single cut separates shared from task-specific computation;
* ``shared_parameters()`` and ``task_parameters(task)``: which parameters are shared
  and which belong to a task, so ``balancer.backward(losses,
  shared_params=model.shared_parameters())`` needs no hand-written lists.
"""

from ..losses import HeteroscedasticHead
from .architectures import CGC, PLE, SNR, HardSharing, MMoE, MultiTaskModule, hard_concrete
from .cross_stitch import CrossStitch
from .dselect_k import DSelectK, smooth_step
from .ltb import LTB, gumbel_softmax
from .mtan import MTAN

__all__ = [
    "CGC",
    "LTB",
    "MMoE",
    "MTAN",
    "PLE",
    "SNR",
    "CrossStitch",
    "DSelectK",
    "HardSharing",
    "HeteroscedasticHead",
    "MultiTaskModule",
    "gumbel_softmax",
    "hard_concrete",
    "smooth_step",
]
