"""Multi-Task Attention Network (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .architectures import MultiTaskModule

__all__ = ["MTAN"]


def _conv_bn_relu(inp: int, out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, padding=kernel // 2), nn.BatchNorm2d(out), nn.ReLU(inplace=True)
    )


def _attention(inp: int, mid: int, out: int) -> nn.Sequential:
    """The authors' attention block: conv1x1-BN-ReLU-conv1x1-BN-sigmoid."""
    return nn.Sequential(
        nn.Conv2d(inp, mid, 1),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out, 1),
        nn.BatchNorm2d(out),
        nn.Sigmoid(),
    )


def _default_stages(in_channels: int, channels: Sequence[int]) -> list[tuple[nn.Module, nn.Module]]:
    """SegNet-like stages: (max-pool below the first stage,) conv-BN-ReLU, then conv-BN-ReLU."""
    stages: list[tuple[nn.Module, nn.Module]] = []
    prev = in_channels
    for j, c in enumerate(channels):
        body = _conv_bn_relu(prev, c)
        if j > 0:
            body = nn.Sequential(nn.MaxPool2d(2), *body)
        stages.append((body, _conv_bn_relu(c, c)))
        prev = c
    return stages


def _pool_head(channels: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, outputs))


class MTAN(MultiTaskModule):
    r"""Multi-Task Attention Network (Liu, Johns & Davison, CVPR 2019).

    A shared convolutional backbone of L stages, each split in two parts, ``body`` then
    ``tail``, with outputs :math:`p_j = \mathrm{body}_j(u_{j-1})` and
    :math:`u_j = \mathrm{tail}_j(p_j)` of ``channels[j]`` channels. Each task t has one
    soft-attention module per stage, :math:`g^t_j` = conv1x1-BN-ReLU-conv1x1-BN-sigmoid
    (the authors' ``att_layer``), that reads the stage's intermediate features and the
    task's previous attended features, and masks the stage's output element-wise:

    .. math::
        a^t_1 = g^t_1(p_1) \odot u_1,\qquad
        a^t_j = g^t_j\big([\,p_j,\ \mathrm{pool}(f_{j-1}(a^t_{j-1}))\,]\big) \odot u_j,
        \qquad y_t = h_t(a^t_L),

    where :math:`f_j` (conv3x3-BN-ReLU from ``channels[j]`` to ``channels[j+1]``) is the
    attention encoder shared by the tasks (the authors' ``encoder_block_att``; none after
    the last stage), pool a max-pool to the next stage's spatial size when it differs,
    and :math:`h_t` task t's head. This follows the authors' repository
    (``lorenmt/mtan``; LibMTL's ``MTAN`` is the same for ResNets, except that its
    ``[att_layer(...)] * task_num`` registers one attention module for all tasks).

    ``stages`` is the backbone as a sequence of ``(body, tail)`` modules whose two parts
    both output ``channels[j]`` channels (a ResNet layer splits as ``layer[:-1]``,
    ``layer[-1]``, as the authors do); by default a small SegNet-like backbone with a
    2×2 max-pool at the start of every stage after the first. ``head(channels, outputs)``
    builds a task's head on :math:`a^t_L` (default: global average pool and a linear
    layer, for image-level outputs; pass a convolutional decoder for dense ones);
    ``reduction`` divides the channels inside the attention blocks (1 as in the
    SegNet MTAN, 4 in the authors' ResNet-50 version).

    Shapes: x (B, in_channels, H, W) -> task t: ``head`` output, (B, tasks[t]) by default.

    Shared parameters: the backbone and the attention encoders :math:`f_j` (every task
    reads them). Task t: its attention modules and head. There is no feature cut:
    every task reads the backbone at every stage, so no one tensor separates shared from
    task computation (as for a multi-level :class:`PLE`). ``features`` is ``None`` and
    :meth:`feature_cut` refuses; balance ``shared_parameters()``.

    Example:
        >>> m = MTAN({"a": 1, "b": 3}, channels=(8, 16), in_channels=3)
        >>> {t: tuple(y.shape) for t, y in m(torch.randn(2, 3, 16, 16)).items()}
        {'a': (2, 1), 'b': (2, 3)}
        >>> [tuple(a.shape) for a in m.last_masks["a"]]
        [(2, 8, 16, 16), (2, 16, 8, 8)]
    """

    _shared_names: ClassVar[tuple[str, ...]] = ("backbone", "att_encoders")
    _task_keys: ClassVar[dict[str, int]] = {**MultiTaskModule._task_keys, "attention": 2}

    def __init__(
        self,
        tasks: Mapping[str, int],
        stages: Sequence[tuple[nn.Module, nn.Module]] | None = None,
        channels: Sequence[int] = (16, 32, 64),
        in_channels: int = 3,
        head: Callable[[int, int], nn.Module] | None = None,
        reduction: int = 1,
    ) -> None:
        super().__init__(tasks)
        if not channels:
            raise ValueError("channels must name at least one stage")
        if stages is None:
            stages = _default_stages(in_channels, channels)
        if len(stages) != len(channels):
            raise ValueError(f"{len(stages)} stages but {len(channels)} channel counts: give one per stage")
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        self.backbone = nn.ModuleList(nn.ModuleList([body, tail]) for body, tail in stages)
        self.attention = nn.ModuleList(
            nn.ModuleDict({t: _attention(c if j == 0 else 2 * c, max(1, c // reduction), c) for t in tasks})
            for j, c in enumerate(channels)
        )
        self.att_encoders = nn.ModuleList(
            _conv_bn_relu(channels[j], channels[j + 1]) for j in range(len(channels) - 1)
        )
        make_head = head or _pool_head
        self.towers = nn.ModuleDict({t: make_head(channels[-1], o) for t, o in tasks.items()})
        self.last_masks: dict[str, list[Tensor]] = {}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        names = list(self.tasks)
        attended: dict[str, Tensor] = {}
        self.last_masks = {t: [] for t in names}
        u = x
        stages = cast(list[nn.ModuleList], self.backbone)
        attention = cast(list[nn.ModuleDict], self.attention)
        for j, (body, tail) in enumerate(stages):
            p = body(u)
            u = tail(p)
            for t in names:
                if j == 0:
                    inp = p
                else:
                    prev = self.att_encoders[j - 1](attended[t])
                    if prev.shape[-2:] != p.shape[-2:]:
                        prev = F.adaptive_max_pool2d(prev, p.shape[-2:])
                    inp = torch.cat([p, prev], dim=1)
                mask = attention[j][t](inp)
                self.last_masks[t].append(mask.detach())
                attended[t] = mask * u
        return {t: self.towers[t](attended[t]) for t in names}

    def feature_cut(self) -> Tensor:
        """MTAN has no single shared representation: a clear error."""
        raise ValueError(
            "MTAN has no single shared representation (each task's attention reads the backbone at "
            "every stage): balance shared_parameters() instead"
        )
