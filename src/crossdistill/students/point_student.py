"""A light per-point segmentation network for CPU training over many shapes at once.

:class:`PointStudent` maps packed batches of shapes, each N points with features
(xyz, normal, colour), to per-point class logits. It is a neighbourhood-pooling network:

* a point-wise stem (2-layer MLP) lifts the 9 input features to ``width`` channels;
* ``n_blocks`` residual blocks update every point from ``[h_i, mean_near h - h_i,
  mean_ring h - h_i]``: the mean over its k nearest points and over a dilated ring
  (every 2nd of its 2k nearest), as sparse averaging operators (a graph-convolution
  form of PointNet++'s local pooling; max pooling over gathered neighbours was 5x
  slower to train on a CPU, measured);
* the per-shape max over points is appended to every point (PointNet's global feature);
* a 2-layer head gives the logits.

The kNN graphs are computed once per shape (:func:`knn_graph`), so a training step is
only sparse and small dense matrix products.

Shapes: ``feats`` (B, N, 9) float32, ``knn`` (B, N, 2k) int64 (indices within the shape,
nearest first), logits (B, N, n_classes).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn as nn

from crossdistill.geometry.neighbors import knn as knn_query

__all__ = ["PointStudent", "knn_graph", "neighbour_means", "point_features", "IN_FEATURES"]

IN_FEATURES = 9


def point_features(points: np.ndarray, normals: np.ndarray, colors: np.ndarray | None) -> np.ndarray:
    """(N, 9) float32 student input: unit-box xyz, unit normal, colour in [-0.5, 0.5] (0 if absent)."""
    n = len(points)
    col = np.zeros((n, 3), np.float32) if colors is None else np.asarray(colors, np.float32)[:, :3] / 255.0 - 0.5
    return np.concatenate([np.asarray(points, np.float32), np.asarray(normals, np.float32), col], 1)


def knn_graph(points: np.ndarray, k: int) -> np.ndarray:
    """(N, 2k) int64 indices of each point's 2k nearest points (itself first), padded with itself."""
    kk = min(2 * k, len(points))
    _, idx = knn_query(points, points, kk, workers=1)
    if kk < 2 * k:
        idx = np.concatenate([idx, np.repeat(idx[:, :1], 2 * k - kk, 1)], 1)
    return np.where(idx < 0, np.arange(len(points))[:, None], idx)


def _mlp(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), nn.LayerNorm(cout), nn.GELU())


def neighbour_means(knn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sparse (B*N, B*N) averaging operators of a packed batch's kNN graphs.

    Args:
        knn: (B, N, 2k) int64 neighbour indices within each shape, nearest first.

    Returns:
        near: row i averages the k nearest points of i; ring: row i averages every second
        of its 2k nearest (a dilated neighbourhood, twice the radius at the same cost).
        Block-diagonal over shapes, CSR. ``near @ h`` costs one sparse product forward and
        one backward, far cheaper on a CPU than gathering (B, N, k, C) neighbour features.
    """
    B, N, k2 = knn.shape
    offset = (torch.arange(B, device=knn.device) * N).view(B, 1, 1)
    out = []
    for cols in (knn[..., : k2 // 2], knn[..., 0:k2:2]):
        k = cols.shape[-1]
        rows = torch.arange(B * N, device=knn.device).repeat_interleave(k)
        vals = torch.full((B * N * k,), 1.0 / k, device=knn.device)
        idx = torch.stack([rows, (cols + offset).reshape(-1)])
        with warnings.catch_warnings():  # "sparse CSR support is in beta" on every call
            warnings.simplefilter("ignore", UserWarning)
            out.append(torch.sparse_coo_tensor(idx, vals, (B * N, B * N)).coalesce().to_sparse_csr())
    return out[0], out[1]


class _PoolBlock(nn.Module):
    """h <- relu(norm(h + MLP([h, mean_near(h) - h, mean_ring(h) - h])))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.update = nn.Sequential(_mlp(3 * width, width), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)

    def forward(self, h: torch.Tensor, near: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
        B, N, C = h.shape
        flat = h.reshape(B * N, C)
        x = torch.cat([flat, torch.sparse.mm(near, flat) - flat, torch.sparse.mm(ring, flat) - flat], -1)
        return torch.relu(self.norm(h + self.update(x).view(B, N, C)))


class PointStudent(nn.Module):
    """Per-point classifier over ``n_classes`` parts.

    Args:
        n_classes: P.
        width: channels of every block.
        n_blocks: neighbourhood-pooling blocks.
        in_features: input channels (default 9: xyz, normal, colour).

    Example:
        >>> net = PointStudent(3, width=16, n_blocks=2)
        >>> pts = np.random.default_rng(0).random((64, 3)).astype(np.float32)
        >>> knn = torch.from_numpy(knn_graph(pts, 8))[None]
        >>> net(torch.rand(1, 64, 9), knn).shape
        torch.Size([1, 64, 3])
    """

    def __init__(self, n_classes: int, width: int = 64, n_blocks: int = 4, in_features: int = IN_FEATURES) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.width = int(width)
        self.stem = nn.Sequential(_mlp(in_features, width), _mlp(width, width))
        self.blocks = nn.ModuleList([_PoolBlock(width) for _ in range(n_blocks)])
        self.head = nn.Sequential(_mlp(2 * width, width), nn.Linear(width, n_classes))

    def forward(self, feats: torch.Tensor, knn: torch.Tensor) -> torch.Tensor:
        h = self.stem(feats)
        near, ring = neighbour_means(knn)
        for block in self.blocks:
            h = block(h, near, ring)
        g = h.amax(1, keepdim=True).expand_as(h)
        return self.head(torch.cat([h, g], -1))
