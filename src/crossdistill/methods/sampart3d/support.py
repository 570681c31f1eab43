"""Do the 2D masks confirm a 3D part? (evidence for keeping small parts in stage 3).

Stage 3 folds small parts of a welded body back into it, because most of them are
slivers at part borders. Some are real: a toaster's slider, a trash can's foot pad, a
safe's switch, each well under 10% of the body. What tells the two apart is the 2D
evidence the field was trained on: a real small part is what some mask of some view
shows, a sliver is not.

The support of a part C (a set of sampled points) is the best visible-restricted IoU
over all masks M of all views v::

    support(C) = max_M  |C ∩ M| / |(C ∩ vis_v) ∪ M|

where vis_v are the points view v sees, so that a part seen from one side is judged on
that side. Views that see less than ``min_visible`` of the part do not count (a sliver's
one visible pixel would match any tiny mask). Optionally, silhouette masks (holding more than
``max_view_share`` of what their view sees) do not count either: from a view that sees one
face of a box, the whole object's mask is that face, and it tells nothing about the face
being a part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from crossdistill.methods.sampart3d.supervision import MaskSupervision, ViewSupervision


@dataclass(frozen=True)
class MaskPointSets:
    """The 3D point sets of all masks and views of one object.

    Attributes:
        masks: (M, N) sparse 0/1 float32, the sampled points each mask's pixels map to.
        visible: (V, N) sparse 0/1 float32, the sampled points each view sees.
        view_of_mask: (M,) int64 view each mask belongs to.
        scale: (M,) float64 sigma of each mask, or None (a ``field.pt`` written before it was kept).
    """

    masks: sp.csr_matrix
    visible: sp.csr_matrix
    view_of_mask: np.ndarray
    scale: np.ndarray | None = None

    @classmethod
    def from_supervision(cls, supervision: MaskSupervision, n_points: int) -> "MaskPointSets":
        """Build from the grouping field's pixel supervision (every mask of every view)."""
        m_rows, m_cols, v_rows, v_cols = [], [], [], []
        view_of = np.zeros(supervision.n_masks, dtype=np.int64)
        for v, vs in enumerate(supervision.views):
            v_rows.append(np.full(len(vs.point), v, dtype=np.int64))
            v_cols.append(vs.point)
            for slot in vs.mask:  # the masks containing each pixel, one slot at a time
                has = slot >= 0
                m_rows.append(slot[has].astype(np.int64))
                m_cols.append(vs.point[has])
                view_of[slot[has]] = v
        return cls(_binary((m_rows, m_cols), (supervision.n_masks, n_points)),
                   _binary((v_rows, v_cols), (len(supervision.views), n_points)), view_of,
                   np.asarray(supervision.scale, dtype=np.float64))

    def to_supervision(self) -> MaskSupervision:
        """A :class:`MaskSupervision` whose "pixels" are each view's visible points, one per point.

        Every point of a view holds the masks of that view containing it, finest first; sigma is
        :attr:`scale` (zero when unknown), areas are zero and scores one. :meth:`from_supervision`
        of the result gives these point sets back.
        """
        masks = sp.csr_matrix(self.masks)
        visible = sp.csr_matrix(self.visible)
        sigma = np.zeros(masks.shape[0]) if self.scale is None else np.asarray(self.scale, dtype=np.float64)
        views = []
        for v in range(visible.shape[0]):
            pts = np.sort(np.asarray(visible[v].indices, dtype=np.int64))
            ids = np.flatnonzero(self.view_of_mask == v)
            ids = ids[np.argsort(sigma[ids], kind="stable")]  # finest first down the slots
            sub = masks[ids][:, pts].tocsc()  # (masks of v, its points)
            sub.sort_indices()
            counts = np.diff(sub.indptr)
            slots = np.full((int(counts.max()) if len(counts) and counts.max() > 0 else 0, len(pts)), -1, np.int32)
            col = np.repeat(np.arange(len(pts)), counts)
            slots[np.arange(sub.nnz) - sub.indptr[col], col] = ids[sub.indices]
            views.append(ViewSupervision(pts, slots))
        m = masks.shape[0]
        return MaskSupervision(tuple(views), sigma, np.zeros(m, np.int64), np.ones(m, np.float32),
                               np.asarray(self.view_of_mask, dtype=np.int64), 1.0)

    def support(self, point_part: np.ndarray, n_parts: int, min_visible: float = 0.3,
                max_view_share: float | None = None) -> np.ndarray:
        """(n_parts,) float64 support in [0, 1] of every part (0 for a part without points).

        Args:
            point_part: (N,) int part id in [0, n_parts) of every sampled point.
            n_parts: number of parts.
            min_visible: a view counts for a part only if it sees at least this share of its points.
            max_view_share: masks holding more than this share of the points their view sees
                (silhouettes) do not count (None: every mask counts).
        """
        part = np.asarray(point_part, dtype=np.int64)
        n = len(part)
        out = np.zeros(n_parts)
        if self.masks.shape[0] == 0 or n == 0:
            return out
        C = _binary(([part], [np.arange(n)]), (n_parts, n))
        inter = (C @ self.masks.T).toarray()  # (K, M) points of the part inside the mask
        seen = (C @ self.visible.T).toarray()[:, self.view_of_mask]  # (K, M) points of the part its view sees
        mask_size = np.asarray(self.masks.sum(axis=1)).ravel()[None, :]
        part_size = np.bincount(part, minlength=n_parts).astype(np.float64)[:, None]
        iou = inter / np.maximum(seen + mask_size - inter, 1.0)
        iou[seen < min_visible * part_size] = 0.0
        if max_view_share is not None:
            view_size = np.asarray(self.visible.sum(axis=1)).ravel()[self.view_of_mask]
            iou[:, mask_size[0] > max_view_share * view_size] = 0.0
        return iou.max(axis=1)


def _binary(rows_cols: tuple[list[np.ndarray], list[np.ndarray]], shape: tuple[int, int]) -> sp.csr_matrix:
    """0/1 sparse matrix with ones at the given (row, col) pairs (duplicates count once)."""
    rows = np.concatenate(rows_cols[0]) if rows_cols[0] else np.zeros(0, np.int64)
    cols = np.concatenate(rows_cols[1]) if rows_cols[1] else np.zeros(0, np.int64)
    mat = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat
