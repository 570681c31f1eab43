"""Attention within fixed-size patches of a serialised order (PTv3's serialized attention).

The voxels of each cloud, in the order of one space-filling curve, are cut into runs of K
consecutive voxels (patches); every voxel attends to the voxels of its own patch only. The
last patch of a cloud is usually short: it is padded to K slots and the padding is masked
out of the keys, so each patch's result is exactly the attention over its real voxels
(PTv3 instead fills the last patch with voxels of the patch before it; masking keeps patches
disjoint). Clouds never share a patch.

:class:`PatchLayout` is the padded layout of one resolution and patch size (it depends only
on the number of voxels per cloud, so every curve shares it); :func:`patch_attention` runs
``torch.nn.functional.scaled_dot_product_attention`` over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PatchLayout", "patch_attention"]


@dataclass
class PatchLayout:
    """Padded patches of clouds laid one after another in a serialised order.

    Attributes:
        size: K, voxels per patch.
        slots: (P * K,) int64 position along the order that fills each slot (a padding slot
            repeats its cloud's first voxel and is masked).
        pad_pos: (N,) int64 slot of each position along the order.
        valid: (P, K) bool, real (not padding) slots; None when no slot is padding.
    """

    size: int
    slots: torch.Tensor
    pad_pos: torch.Tensor
    valid: torch.Tensor | None

    @classmethod
    def build(cls, counts: torch.Tensor, size: int) -> "PatchLayout":
        """Layout of clouds with ``counts`` (B,) voxels each (in cloud order) cut into patches of ``size``."""
        if size < 1:
            raise ValueError(f"patch size must be >= 1, got {size}")
        counts = counts.to(torch.int64)
        dev = counts.device
        padded = (counts + size - 1) // size * size
        start = torch.cumsum(counts, 0) - counts
        pad_start = torch.cumsum(padded, 0) - padded
        clouds = torch.arange(len(counts), device=dev)
        slot_cloud = torch.repeat_interleave(clouds, padded)
        rank = torch.arange(int(padded.sum()), device=dev) - pad_start[slot_cloud]
        valid = rank < counts[slot_cloud]
        slots = start[slot_cloud] + torch.where(valid, rank, torch.zeros_like(rank))
        pos_cloud = torch.repeat_interleave(clouds, counts)
        pad_pos = torch.arange(int(counts.sum()), device=dev) - start[pos_cloud] + pad_start[pos_cloud]
        return cls(size, slots, pad_pos, None if bool(valid.all()) else valid.view(-1, size))


def patch_attention(qkv: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor, layout: PatchLayout,
                    heads: int) -> torch.Tensor:
    """Multi-head attention within the patches of one serialised order.

    Args:
        qkv: (N, 3 * C) queries, keys and values of N voxels (voxel order), C divisible by ``heads``.
        order: (N,) int64 voxels along the curve (clouds one after another).
        inverse: (N,) int64 position of each voxel along the curve.
        layout: the patches (:meth:`PatchLayout.build` of the voxels per cloud).
        heads: H.

    Returns:
        (N, C) attention output in voxel order (before the output projection).
    """
    N, C3 = qkv.shape
    C = C3 // 3
    K = layout.size
    x = qkv[order[layout.slots]]  # (P * K, 3C)
    q, k, v = x.view(-1, K, 3, heads, C // heads).permute(2, 0, 3, 1, 4).unbind(0)  # (P, H, K, d)
    mask = None if layout.valid is None else layout.valid[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (P, H, K, d)
    out = out.transpose(1, 2).reshape(-1, C)  # (P * K, C)
    return out[layout.pad_pos[inverse]]
