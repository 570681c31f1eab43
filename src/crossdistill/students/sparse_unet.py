"""Sparse-voxel U-Net student and the self-calibrated domain-adaptation module (UDAKD / FSKD).

:class:`VoxelPyramid` holds a scan's voxel levels (finest first) and the parent of every
voxel in the next level; it is built once per scan and reused by every layer.

:class:`SparseUNet`: per level two submanifold 3x3x3 convolutions (LayerNorm, ReLU,
residual), down by a scatter-mean to the coarser level, back up by copying the parent's
features and concatenating the skip connection (Pointcept / MinkUNet layout, scaled
down for a CPU). Output: (N, widths[0]) features at the finest voxels.

:class:`SelfCalibratedConv3d` brings SCNet's self-calibrated convolution (Liu et al.,
CVPR 2020) to sparse voxels, as the domain-adaptation module of Kang et al. (UDAKD /
FSKD, ICRA 2025) does on point clouds: the channels split in two halves; one half is a
plain convolution ``K1``; the other is *calibrated*: its features are averaged at the
coarser level, convolved there (``K2``) and brought back up, and
``sigmoid(x + up(K2(down(x))))`` gates ``K3(x)`` before ``K4``. The gate lets each voxel's
response depend on a wider context than its 3x3x3 neighbourhood.
:class:`DomainAdaptationModule` stacks two of them with residuals; it sits between the
LiDAR backbone and the projection into the image teacher's feature space, where the
modality-specific part of the features is meant to be filtered out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from crossdistill.students.sparse_conv import SubMConv3d, VoxelLevel, pool, unpool

__all__ = ["VoxelPyramid", "SparseUNet", "SelfCalibratedConv3d", "DomainAdaptationModule"]


@dataclass
class VoxelPyramid:
    """Voxel levels of one batch of scans.

    Attributes:
        levels: finest first; ``levels[0]`` are the input voxels.
        parents: ``parents[i]`` (len(levels[i]),) int64 row in ``levels[i + 1]``.
    """

    levels: list[VoxelLevel]
    parents: list[torch.Tensor]

    @classmethod
    def build(cls, coords: torch.Tensor, depth: int) -> "VoxelPyramid":
        """``depth`` levels from (N, 4) int64 voxel coordinates (sorted as :func:`voxelize` returns them)."""
        levels, parents = [VoxelLevel.build(coords)], []
        for _ in range(depth - 1):
            nxt, parent = levels[-1].coarser()
            levels.append(nxt)
            parents.append(parent)
        return cls(levels, parents)

    def to(self, device: str | torch.device) -> "VoxelPyramid":
        return VoxelPyramid([lv.to(device) for lv in self.levels], [p.to(device) for p in self.parents])


class _Block(nn.Module):
    """Two SubM convolutions with LayerNorm and ReLU; residual when the widths agree (else a linear skip)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = SubMConv3d(c_in, c_out, bias=False), SubMConv3d(c_out, c_out, bias=False)
        self.norm1, self.norm2 = nn.LayerNorm(c_out), nn.LayerNorm(c_out)
        self.skip = nn.Identity() if c_in == c_out else nn.Linear(c_in, c_out, bias=False)

    def forward(self, x: torch.Tensor, level: VoxelLevel) -> torch.Tensor:
        h = torch.relu(self.norm1(self.conv1(x, level)))
        return torch.relu(self.norm2(self.conv2(h, level)) + self.skip(x))


class SparseUNet(nn.Module):
    """U-Net over a :class:`VoxelPyramid`: (N, in_channels) -> (N, widths[0]).

    Example:
        >>> from crossdistill.students.sparse_conv import voxelize
        >>> c, _ = voxelize(torch.rand(500, 3) * 4, torch.zeros(500, dtype=torch.long), 0.25)
        >>> pyr = VoxelPyramid.build(c, 3)
        >>> SparseUNet(4, (8, 16, 32))(torch.randn(len(c), 4), pyr).shape[1]
        8
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        w = self.widths
        self.stem = nn.Linear(in_channels, w[0])
        self.down = nn.ModuleList(_Block(w[max(i - 1, 0)], w[i]) for i in range(len(w)))
        self.up = nn.ModuleList(_Block(w[i + 1] + w[i], w[i]) for i in range(len(w) - 1))

    @property
    def depth(self) -> int:
        return len(self.widths)

    def forward(self, features: torch.Tensor, pyramid: VoxelPyramid) -> torch.Tensor:
        if len(pyramid.levels) < self.depth:
            raise ValueError(f"the pyramid has {len(pyramid.levels)} levels, the U-Net needs {self.depth}")
        x = self.stem(features)
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = pool(x, pyramid.parents[i - 1], len(pyramid.levels[i]))
            x = block(x, pyramid.levels[i])
            skips.append(x)
        for i in range(self.depth - 2, -1, -1):
            x = self.up[i](torch.cat([unpool(x, pyramid.parents[i]), skips[i]], 1), pyramid.levels[i])
        return x


class SelfCalibratedConv3d(nn.Module):
    """Self-calibrated sparse convolution (see the module docstring); ``channels`` must be even."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError("self-calibrated convolution needs an even channel count")
        h = channels // 2
        self.k1, self.k2, self.k3, self.k4 = (SubMConv3d(h, h) for _ in range(4))

    def forward(self, x: torch.Tensor, pyramid: VoxelPyramid) -> torch.Tensor:
        """(N, C) at ``pyramid.levels[0]`` -> (N, C); the calibration runs at ``levels[1]``."""
        x1, x2 = x.chunk(2, dim=1)
        coarse = pool(x1, pyramid.parents[0], len(pyramid.levels[1]))
        context = unpool(self.k2(coarse, pyramid.levels[1]), pyramid.parents[0])
        y1 = self.k4(self.k3(x1, pyramid.levels[0]) * torch.sigmoid(x1 + context), pyramid.levels[0])
        return torch.cat([y1, self.k1(x2, pyramid.levels[0])], 1)


class DomainAdaptationModule(nn.Module):
    """Two residual self-calibrated convolutions with LayerNorm and ReLU: (N, C) -> (N, C)."""

    def __init__(self, channels: int, blocks: int = 2) -> None:
        super().__init__()
        self.convs = nn.ModuleList(SelfCalibratedConv3d(channels) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(blocks))

    def forward(self, x: torch.Tensor, pyramid: VoxelPyramid) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = torch.relu(norm(conv(x, pyramid)) + x)
        return x
