"""Serialisation of voxels along space-filling curves (Point Transformer V3's point order).

PTv3 (Wu et al., CVPR 2024) orders the occupied voxels of each cloud along a space-filling
curve and attends within consecutive runs of that order. Here:

* :func:`z_order_code`: Morton code, the bits of x, y, z interleaved;
* :func:`hilbert_code`: Hilbert index, after Skilling's transpose algorithm ("Programming
  the Hilbert curve", AIP Conf. Proc. 707, 2004): consecutive indices are face-adjacent cells;
* :func:`serialize`: one code per voxel and curve (``"z"``, ``"z-trans"``, ``"hilbert"``,
  ``"hilbert-trans"``; the ``-trans`` curves swap x and y first), the cloud index in the
  bits above, and each curve's order (argsort) and its inverse.

Both curves nest: the code of a voxel shifted right by 3 bits is the code of its parent cell
at twice the voxel size (each parent's 8 children are consecutive along the curve), so
PTv3's serialized pooling is a grouping by ``code >> 3``.

Shapes: ``coords`` (N, 3) int64 non-negative voxel coordinates, ``batch`` (N,) int64 cloud
index; codes (N,) int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["ORDERS", "z_order_code", "hilbert_code", "encode", "Serialization", "serialize", "code_depth"]

#: the four curves of PTv3 (its default ``order``)
ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")


def code_depth(coords: torch.Tensor) -> int:
    """Bits per axis that hold every coordinate of (N, 3) ``coords`` (at least 1)."""
    top = int(coords.max()) if coords.numel() else 0
    return max(1, top.bit_length())


def z_order_code(coords: torch.Tensor, depth: int) -> torch.Tensor:
    """(N,) Morton codes: bit ``j`` of x, y, z lands at bits ``3j + 2``, ``3j + 1``, ``3j``."""
    x, y, z = coords.to(torch.int64).unbind(1)
    code = torch.zeros_like(x)
    for j in range(depth):
        code |= (((x >> j) & 1) << (3 * j + 2)) | (((y >> j) & 1) << (3 * j + 1)) | (((z >> j) & 1) << (3 * j))
    return code


def hilbert_code(coords: torch.Tensor, depth: int) -> torch.Tensor:
    """(N,) Hilbert indices on the 2^depth cube (Skilling's axes-to-transpose, then bit interleave).

    Consecutive indices are cells one step apart along one axis.
    """
    X = [c.clone() for c in coords.to(torch.int64).unbind(1)]
    n = 3
    q = 1 << (depth - 1)
    while q > 1:  # undo excess work: invert or exchange low bits, top bit first
        p = q - 1
        for i in range(n):
            hit = (X[i] & q) != 0
            t = (X[0] ^ X[i]) & p
            X0_inv = X[0] ^ p
            X0_ex = X[0] ^ t
            Xi_ex = X[i] ^ t
            if i == 0:
                X[0] = torch.where(hit, X0_inv, X[0])  # exchanging X[0] with itself is a no-op
            else:
                X[i] = torch.where(hit, X[i], Xi_ex)
                X[0] = torch.where(hit, X0_inv, X0_ex)
        q >>= 1
    for i in range(1, n):  # Gray encode
        X[i] = X[i] ^ X[i - 1]
    t = torch.zeros_like(X[0])
    q = 1 << (depth - 1)
    while q > 1:
        t = torch.where((X[n - 1] & q) != 0, t ^ (q - 1), t)
        q >>= 1
    X = [x ^ t for x in X]
    code = torch.zeros_like(X[0])
    for j in range(depth):  # transpose -> index: bit j of X[i] at bit 3j + (2 - i)
        for i in range(n):
            code |= ((X[i] >> j) & 1) << (3 * j + (n - 1 - i))
    return code


def encode(coords: torch.Tensor, batch: torch.Tensor, depth: int, order: str) -> torch.Tensor:
    """(N,) int64 code of one curve with the cloud index above the ``3 * depth`` curve bits.

    Raises:
        ValueError: unknown curve, or the cloud index does not fit beside the curve bits.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown serialisation order {order!r}; choose from {ORDERS}")
    top = int(batch.max()) if batch.numel() else 0
    if 3 * depth + top.bit_length() > 63:
        raise ValueError(f"{top + 1} clouds of {depth}-bit voxel coordinates do not fit a 63-bit code")
    c = coords[:, [1, 0, 2]] if order.endswith("-trans") else coords
    code = z_order_code(c, depth) if order.startswith("z") else hilbert_code(c, depth)
    return (batch.to(torch.int64) << (3 * depth)) | code


@dataclass
class Serialization:
    """Voxel orders of one resolution.

    Attributes:
        code: (K, N) int64, one row per curve (cloud index in the top bits).
        order: (K, N) int64, ``order[k]`` lists the voxels along curve k (argsort of ``code[k]``).
        inverse: (K, N) int64, position of each voxel along curve k (``order[k][inverse[k]] == arange``).
        depth: bits per axis of the curve part of the codes.
    """

    code: torch.Tensor
    order: torch.Tensor
    inverse: torch.Tensor
    depth: int

    @classmethod
    def from_codes(cls, code: torch.Tensor, depth: int) -> "Serialization":
        order = torch.argsort(code, dim=1)
        inverse = torch.empty_like(order)
        inverse.scatter_(1, order, torch.arange(code.shape[1], device=code.device).expand_as(order).contiguous())
        return cls(code, order, inverse, depth)

    def coarser(self, parent: torch.Tensor, n_parents: int) -> "Serialization":
        """The orders of the parent cells (twice the voxel size): each parent takes ``code >> 3``.

        Args:
            parent: (N,) int64 row of each voxel's parent cell.
            n_parents: M.
        """
        coarse = torch.zeros(self.code.shape[0], n_parents, dtype=torch.int64, device=self.code.device)
        coarse.scatter_(1, parent.expand_as(self.code), self.code >> 3)  # equal for all siblings
        return Serialization.from_codes(coarse, max(self.depth - 1, 0))


def serialize(coords: torch.Tensor, batch: torch.Tensor, orders: Sequence[str] = ORDERS,
              depth: int | None = None) -> Serialization:
    """Codes, orders and inverses of (N, 3) voxel ``coords`` of clouds ``batch`` along ``orders``.

    Example:
        >>> s = serialize(torch.tensor([[1, 1, 1], [0, 0, 0]]), torch.zeros(2, dtype=torch.long), ("z",))
        >>> s.order.tolist(), s.code.tolist()
        ([[1, 0]], [[7, 0]])
    """
    depth = code_depth(coords) if depth is None else depth
    code = torch.stack([encode(coords, batch, depth, o) for o in orders])
    return Serialization.from_codes(code, depth)
