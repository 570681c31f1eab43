"""Sparse voxel convolution in plain torch (no spconv / MinkowskiEngine build needed).

A LiDAR scan occupies a tiny share of its bounding grid, so the student convolves only
the occupied voxels. Here:

* :func:`voxelize`: points -> unique integer voxel coordinates (B, x, y, z), mean point
  features per voxel, and each point's voxel;
* :class:`VoxelLevel`: the coordinates of one resolution with their 3x3x3 neighbour table
  (``(N, 27)`` row index of each neighbour, -1 when empty), built once with a sort and
  ``searchsorted`` over packed int64 keys, shared by every convolution at that level;
* :class:`SubMConv3d`: a submanifold convolution (outputs only at occupied voxels, as
  spconv's ``SubMConv3d``) that works only on occupied neighbour pairs: a rulebook per level
  lists, for each of the 27 offsets, the (output, input) rows it joins, and each offset is
  one gather and one (pairs, C_in) @ (C_in, C_out) product;
* :meth:`VoxelLevel.coarser`: the next level (coordinates // 2) with each voxel's parent,
  so features go down by a scatter-mean (:func:`pool`) and back up by indexing
  (:func:`unpool`).

Everything is device-agnostic and deterministic.

**Backends.** :class:`SubMConv3d` runs either on this module's rulebook (``backend="torch"``,
the fallback, nothing to install) or through spconv's ``SubMConv3d`` (``backend="spconv"``,
the ``[lidar]`` extra: ``pip install spconv`` is its CPU build; with an NVIDIA GPU install the
wheel matching the CUDA version instead, e.g. ``spconv-cu120`` / ``spconv-cu121``). Both read
the same weight (27 * C_in, C_out), so a model and its checkpoint do not depend on the backend;
spconv's per-level index pairs are cached on the :class:`VoxelLevel` and shared by its
convolutions, as the rulebook is. :func:`set_backend` switches every convolution of a model;
:func:`resolve_backend` turns "auto" into spconv when it imports, else torch. A CPU-only spconv
build given CUDA tensors falls back to the torch backend. Only submanifold convolutions go
through spconv: levels are coarsened by scatter-mean pooling, never by spconv's strided
``SparseConv3d`` (which gave wrong outputs with 2 threads in its 2.3.8 CPU build, STACK.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

__all__ = ["voxelize", "VoxelLevel", "SubMConv3d", "pool", "unpool", "OFFSETS", "BACKENDS", "resolve_backend",
           "set_backend", "spconv_available"]

BACKENDS = ("torch", "spconv")

#: the 27 offsets of a 3x3x3 kernel, centre at index 13
OFFSETS = torch.tensor([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)],
                       dtype=torch.int64)
_BITS = 20  # per spatial axis at most: coordinates up to 2^20 voxels after the shift


def _axis_bits(coords: torch.Tensor) -> int:
    """Bits per spatial axis that hold every coordinate of (N, 4) ``coords`` and one step beyond
    (a neighbour query), at least 1."""
    top = int(coords[:, 1:].max()) + 1 if len(coords) else 0
    return max(1, top.bit_length())


def _pack(coords: torch.Tensor, bits: int) -> torch.Tensor:
    """(N, 4) int64 (batch, x, y, z) with x, y, z in [0, 2^bits) -> (N,) int64 keys that sort as
    (batch, x, y, z) and are unique for unique rows.

    The batch index takes the bits the axes leave of 63 (a key stays non-negative).

    Raises:
        ValueError: the batch index does not fit beside ``3 * bits`` bits of coordinates.
    """
    b, x, y, z = coords.unbind(1)
    top_batch = int(b.max()) if len(b) else 0
    if top_batch.bit_length() + 3 * bits > 63:
        raise ValueError(f"{top_batch + 1} clouds of {bits}-bit voxel coordinates do not fit one packed key; "
                         "use fewer clouds per batch or a larger voxel size")
    return (((b << bits) | x) << bits | y) << bits | z


def voxelize(points: torch.Tensor, batch: torch.Tensor, voxel_size: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel coordinates of a batch of point clouds.

    Args:
        points: (P, 3) float positions.
        batch: (P,) int64 cloud index of each point (as many clouds as the bits the voxel
            coordinates leave of a 63-bit key: thousands for a LiDAR scan at 5 cm).
        voxel_size: edge length.

    Returns:
        coords: (N, 4) int64 unique (batch, x, y, z), sorted by packed key.
        point_voxel: (P,) int64 row of ``coords`` holding each point.

    Example:
        >>> c, pv = voxelize(torch.tensor([[0.1, 0, 0], [0.2, 0, 0], [1.5, 0, 0]]), torch.zeros(3, dtype=torch.long), 1.0)
        >>> c.tolist(), pv.tolist()
        ([[0, 0, 0, 0], [0, 1, 0, 0]], [0, 0, 1])
    """
    if len(points) == 0:
        raise ValueError("no points to voxelize")
    grid = torch.floor(points[:, :3] / voxel_size).to(torch.int64)
    grid = grid - grid.min(0).values  # non-negative per axis
    if int(grid.max()) >= 1 << _BITS:
        raise ValueError(f"the scene spans more than 2^{_BITS} voxels along an axis; use a larger voxel size")
    coords = torch.cat([batch.to(torch.int64)[:, None], grid], 1)
    keys = _pack(coords, _axis_bits(coords))
    uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    first = torch.full((len(uniq),), len(keys), dtype=torch.int64, device=keys.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys), device=keys.device), reduce="amin")
    return coords[first], inverse


@dataclass
class VoxelLevel:
    """Occupied voxels of one resolution and their neighbour table.

    Attributes:
        coords: (N, 4) int64 (batch, x, y, z), sorted by packed key.
        neighbours: (N, 27) int64 row of each 3x3x3 neighbour (order :data:`OFFSETS`), -1 if empty.
    """

    coords: torch.Tensor
    neighbours: torch.Tensor
    _rulebook: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False, compare=False)
    _spconv_pairs: dict | None = field(default=None, repr=False, compare=False)

    def rulebook(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per offset (order :data:`OFFSETS`): (output rows, input rows) of its occupied pairs,
        each (M_k,) int64; computed once per level and shared by every convolution on it."""
        if self._rulebook is None:
            book = []
            for k in range(27):
                col = self.neighbours[:, k]
                rows = (col >= 0).nonzero().squeeze(1)
                book.append((rows, col[rows]))
            self._rulebook = book
        return self._rulebook

    def to(self, device: str | torch.device) -> "VoxelLevel":
        """The level on ``device`` (its rulebook too, when built)."""
        book = None if self._rulebook is None else [(r.to(device), c.to(device)) for r, c in self._rulebook]
        return VoxelLevel(self.coords.to(device), self.neighbours.to(device), book)

    @classmethod
    def build(cls, coords: torch.Tensor) -> "VoxelLevel":
        bits = _axis_bits(coords)  # room for the +1 neighbour of the largest coordinate
        keys = _pack(coords, bits)
        order = torch.argsort(keys)
        coords, keys = coords[order], keys[order]
        off = OFFSETS.to(coords.device)
        nb = coords[:, None, 1:] + off[None]  # (N, 27, 3)
        valid = (nb >= 0).all(-1)
        full = torch.cat([coords[:, None, :1].expand(-1, 27, 1), nb.clamp_min(0)], -1)
        q = _pack(full.reshape(-1, 4), bits)
        pos = torch.searchsorted(keys, q).clamp_max(len(keys) - 1)
        found = (keys[pos] == q) & valid.reshape(-1)
        return cls(coords, torch.where(found, pos, torch.full_like(pos, -1)).reshape(-1, 27))

    def __len__(self) -> int:
        return int(len(self.coords))

    def coarser(self) -> tuple["VoxelLevel", torch.Tensor]:
        """(the level at twice the voxel size, (N,) int64 parent row of each voxel)."""
        parent_coords = torch.cat([self.coords[:, :1], self.coords[:, 1:] // 2], 1)
        keys = _pack(parent_coords, _axis_bits(parent_coords))
        uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        first = torch.full((len(uniq),), len(keys), dtype=torch.int64, device=keys.device)
        first.scatter_reduce_(0, inverse, torch.arange(len(keys), device=keys.device), reduce="amin")
        return VoxelLevel.build(parent_coords[first]), inverse


def pool(features: torch.Tensor, parent: torch.Tensor, n_parents: int) -> torch.Tensor:
    """(N, C) child features -> (n_parents, C) mean per parent."""
    out = features.new_zeros(n_parents, features.shape[1])
    out.index_add_(0, parent, features)
    count = torch.bincount(parent, minlength=n_parents).clamp_min(1).to(features.dtype)
    return out / count[:, None]


def unpool(features: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """(M, C) parent features -> (N, C) each child's parent's."""
    return features[parent]


class SubMConv3d(nn.Module):
    """Submanifold 3x3x3 convolution on a :class:`VoxelLevel` (see the module docstring).

    Example:
        >>> lvl = VoxelLevel.build(torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]]))
        >>> conv = SubMConv3d(2, 3)
        >>> conv(torch.ones(2, 2), lvl).shape
        torch.Size([2, 3])
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True, backend: str = "torch") -> None:
        super().__init__()
        self.backend = resolve_backend(backend) if backend != "torch" else "torch"
        self.weight = nn.Parameter(torch.empty(27 * c_in, c_out))
        nn.init.kaiming_uniform_(self.weight.view(27, c_in, c_out).permute(2, 0, 1).reshape(c_out, -1), a=5 ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.c_in = c_in

    def forward(self, features: torch.Tensor, level: VoxelLevel) -> torch.Tensor:
        """(N, C_in) -> (N, C_out) at the same voxels.

        Works on the occupied (output, input) pairs of each offset only (the level's
        :meth:`~VoxelLevel.rulebook`): per offset one gather, one (pairs, C_in) @ (C_in, C_out)
        product and one add at the output rows. Within an offset every output row and every input
        row occurs at most once, so the adds never collide (deterministic on CUDA too). Autograd
        keeps only the input and the weight (:class:`_RulebookConv`): the gathered pairs are
        gathered again in backward instead of being stored, as spconv does.
        """
        if self.backend == "spconv" and not (features.is_cuda and _spconv()[1]):
            return _spconv_forward(self, features, level)
        out = _RulebookConv.apply(features, self.weight.view(27, self.c_in, -1), level.rulebook())
        return out + self.bias if self.bias is not None else out


class _RulebookConv(torch.autograd.Function):
    """Sum over offsets k of ``scatter(rows_k, features[cols_k] @ weight[k])``; saves only inputs.

    ``weight`` (27, C_in, C_out), offset 13 the centre (rows = cols = every voxel).
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: torch.Tensor, book: list) -> torch.Tensor:
        out = features @ weight[13]  # the centre: every voxel is its own neighbour
        for k, (rows, cols) in enumerate(book):
            if k != 13 and len(rows):
                out.index_add_(0, rows, features[cols] @ weight[k])
        ctx.save_for_backward(features, weight)
        ctx.book = book
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        features, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        gf = gw = None
        if ctx.needs_input_grad[1]:
            gw = torch.empty_like(weight)
            gw[13] = features.T @ grad_out
        if ctx.needs_input_grad[0]:
            gf = grad_out @ weight[13].T
        for k, (rows, cols) in enumerate(ctx.book):
            if k == 13:
                continue
            if not len(rows):
                if gw is not None:
                    gw[k] = 0
                continue
            g = grad_out[rows]  # (pairs, C_out)
            if gw is not None:
                gw[k] = features[cols].T @ g
            if gf is not None:
                gf.index_add_(0, cols, g @ weight[k].T)
        return gf, gw, None


# ------------------------------------------------------------------------------ spconv backend
_SPCONV = None


def _spconv():
    """spconv.pytorch, imported once; on its CPU-only build the CUDA stream lookups that its
    backward asserts on are replaced by the null stream (STACK.md: "the stream patch")."""
    global _SPCONV
    if _SPCONV is None:
        try:
            import spconv.pytorch as sp
            from spconv.cppconstants import CPU_ONLY_BUILD
            from spconv.pytorch import cppcore, ops
        except ImportError:
            raise ImportError("the spconv sparse backend needs spconv: pip install 'crossdistill[lidar]' "
                              "(CPU build; with CUDA install the spconv-cuXXX wheel of your CUDA)") from None
        cpu_only = bool(CPU_ONLY_BUILD)
        if cpu_only:
            ops.get_current_stream = lambda: 0
            cppcore.get_current_stream = lambda: 0
        _SPCONV = (sp, cpu_only)
    return _SPCONV


def spconv_available() -> bool:
    """Whether spconv imports here."""
    try:
        _spconv()
        return True
    except ImportError:
        return False


def resolve_backend(name: str) -> str:
    """"auto" -> "spconv" when it imports, else "torch"; "torch" / "spconv" as given (spconv checked)."""
    if name == "auto":
        return "spconv" if spconv_available() else "torch"
    if name not in BACKENDS:
        raise ValueError(f"unknown sparse backend {name!r}: one of {BACKENDS} or 'auto'")
    if name == "spconv":
        _spconv()
    return name


def set_backend(module: nn.Module, name: str) -> nn.Module:
    """Switch every :class:`SubMConv3d` inside ``module`` to backend ``name`` (resolved); returns ``module``."""
    name = resolve_backend(name)
    for m in module.modules():
        if isinstance(m, SubMConv3d):
            m.backend = name
    return module


def _spconv_forward(conv: "SubMConv3d", features: torch.Tensor, level: VoxelLevel) -> torch.Tensor:
    sp, _ = _spconv()
    c_out = conv.weight.shape[1]
    if "_sp" not in conv.__dict__:  # not a registered submodule: the state dict stays the backend's-agnostic one
        conv.__dict__["_sp"] = sp.SubMConv3d(conv.c_in, c_out, 3, bias=conv.bias is not None, indice_key="subm")
    module = conv.__dict__["_sp"]
    if level._spconv_pairs is None:
        level._spconv_pairs = {}
    coords = level.coords.to(torch.int32)
    shape = (coords[:, 1:].max(0).values + 1).tolist() if len(coords) else [1, 1, 1]
    batch = int(coords[:, 0].max()) + 1 if len(coords) else 1
    st = sp.SparseConvTensor(features.contiguous(), coords.contiguous(), shape, batch)
    st.indice_dict = level._spconv_pairs
    # spconv's weight layout (C_out, 3, 3, 3, C_in) with the kernel axes in OFFSETS order
    weight = conv.weight.view(27, conv.c_in, c_out).permute(2, 0, 1).reshape(c_out, 3, 3, 3, conv.c_in)
    params = {"weight": weight.contiguous()}
    if conv.bias is not None:
        params["bias"] = conv.bias
    out = torch.func.functional_call(module, params, (st,))
    level._spconv_pairs.update(out.indice_dict)  # spconv copies the dict: keep the pairs for the level's next convs
    return out.features
