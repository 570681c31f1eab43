"""Surface sampling, farthest point sampling and point-cloud normal estimation."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

from crossdistill.errors import InputError
from crossdistill.geometry.colors import GREY
from crossdistill.geometry.neighbors import knn
from crossdistill.types import Shape, SurfaceSample

__all__ = ["sample_surface", "estimate_normals", "orient_normals", "farthest_point_sampling"]


def sample_surface(shape: Shape, n: int, seed: int = 0, *, normal_k: int = 16) -> SurfaceSample:
    """Sample ``n`` points on a mesh uniformly by area, or pick points of a point cloud.

    Meshes: a face is drawn with probability proportional to its area, then a point
    uniformly inside it (``sqrt`` barycentric trick). ``normals`` are the geometric
    face normals (right-hand winding; not interpolated), ``colors`` are the vertex
    colours interpolated by the barycentrics, else the face colour, else grey.
    ``face_id`` / ``barycentric`` satisfy
    ``points == (barycentric[:, :, None] * shape.triangles[face_id]).sum(1)``.

    Point clouds (``shape.faces is None``): ``min(n, N)`` points; all of them in file
    order when ``n >= N``, else a random subset (sorted by index). ``source_index``
    gives the original point; normals come from the file or from
    :func:`estimate_normals` with ``normal_k`` neighbours; colours from the file or grey.

    Args:
        shape: mesh or point cloud.
        n: number of samples.
        seed: seed of the ``numpy.random.Generator``; same seed, same samples.
        normal_k: neighbours for normal estimation on point clouds without normals.

    Returns:
        :class:`SurfaceSample` of length ``n`` (mesh) or ``min(n, N)`` (points).

    Example:
        >>> from crossdistill.geometry.demo import demo_shape
        >>> s = sample_surface(demo_shape(), 1000, seed=0)
        >>> s.points.shape, bool(s.face_id.min() >= 0)
        ((1000, 3), True)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    if shape.faces is None:
        return _sample_points(shape, n, rng, normal_k)

    vertices = np.asarray(shape.vertices, dtype=np.float64)
    faces = np.asarray(shape.faces, dtype=np.int64)
    cumulative = np.cumsum(_doubled_face_areas(vertices, faces))
    total = cumulative[-1] if len(cumulative) else 0.0
    if not total > 0:
        raise InputError(f"{shape.source or 'shape'}: cannot sample a mesh with zero surface area")
    face_id = np.searchsorted(cumulative, rng.random(n) * total, side="right")
    face_id = np.minimum(face_id, len(faces) - 1).astype(np.int64)

    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1.0 - s, s * (1.0 - r2), s * r2], axis=1)  # (n, 3)
    corner_ids = faces[face_id]  # (n, 3)
    tri = vertices[corner_ids]  # (n, 3, 3)
    points = np.einsum("nk,nkd->nd", bary, tri)

    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)

    if shape.vertex_colors is not None:
        vc = np.asarray(shape.vertex_colors, dtype=np.float64)[corner_ids]  # (n, 3, 3)
        colors = np.clip(np.rint(np.einsum("nk,nkc->nc", bary, vc)), 0, 255).astype(np.uint8)
    elif shape.face_colors is not None:
        colors = np.asarray(shape.face_colors, dtype=np.uint8)[face_id]
    else:
        colors = np.tile(GREY, (n, 1))
    return SurfaceSample(
        points=points,
        normals=normal,
        colors=colors,
        face_id=face_id,
        barycentric=bary,
        source_index=np.full(n, -1, dtype=np.int64),
    )


def _doubled_face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) twice the triangle areas; coordinate-major layout, ~2x faster than ``Shape.face_areas``."""
    vt = np.ascontiguousarray(vertices.T)  # (3, V)
    a = vt[:, faces[:, 0]]
    e1 = vt[:, faces[:, 1]] - a
    e2 = vt[:, faces[:, 2]] - a
    cx = e1[1] * e2[2] - e1[2] * e2[1]
    cy = e1[2] * e2[0] - e1[0] * e2[2]
    cz = e1[0] * e2[1] - e1[1] * e2[0]
    return np.sqrt(cx * cx + cy * cy + cz * cz)


def _sample_points(shape: Shape, n: int, rng: np.random.Generator, normal_k: int) -> SurfaceSample:
    points = np.asarray(shape.vertices, dtype=np.float64)
    total = len(points)
    if n >= total:
        index = np.arange(total, dtype=np.int64)
    else:
        index = np.sort(rng.choice(total, size=n, replace=False)).astype(np.int64)
    if shape.vertex_normals is not None:
        normals = np.asarray(shape.vertex_normals, dtype=np.float64)[index]
    else:
        normals = estimate_normals(points, k=normal_k, at=index)
    if shape.vertex_colors is not None:
        colors = np.asarray(shape.vertex_colors, dtype=np.uint8)[index]
    else:
        colors = np.tile(GREY, (len(index), 1))
    m = len(index)
    return SurfaceSample(
        points=points[index],
        normals=normals,
        colors=colors,
        face_id=np.full(m, -1, dtype=np.int64),
        barycentric=np.zeros((m, 3)),
        source_index=index,
    )


def estimate_normals(
    points: np.ndarray,
    k: int = 16,
    *,
    at: np.ndarray | None = None,
    orient: str = "centroid",
) -> np.ndarray:
    """Unit normals of a point cloud by PCA over the ``k`` nearest neighbours.

    The normal of a point is the eigenvector of the smallest eigenvalue of the
    covariance of its ``k`` nearest neighbours (itself included) in ``points``;
    its sign is then chosen by :func:`orient_normals`.

    Args:
        points: (N, 3) cloud used for the neighbourhoods.
        k: neighbours per point (clamped to N).
        at: optional (M,) indices of the points whose normals are wanted (all by
            default); neighbourhoods still come from the whole cloud.
        orient: ``"centroid"`` (default) or ``"propagate"``, see :func:`orient_normals`.

    Returns:
        (M, 3) float64 unit normals (M = N when ``at`` is None).
    """
    pts = np.asarray(points, dtype=np.float64)
    index = np.arange(len(pts)) if at is None else np.asarray(at, dtype=np.int64)
    if len(index) == 0:
        return np.zeros((0, 3))
    k = int(max(1, min(k, len(pts))))
    _, nbr = knn(pts, pts[index], k)  # (M, k)
    local = pts[nbr]  # (M, k, 3)
    local = local - local.mean(axis=1, keepdims=True)
    cov = np.einsum("mki,mkj->mij", local, local)  # (M, 3, 3)
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
    normals = vecs[:, :, 0]
    return orient_normals(pts[index], normals, k=k, center=pts.mean(axis=0), method=orient)


def orient_normals(
    points: np.ndarray,
    normals: np.ndarray,
    k: int = 16,
    *,
    center: np.ndarray | None = None,
    method: str = "centroid",
) -> np.ndarray:
    """Flip normals to a consistent, outward-facing orientation.

    ``"centroid"`` (default): each normal points away from ``center`` (the cloud
    centroid by default). Right for convex, star-shaped objects; wrong inside
    cavities and on surfaces facing the centre, but never flips a whole part.

    ``"propagate"`` (Hoppe et al. 1992): build the kNN graph weighted by
    ``1 - |n_i . n_j|``, take its minimum spanning tree, seed every connected
    component at its point farthest from ``center`` (where outward is unambiguous),
    and walk the tree flipping each normal to agree with its parent. Follows
    concave surfaces; can flip a whole piece where two pieces touch or nearly touch
    (their surfaces look like one sheet with opposite normals).

    Measured on points sampled from closed meshes (fraction of normals agreeing with
    the true outward normal, 15k points): torus 0.68 centroid / 1.00 propagate, thick
    annulus 0.86 / 1.00, the demo robot (15 touching primitives) 0.81 / 0.63. Hence
    ``"centroid"`` by default, ``"propagate"`` for single fused surfaces (scans).

    Args:
        points: (N, 3) positions.
        normals: (N, 3) unoriented unit normals.
        k: graph neighbours for ``"propagate"``.
        center: (3,) reference point, default the mean of ``points``.
        method: ``"propagate"`` or ``"centroid"``.

    Returns:
        (N, 3) float64 normals, each equal to the input or its negation.
    """
    pts = np.asarray(points, dtype=np.float64)
    nrm = np.asarray(normals, dtype=np.float64)
    c = pts.mean(axis=0) if center is None else np.asarray(center, dtype=np.float64)
    radial = pts - c
    if method == "centroid":
        sign = np.where(np.einsum("ij,ij->i", nrm, radial) < 0, -1.0, 1.0)
        return nrm * sign[:, None]
    if method != "propagate":
        raise ValueError(f"unknown orientation method {method!r}")
    n_pts = len(pts)
    if n_pts < 2:
        return orient_normals(pts, nrm, k, center=c, method="centroid")
    k = int(min(k, n_pts - 1))
    _, nbr = knn(pts, pts, k + 1)
    rows = np.repeat(np.arange(n_pts), k)
    cols = nbr[:, 1:].reshape(-1)
    keep = cols >= 0
    rows, cols = rows[keep], cols[keep]
    weight = 1.0 - np.abs(np.einsum("ij,ij->i", nrm[rows], nrm[cols])) + 1e-6
    graph = coo_matrix((weight, (rows, cols)), shape=(n_pts, n_pts)).tocsr()
    tree = minimum_spanning_tree(graph + graph.T)
    n_comp, label = connected_components(tree, directed=False)

    # One virtual root (index n_pts) linked to each component's farthest point.
    dist = np.linalg.norm(radial, axis=1)
    order = np.lexsort((-dist, label))  # by component, farthest first
    first = np.ones(len(order), dtype=bool)
    first[1:] = label[order][1:] != label[order][:-1]
    seeds = order[first]
    tree = tree.tocoo()
    full = coo_matrix(
        (
            np.concatenate([tree.data, np.ones(n_comp)]),
            (np.concatenate([tree.row, np.full(n_comp, n_pts)]), np.concatenate([tree.col, seeds])),
        ),
        shape=(n_pts + 1, n_pts + 1),
    ).tocsr()
    visit, parent = breadth_first_order(full, n_pts, directed=False, return_predecessors=True)

    sign = np.ones(n_pts + 1)
    agree = np.ones(n_pts + 1)
    seed_sign = np.where(np.einsum("ij,ij->i", nrm[seeds], radial[seeds]) < 0, -1.0, 1.0)
    inner = visit[1:]
    par = parent[inner]
    from_root = par == n_pts
    d = np.einsum("ij,ij->i", nrm[inner], nrm[np.where(from_root, 0, par)])
    agree[inner] = np.where(d < 0, -1.0, 1.0)
    agree[seeds] = seed_sign
    sign_list, agree_list, parent_list = sign.tolist(), agree.tolist(), parent.tolist()
    for node in inner.tolist():  # parents precede children in BFS order
        sign_list[node] = sign_list[parent_list[node]] * agree_list[node]
    return nrm * np.asarray(sign_list[:n_pts])[:, None]


def farthest_point_sampling(points: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """Indices of ``min(m, N)`` points picked greedily to be far from each other.

    Starts at a point chosen by ``seed``; each step adds the point farthest (Euclidean)
    from those already picked. O(N) work per step, vectorised over points.

    Args:
        points: (N, D) positions.
        m: number of points wanted.
        seed: seed for the first point.

    Returns:
        (min(m, N),) int64 indices into ``points``, in selection order, no repeats.

    Example:
        >>> pts = np.array([[0.0, 0], [0.1, 0], [1, 0], [1, 1]])
        >>> idx = farthest_point_sampling(pts, 3, seed=0)
        >>> len(idx), {2, 3} <= set(idx.tolist())  # never both of the close pair
        (3, True)
    """
    pts = np.asarray(points, dtype=np.float64)
    m = int(min(max(m, 0), len(pts)))
    out = np.empty(m, dtype=np.int64)
    if m == 0:
        return out
    out[0] = np.random.default_rng(seed).integers(len(pts))
    # one contiguous column per coordinate and preallocated buffers: the squared distance to
    # the newest pick is summed coordinate by coordinate (the same sums as along the rows)
    cols = [np.ascontiguousarray(pts[:, k]) for k in range(pts.shape[1])]
    term = np.empty(len(pts))

    def sq_dist_to(j: int, dst: np.ndarray) -> np.ndarray:
        np.subtract(cols[0], pts[j, 0], out=dst)
        np.multiply(dst, dst, out=dst)
        for k in range(1, len(cols)):
            np.subtract(cols[k], pts[j, k], out=term)
            np.multiply(term, term, out=term)
            np.add(dst, term, out=dst)
        return dst

    nearest = sq_dist_to(int(out[0]), np.empty(len(pts)))
    nearest[out[0]] = -np.inf  # a pick is never picked again, even where points coincide
    dist = np.empty(len(pts))
    for i in range(1, m):
        out[i] = int(np.argmax(nearest))
        np.minimum(nearest, sq_dist_to(int(out[i]), dist), out=nearest)
        nearest[out[i]] = -np.inf
    return out
