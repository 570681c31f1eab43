"""Clustering agreement: NMI, ARI (PartDistillation protocol) and the Rand index error of the
Princeton Segmentation Benchmark."""

from __future__ import annotations

import numpy.typing as npt

from crossdistill.errors import InputError
from crossdistill.eval.metrics._common import _labels, _same_shape

__all__ = ["nmi", "ari", "rand_index_error"]


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


def rand_index_error(gt: npt.ArrayLike, pred: npt.ArrayLike, *, ignore: int | None = -1) -> float:
    """1 - Rand index over unordered element pairs, unweighted (Chen et al. 2009, the Princeton
    Segmentation Benchmark's definition): the share of pairs on which the two segmentations
    disagree (one puts them together, the other apart). 0 = the same segmentation.

    Example:
        >>> rand_index_error([0, 0, 1, 1], [7, 7, 3, 3])
        0.0
        >>> round(rand_index_error([0, 0, 1, 1], [0, 0, 0, 0]), 4)  # 4 of the 6 pairs disagree
        0.6667
    """
    from sklearn.metrics import rand_score

    g, p = _flat_pair(gt, pred, ignore)
    if len(g) < 2:
        return 0.0
    return float(1.0 - rand_score(g, p))
