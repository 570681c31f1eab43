"""Part partitions of a single surface from its geometry alone: spectral cuts of a concavity-weighted graph.

Where a closed surface has no pieces, no colour edges and no depth jumps between its parts,
what people cut at is concavity: parts meet along concave creases and narrow necks (the
minima rule). Following the spectral mesh segmentation of Liu and Zhang (2004) with the
angular and geodesic distances of Katz and Tal (2003):

* the *dual graph* links neighbouring faces (meshes) or k nearest points (clouds);
* the distance across a link is ``delta * geodesic / mean + (1 - delta) * angular / mean``,
  with the angular distance ``eta * (1 - cos theta)`` between the two normals, ``eta = 1`` at
  concave links and ``eta_convex`` (small) at convex ones, so that cuts prefer concave creases;
* the affinity is ``exp(-distance / mean distance)`` (the ratio capped at 4); the leading eigenvectors of the
  normalised affinity give a spectral embedding (rows normalised, Ng, Jordan and Weiss
  2002), and k-means in it gives one partition per requested part count.

The partitions at several counts are a hierarchy of granularities (not strictly nested);
:class:`~crossdistill.teachers.partition_masks.PartitionMaskTeacher` turns them into SAM-like
masks per view.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from scipy.spatial import cKDTree
from sklearn.cluster import KMeans

from crossdistill.types import Shape

DEFAULT_COUNTS: tuple[int, ...] = (2, 3, 4, 6, 8, 12)


def face_graph(shape: Shape, eta_convex: float = 0.1, delta: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Links between neighbouring faces of a mesh and their affinities.

    Returns:
        pairs (L, 2) int64 face indices, affinity (L,) float64 in (0, 1].
    """
    import trimesh

    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
    pairs = np.asarray(mesh.face_adjacency, dtype=np.int64)
    if len(pairs) == 0:
        return pairs.reshape(0, 2), np.zeros(0)
    normals = shape.face_normals
    cos = np.clip((normals[pairs[:, 0]] * normals[pairs[:, 1]]).sum(1), -1.0, 1.0)
    convex = np.asarray(mesh.face_adjacency_convex, dtype=bool)
    ang = np.where(convex, eta_convex, 1.0) * (1.0 - cos)
    cent = shape.triangles.mean(1)
    geo = np.linalg.norm(cent[pairs[:, 0]] - cent[pairs[:, 1]], axis=1)
    return pairs, _affinity(geo, ang, delta)


def point_graph(points: np.ndarray, normals: np.ndarray, k: int = 10, eta_convex: float = 0.1,
                delta: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Links between each point and its k nearest points, with affinities (as :func:`face_graph`).

    A link is concave where the normals turn towards each other along it
    (``(p_j - p_i) . (n_j - n_i) < 0``).
    """
    p = np.asarray(points, dtype=np.float64)
    n = np.asarray(normals, dtype=np.float64)
    _, nn = cKDTree(p).query(p, k=min(k + 1, len(p)))
    i = np.repeat(np.arange(len(p)), nn.shape[1] - 1)
    j = nn[:, 1:].reshape(-1)
    keep = i < j
    pairs = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j)], 1)[keep | ~keep], axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    a, b = pairs[:, 0], pairs[:, 1]
    cos = np.clip((n[a] * n[b]).sum(1), -1.0, 1.0)
    concave = ((p[b] - p[a]) * (n[b] - n[a])).sum(1) < 0
    ang = np.where(concave, 1.0, eta_convex) * (1.0 - cos)
    geo = np.linalg.norm(p[a] - p[b], axis=1)
    return pairs, _affinity(geo, ang, delta)


def _affinity(geo: np.ndarray, ang: np.ndarray, delta: float, floor: float = 4.0) -> np.ndarray:
    """exp(-d / mean d), d capped at ``floor`` mean distances: a sharp crease or a long link still
    keeps a little affinity, so that no sliver of the graph comes loose and takes an eigenvector."""
    d = delta * geo / max(float(geo.mean()), 1e-12) + (1.0 - delta) * ang / max(float(ang.mean()), 1e-12)
    return np.exp(-np.minimum(d / max(float(d.mean()), 1e-12), floor))


def spectral_partitions(n: int, pairs: np.ndarray, affinity: np.ndarray, counts: tuple[int, ...] = DEFAULT_COUNTS,
                        seed: int = 0) -> np.ndarray:
    """One partition of n graph nodes per part count, by spectral clustering.

    Args:
        n: number of nodes; pairs: (L, 2) links; affinity: (L,) their weights.
        counts: the part counts (each at most n).

    Returns:
        (len(counts), n) int64 part ids.
    """
    counts = tuple(int(c) for c in counts)
    if n == 0:
        return np.zeros((len(counts), 0), dtype=np.int64)
    W = sp.coo_matrix((np.r_[affinity, affinity], (np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]])),
                      shape=(n, n)).tocsr()
    W = W + sp.identity(n, format="csr") * 1e-6  # isolated nodes keep a degree
    d = np.asarray(W.sum(axis=1)).ravel()
    dinv = sp.diags(1.0 / np.sqrt(d))
    M = dinv @ W @ dinv
    m = min(max(counts), n - 2)
    rng = np.random.default_rng(seed)
    if m < 1:
        return np.zeros((len(counts), n), dtype=np.int64)
    # the leading eigenvalues crowd just below 1 (parts meet at concave creases of tiny affinity):
    # shift-invert around 1 converges in a few iterations where plain Lanczos needs thousands
    vals, vecs = eigsh(M, k=m, sigma=1.001, which="LM", v0=rng.standard_normal(n))
    vecs = vecs[:, np.argsort(-vals)]  # leading first
    out = np.zeros((len(counts), n), dtype=np.int64)
    for r, c in enumerate(counts):
        c = min(c, n)
        if c <= 1:
            continue
        emb = vecs[:, :c]
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        out[r] = KMeans(n_clusters=c, n_init=4, random_state=seed).fit_predict(emb)
    return out


def geometric_partitions(shape: Shape, counts: tuple[int, ...] = DEFAULT_COUNTS, seed: int = 0,
                         max_points: int = 20000) -> np.ndarray:
    """(len(counts) + 1, E) partitions of a mesh's faces or a cloud's points: the whole, then one per count.

    Point clouds larger than ``max_points`` are clustered on a farthest-point subset and the
    parts spread to every point by nearest neighbour.
    """
    if shape.is_mesh:
        pairs, aff = face_graph(shape)
        parts = spectral_partitions(shape.n_faces, pairs, aff, counts, seed)
    else:
        from crossdistill.geometry.sampling import estimate_normals, farthest_point_sampling

        pts = np.asarray(shape.vertices, dtype=np.float64)
        nrm = shape.vertex_normals if shape.vertex_normals is not None else estimate_normals(pts, k=16)
        sub = np.arange(len(pts)) if len(pts) <= max_points else farthest_point_sampling(pts, max_points, seed=seed)
        pairs, aff = point_graph(pts[sub], np.asarray(nrm)[sub])
        parts_sub = spectral_partitions(len(sub), pairs, aff, counts, seed)
        _, nn = cKDTree(pts[sub]).query(pts, k=1)
        parts = parts_sub[:, nn]
    return np.concatenate([np.zeros((1, parts.shape[1]), np.int64), parts])
