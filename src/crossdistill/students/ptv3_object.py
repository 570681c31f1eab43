"""PTv3-object: Point Transformer V3 as SAMPart3D's stage-1 backbone, in plain PyTorch.

The network maps packed batches of shapes, each N points with features (xyz in the unit
box first, then normal and colour), to C features per point, with the call signature of
:class:`~crossdistill.students.point_student.PointStudent` (``net(feats, knn)``; the kNN
graph is accepted and not used). Its parts, after PTv3 (Wu et al., CVPR 2024) and the
PTv3-object of SAMPart3D's released code:

* **voxels**: each shape's points fall into a grid of ``grid_size`` (relative to the shape's
  own minimum corner); a voxel's input is the mean of its points' features, and every point
  reads its voxel's output at the end (PTv3's grid sampling with the inverse map);
* **serialisation** (:mod:`.serialization`): every voxel gets a code along each curve of
  ``orders`` (z-order, Hilbert and their x/y-transposed variants); block i of a stage attends
  along curve ``i % len(orders)``; with ``shuffle_orders`` the curves are shuffled whenever a
  resolution is serialised, in training;
* **blocks**: conditional positional encoding (a submanifold 3x3x3 convolution, a linear
  layer and LayerNorm, added), then pre-norm multi-head attention within patches of
  ``patch`` consecutive voxels of the order (:mod:`.patch_attention`), then a pre-norm MLP,
  each residual (with stochastic depth when ``drop_path`` > 0);
* **embedding**: two 3x3x3 submanifold convolutions (a 5x5x5 receptive field, as the
  original's 5x5x5 stem; the rulebook convolution of :mod:`.sparse_conv` is 3x3x3 only),
  BatchNorm and GELU;
* **serialized pooling** between encoder stages of ``stride`` 2: voxels are grouped by
  ``code >> 3`` (their cell at twice the size), features projected and max-pooled, then
  BatchNorm and GELU; **unpooling** in the decoder adds the projected coarse features to the
  projected skip features of the finer level. With ``stride=()`` (PTv3-object) there is no
  pooling and no decoder: consecutive stages change width with a linear layer at full
  resolution;
* a linear head to C outputs.

The device is the parameters'; on CPU a seeded run is bit-for-bit repeatable (on CUDA the voxel
averaging and max pooling are atomic scatters, equal to float rounding only).

Shapes: ``feats`` (B, N, F) float32 with xyz in ``feats[..., :3]``; output (B, N, C).
:meth:`PTv3Config.small` and :meth:`PTv3Config.paper` are the presets (the module
:mod:`.backbones` names them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from crossdistill.students.patch_attention import PatchLayout, patch_attention
from crossdistill.students.serialization import ORDERS, Serialization, serialize
from crossdistill.students.sparse_conv import SubMConv3d, VoxelLevel, voxelize

__all__ = ["PTv3Config", "PTv3Object", "voxel_grid"]


@dataclass(frozen=True)
class PTv3Config:
    """Architecture of :class:`PTv3Object`.

    Attributes:
        in_features: F, input channels per point (xyz first).
        grid_size: voxel edge in the input's units.
        orders: the serialisation curves.
        stride: pooling factor between consecutive encoder stages (only 2 is supported;
            empty: one resolution, no decoder).
        enc_depths, enc_channels, enc_heads, enc_patch: blocks, width, attention heads and
            patch size of each encoder stage.
        dec_depths, dec_channels, dec_heads, dec_patch: the same per decoder stage, finest
            first (one fewer than the encoder stages; empty without pooling).
        mlp_ratio: hidden width of the block MLP over the block width.
        drop_path: largest stochastic-depth rate (linear over the blocks).
        shuffle_orders: shuffle the curves per serialisation in training.
    """

    in_features: int = 9
    grid_size: float = 0.02
    orders: tuple[str, ...] = ORDERS
    stride: tuple[int, ...] = (2, 2)
    enc_depths: tuple[int, ...] = (1, 1, 2)
    enc_channels: tuple[int, ...] = (32, 64, 96)
    enc_heads: tuple[int, ...] = (2, 4, 6)
    enc_patch: tuple[int, ...] = (128, 128, 128)
    dec_depths: tuple[int, ...] = (1, 1)
    dec_channels: tuple[int, ...] = (64, 64)
    dec_heads: tuple[int, ...] = (4, 4)
    dec_patch: tuple[int, ...] = (128, 128)
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    shuffle_orders: bool = True

    def __post_init__(self) -> None:
        S = len(self.enc_depths)
        enc = (self.enc_channels, self.enc_heads, self.enc_patch)
        if S < 1 or any(len(t) != S for t in enc):
            raise ValueError("enc_depths, enc_channels, enc_heads and enc_patch need one entry per stage")
        if self.stride and len(self.stride) != S - 1:
            raise ValueError(f"stride needs {S - 1} entries (one per pooling) or none, got {len(self.stride)}")
        if any(s != 2 for s in self.stride):
            raise ValueError(f"only stride 2 is supported, got {self.stride}")
        n_dec = S - 1 if self.stride else 0
        dec = (self.dec_depths, self.dec_channels, self.dec_heads, self.dec_patch)
        if any(len(t) != n_dec for t in dec):
            raise ValueError(f"dec_depths, dec_channels, dec_heads and dec_patch need {n_dec} entries")
        for c, h in zip(self.enc_channels + self.dec_channels, self.enc_heads + self.dec_heads):
            if c % h:
                raise ValueError(f"{c} channels do not split into {h} heads")
        if not self.orders or self.grid_size <= 0:
            raise ValueError("need at least one serialisation order and a positive grid size")

    @classmethod
    def small(cls, **overrides) -> "PTv3Config":
        """The CPU preset: PTv3's encoder-decoder layout (serialized pooling, shuffled curves)
        cut to 3 stages and 7 blocks, patches of 128, voxels of 0.02 of the unit box (the field
        defaults; chosen here for a CPU step at 4096 points per shape, not taken from a paper)."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "PTv3Config":
        """SAMPart3D's PTv3-object (``configs/sampart3d/sampart3d-trainmlp-render16views.py`` of
        Pointcept/SAMPart3D): 5 stages of (3, 3, 3, 6, 16) blocks, widths (32, 64, 128, 256, 384),
        heads (2, 4, 8, 16, 24), patches of 1024, MLP ratio 4, no pooling (``stride=()``), no
        drop path, curves not shuffled, voxels of 0.01 (its GridSample; there in a unit sphere,
        here in the unit box)."""
        base = dict(grid_size=0.01, stride=(), enc_depths=(3, 3, 3, 6, 16), enc_channels=(32, 64, 128, 256, 384),
                    enc_heads=(2, 4, 8, 16, 24), enc_patch=(1024,) * 5, dec_depths=(), dec_channels=(),
                    dec_heads=(), dec_patch=(), mlp_ratio=4.0, drop_path=0.0, shuffle_orders=False)
        return cls(**{**base, **overrides})

    @classmethod
    def ptv3_segmentation(cls, **overrides) -> "PTv3Config":
        """PTv3's own encoder-decoder defaults (``model.py`` of Pointcept/PointTransformerV3): stride
        (2, 2, 2, 2), encoder (2, 2, 2, 6, 2) blocks of (32, 64, 128, 256, 512), decoder (2, 2, 2, 2)
        of (64, 64, 128, 256), patches of 1024, drop path 0.3, shuffled curves."""
        base = dict(grid_size=0.01, stride=(2, 2, 2, 2), enc_depths=(2, 2, 2, 6, 2),
                    enc_channels=(32, 64, 128, 256, 512), enc_heads=(2, 4, 8, 16, 32), enc_patch=(1024,) * 5,
                    dec_depths=(2, 2, 2, 2), dec_channels=(64, 64, 128, 256), dec_heads=(4, 4, 8, 16),
                    dec_patch=(1024,) * 4, drop_path=0.3, shuffle_orders=True)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


def voxel_grid(xyz: torch.Tensor, grid_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxels of a packed batch of shapes.

    Args:
        xyz: (B, N, 3) positions.
        grid_size: voxel edge.

    Returns:
        coords: (M, 4) int64 unique (cloud, x, y, z), each shape's coordinates counted from its
        own minimum corner, sorted by cloud then x, y, z; point_voxel: (B * N,) int64 row of
        each point's voxel.
    """
    B, N, _ = xyz.shape
    grid = torch.floor(xyz.detach() / grid_size).to(torch.int64)
    grid = grid - grid.amin(1, keepdim=True)  # per shape: independent of its batch companions
    batch = torch.arange(B, device=xyz.device).repeat_interleave(N)
    # integer cell centres through voxelize (voxel size 1): same cells, its sorted unique rows
    return voxelize(grid.reshape(-1, 3).to(torch.float64) + 0.5, batch, 1.0)


class _Level:
    """One resolution during a forward pass: voxels with their neighbour table, curves and patch layouts."""

    def __init__(self, level: VoxelLevel, ser: Serialization) -> None:
        self.level = level
        self.ser = ser
        self.counts = torch.bincount(level.coords[:, 0], minlength=int(level.coords[-1, 0]) + 1)
        self._layouts: dict[int, PatchLayout] = {}

    def layout(self, patch: int) -> PatchLayout:
        size = max(1, min(patch, int(self.counts.max())))  # no patch longer than the largest cloud
        if size not in self._layouts:
            self._layouts[size] = PatchLayout.build(self.counts, size)
        return self._layouts[size]


def _shuffled(ser: Serialization, shuffle: bool) -> Serialization:
    if not shuffle:
        return ser
    perm = torch.randperm(ser.code.shape[0]).to(ser.code.device)
    return Serialization(ser.code[perm], ser.order[perm], ser.inverse[perm], ser.depth)


class _DropPath(nn.Module):
    """Stochastic depth per voxel: zero a residual branch's row with probability p in training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[0], 1, device=x.device, dtype=x.dtype).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class _Block(nn.Module):
    """CPE (submanifold conv) + patch attention along one curve + MLP, each residual, pre-norm."""

    def __init__(self, channels: int, heads: int, patch: int, mlp_ratio: float, drop_path: float,
                 order_index: int) -> None:
        super().__init__()
        self.heads, self.patch, self.order_index = heads, patch, order_index
        self.cpe = SubMConv3d(channels, channels)
        self.cpe_out = nn.Sequential(nn.Linear(channels, channels), nn.LayerNorm(channels))
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        self.drop = _DropPath(drop_path)

    def forward(self, x: torch.Tensor, lv: _Level) -> torch.Tensor:
        x = x + self.cpe_out(self.cpe(x, lv.level))
        k = self.order_index % lv.ser.order.shape[0]
        att = patch_attention(self.qkv(self.norm1(x)), lv.ser.order[k], lv.ser.inverse[k], lv.layout(self.patch),
                              self.heads)
        x = x + self.drop(self.proj(att))
        return x + self.drop(self.mlp(self.norm2(x)))


def _bn(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)  # PTv3's setting


class _Stage(nn.Module):
    def __init__(self, cfg: PTv3Config, channels: int, heads: int, patch: int, depth: int, rates: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [_Block(channels, heads, patch, cfg.mlp_ratio, rates[i], i % len(cfg.orders)) for i in range(depth)])

    def forward(self, x: torch.Tensor, lv: _Level) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, lv)
        return x


class _Pool(nn.Module):
    """Serialized pooling: linear, max over the voxels of one parent cell, BatchNorm, GELU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(c_in, c_out)
        self.post = nn.Sequential(_bn(c_out), nn.GELU())

    def forward(self, x: torch.Tensor, parent: torch.Tensor, n_parents: int) -> torch.Tensor:
        h = self.proj(x)
        out = h.new_zeros(n_parents, h.shape[1])
        out = out.scatter_reduce(0, parent[:, None].expand_as(h), h, reduce="amax", include_self=False)
        return self.post(out)


class _Unpool(nn.Module):
    """Serialized unpooling: projected skip features + the projected features of each voxel's parent."""

    def __init__(self, c_coarse: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(c_coarse, c_out), _bn(c_out), nn.GELU())
        self.proj_skip = nn.Sequential(nn.Linear(c_skip, c_out), _bn(c_out), nn.GELU())

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
        return self.proj_skip(skip) + self.proj(coarse)[parent]


class PTv3Object(nn.Module):
    """Point Transformer V3 per-point network (see the module docstring).

    Args:
        n_classes: C outputs per point.
        config: architecture (:meth:`PTv3Config.small` by default).

    Example:
        >>> net = PTv3Object(5, PTv3Config.small(enc_patch=(16, 16, 16), dec_patch=(16, 16)))
        >>> net(torch.rand(2, 64, 9)).shape
        torch.Size([2, 64, 5])
    """

    def __init__(self, n_classes: int, config: PTv3Config | None = None) -> None:
        super().__init__()
        cfg = config or PTv3Config.small()
        self.config = cfg
        self.n_classes = int(n_classes)
        c0 = cfg.enc_channels[0]
        self.stem = nn.ModuleList([SubMConv3d(cfg.in_features, c0, bias=False), SubMConv3d(c0, c0, bias=False)])
        self.stem_post = nn.Sequential(_bn(c0), nn.GELU())
        n_blocks = sum(cfg.enc_depths) + sum(cfg.dec_depths)
        rates = torch.linspace(0, cfg.drop_path, max(n_blocks, 1)).tolist()
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        at = 0
        for s, depth in enumerate(cfg.enc_depths):
            if s > 0:
                c_in, c_out = cfg.enc_channels[s - 1], cfg.enc_channels[s]
                self.down.append(_Pool(c_in, c_out) if cfg.stride else nn.Linear(c_in, c_out))
            self.enc.append(_Stage(cfg, cfg.enc_channels[s], cfg.enc_heads[s], cfg.enc_patch[s], depth,
                                   rates[at:at + depth]))
            at += depth
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        dec_channels = list(cfg.dec_channels) + [cfg.enc_channels[-1]]
        for s in reversed(range(len(cfg.dec_depths))):  # coarsest decoder stage first
            self.up.append(_Unpool(dec_channels[s + 1], cfg.enc_channels[s], dec_channels[s]))
            depth = cfg.dec_depths[s]
            self.dec.append(_Stage(cfg, dec_channels[s], cfg.dec_heads[s], cfg.dec_patch[s], depth,
                                   rates[at:at + depth][::-1]))
            at += depth
        out_channels = dec_channels[0] if cfg.dec_depths else cfg.enc_channels[-1]
        self.head = nn.Linear(out_channels, self.n_classes)

    def forward(self, feats: torch.Tensor, knn: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, F) point features (xyz first) -> (B, N, C); ``knn`` is ignored (signature of the light net)."""
        cfg = self.config
        B, N, F = feats.shape
        if F != cfg.in_features:
            raise ValueError(f"expected {cfg.in_features} input features per point, got {F}")
        coords, point_voxel = voxel_grid(feats[..., :3], cfg.grid_size)
        flat = feats.reshape(B * N, F)
        M = len(coords)
        x = flat.new_zeros(M, F).index_add(0, point_voxel, flat)
        x = x / torch.bincount(point_voxel, minlength=M).clamp_min(1).to(flat.dtype)[:, None]
        level = VoxelLevel.build(coords)  # keeps voxelize's (cloud, x, y, z) row order
        shuffle = self.training and cfg.shuffle_orders
        lv = _Level(level, _shuffled(serialize(level.coords[:, 1:], level.coords[:, 0], cfg.orders), shuffle))
        h = x
        for conv in self.stem:
            h = conv(h, lv.level)
        h = self.stem_post(h)
        levels, parents, skips = [lv], [], []
        for s, stage in enumerate(self.enc):
            if s > 0:
                if cfg.stride:
                    coarse, parent = levels[-1].level.coarser()
                    ser = _shuffled(levels[-1].ser.coarser(parent, len(coarse)), shuffle)
                    skips.append(h)
                    h = self.down[s - 1](h, parent, len(coarse))
                    levels.append(_Level(coarse, ser))
                    parents.append(parent)
                else:
                    h = self.down[s - 1](h)
            h = stage(h, levels[-1])
        for up, stage in zip(self.up, self.dec):
            parent, skip = parents.pop(), skips.pop()
            levels.pop()
            h = up(h, skip, parent)
            h = stage(h, levels[-1])
        out = self.head(h)
        return out[point_voxel].view(B, N, self.n_classes)
