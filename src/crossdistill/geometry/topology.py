"""Connectivity: connected pieces of a triangle soup (vertices welded by position, faces joined
through shared edges), and smooth regions of a point cloud (region growing on normals over a kNN graph)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from crossdistill.labels import relabel_by_size

#: What joins two faces into one piece when :func:`face_components` is not told: "edge", a shared
#: (welded) edge, so that surfaces touching at a single point stay separate pieces (the default:
#: chosen and confirmed on held-out PartNet-Mobility meshes with the offline and the SAM-like mask
#: teachers, ``docs/results/segment_notes.md`` item 31), or "vertex", a shared (welded) vertex.
PIECE_CONNECT = "edge"


def weld_vertices(vertices: np.ndarray, faces: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Re-index faces so vertices at the same position (within ``tol`` x bbox diagonal) share an index.

    Args:
        vertices: (V, 3) positions; faces: (F, 3) indices.

    Returns:
        (F, 3) int64 faces over welded vertex ids (the input is not modified).
    """
    v = np.asarray(vertices, dtype=np.float64)
    diag = float(np.linalg.norm(v.max(0) - v.min(0))) if len(v) else 1.0
    q = np.round(v / max(diag * tol, 1e-300)).astype(np.int64)
    _, inv = np.unique(q, axis=0, return_inverse=True)
    return inv.reshape(-1)[np.asarray(faces, dtype=np.int64)]


def face_components(vertices: np.ndarray, faces: np.ndarray, weld: bool = True,
                    connect: str | None = None) -> np.ndarray:
    """Connected component of every face.

    Args:
        vertices: (V, 3); faces: (F, 3).
        weld: merge coincident vertices first, so pieces split only by duplicated seam
            vertices count as one piece.
        connect: "vertex" (faces sharing a vertex are connected) or "edge" (faces sharing an
            edge: two surfaces touching at one point stay apart); None: :data:`PIECE_CONNECT`.

    Returns:
        (F,) int64 component id, numbered by decreasing face count.

    Example:
        >>> v = np.eye(3); f = np.array([[0, 1, 2], [0, 1, 2]])
        >>> face_components(v, f).tolist()
        [0, 0]
    """
    connect = PIECE_CONNECT if connect is None else connect
    if connect not in ("vertex", "edge"):
        raise ValueError(f"connect must be 'vertex' or 'edge', got {connect!r}")
    f = weld_vertices(vertices, faces) if weld else np.asarray(faces, dtype=np.int64)
    n_f = len(f)
    if n_f == 0:
        return np.zeros(0, dtype=np.int64)
    if connect == "edge":  # faces joined through their (undirected) edges
        e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        _, node = np.unique(e[:, 0] * (int(f.max()) + 1) + e[:, 1], return_inverse=True)
        n_v = int(node.max()) + 1
        rows = np.tile(np.arange(n_f), 3)
        cols = node.reshape(-1)
    else:
        n_v = int(f.max()) + 1
        rows = np.repeat(np.arange(n_f), 3)
        cols = f.reshape(-1)
    inc = sp.csr_matrix((np.ones(3 * n_f, dtype=np.int8), (rows, cols)), shape=(n_f, n_v))
    # faces and their vertices (or edges) as one bipartite graph: cheaper than the face x face product
    graph = sp.bmat([[None, inc], [inc.T, None]], format="csr")
    _, lab = connected_components(graph, directed=False)
    return relabel_by_size(lab[:n_f])


def region_growing(points: np.ndarray, normals: np.ndarray, angle_deg: float, k: int = 12) -> np.ndarray:
    """Connected regions of the kNN graph whose edges join points with similar normals.

    Args:
        points: (N, 3); normals: (N, 3) unit; angle_deg: largest normal angle of an edge.

    Returns:
        (N,) int64 labels 0..K-1 (largest first).
    """
    n = len(points)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n, dtype=np.int64)
    _, nn = cKDTree(points).query(points, k=k + 1, workers=-1)
    a = np.repeat(np.arange(n), k)
    b = nn[:, 1:].reshape(-1)
    cos = np.abs((normals[a] * normals[b]).sum(1))
    keep = cos >= np.cos(np.deg2rad(angle_deg))
    graph = sp.csr_matrix((np.ones(int(keep.sum()), np.int8), (a[keep], b[keep])), shape=(n, n))
    _, lab = connected_components(graph, directed=False)
    return relabel_by_size(lab)
