"""Clustering agreement of unsupervised 2D parts (PartDistillation protocol): NMI, ARI."""

from __future__ import annotations

import numpy.typing as npt

from crossdistill.errors import InputError
from crossdistill.eval.metrics._common import _labels, _same_shape

__all__ = ["nmi", "ari"]


def _flat_pair(gt: npt.ArrayLike, pred: npt.ArrayLike, ignore: int | None):
    gt, pred = _labels(gt, "gt", ndim=None), _labels(pred, "pred", ndim=None)
    _same_shape(gt, pred)
    gt, pred = gt.reshape(-1), pred.reshape(-1)
    if ignore is not None:
        gt, pred = gt[gt != ignore], pred[gt != ignore]
    if gt.size == 0:
        raise InputError("no labelled ground-truth element")
    return gt, pred


def nmi(
    gt: npt.ArrayLike, pred: npt.ArrayLike, *, ignore: int | None = -1, average_method: str = "arithmetic"
) -> float:
    """Normalised mutual information of a part clustering (PartDistillation protocol).

    Wraps ``sklearn.metrics.normalized_mutual_info_score`` on the elements whose GT is
    not ``ignore``. Arrays of any equal shape (e.g. (H, W) label maps) are flattened.
    Unweighted (scikit-learn has no sample weights); a predicted -1 is one more cluster.

    Example:
        >>> nmi([0, 0, 1, 1, -1], [5, 5, 2, 2, 2])
        1.0
    """
    from sklearn.metrics import normalized_mutual_info_score

    g, p = _flat_pair(gt, pred, ignore)
    return float(normalized_mutual_info_score(g, p, average_method=average_method))


def ari(gt: npt.ArrayLike, pred: npt.ArrayLike, *, ignore: int | None = -1) -> float:
    """Adjusted Rand index, as :func:`nmi` (``sklearn.metrics.adjusted_rand_score``).

    Example:
        >>> ari([0, 0, 1, 1, -1], [5, 5, 2, 2, 5])
        1.0
    """
    from sklearn.metrics import adjusted_rand_score

    g, p = _flat_pair(gt, pred, ignore)
    return float(adjusted_rand_score(g, p))
