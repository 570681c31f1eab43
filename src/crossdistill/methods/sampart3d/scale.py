"""3D scale of a 2D mask and the scale normalisation of SAMPart3D.

SAMPart3D (Yang et al., 2024, Eq. 3) gives every 2D mask a 3D scale from the spread
of the 3D points it covers::

    sigma = sqrt((eps * std_x)^2 + (eps * std_y)^2 + (eps * std_z)^2),  eps = 10

with coordinates normalised as in the released code (Pointcept ``NormalizeCoord``:
centred on the centroid and divided by the largest distance to it). Scales are fed
to the grouping MLP through a quantile transform fitted on the object's mask scales
(as GARField and the released SAMPart3D code do), so the network sees a uniform
[0, 1] input whatever the object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXTENT_SCALE = 10.0  # eps of Eq. 3
MAX_GROUPING_SCALE = 2.0  # largest scale used by the hierarchy loss and the evaluation


def sphere_normalizer(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid and radius of the unit-sphere normalisation.

    Args:
        points: (N, 3) positions.

    Returns:
        centroid (3,), radius (largest distance to the centroid, > 0).
    """
    p = np.asarray(points, dtype=np.float64)
    c = p.mean(axis=0)
    r = float(np.sqrt(((p - c) ** 2).sum(axis=1).max()))
    return c, max(r, 1e-12)


def mask_scale(points: np.ndarray, radius: float = 1.0, eps: float = EXTENT_SCALE) -> float:
    """Scale sigma of one mask (Eq. 3).

    Args:
        points: (M, 3) 3D points covered by the mask.
        radius: the object's normalisation radius (see :func:`sphere_normalizer`);
            coordinates are divided by it before taking the std.
        eps: extent scale (10 in the paper).

    Returns:
        sigma >= 0 (0 for a mask of fewer than 2 points).

    Example:
        >>> round(mask_scale(np.array([[0., 0, 0], [0.2, 0, 0]])), 6)  # std_x = 0.1
        1.0
    """
    p = np.asarray(points, dtype=np.float64) / radius
    if len(p) < 2:
        return 0.0
    std = p.std(axis=0)
    return float(np.sqrt(((eps * std) ** 2).sum()))


def mask_scales_from_labels(points: np.ndarray, labels: np.ndarray, n_masks: int, radius: float = 1.0,
                            eps: float = EXTENT_SCALE) -> np.ndarray:
    """Vectorised :func:`mask_scale` for many masks at once.

    Args:
        points: (M, 3) points (one per covered pixel or point).
        labels: (M,) mask index in [0, n_masks) of each point.
        n_masks: number of masks.

    Returns:
        (n_masks,) float64 sigma per mask (0 where a mask has < 2 points).
    """
    p = np.asarray(points, dtype=np.float64) / radius
    cnt = np.bincount(labels, minlength=n_masks).astype(np.float64)
    s1 = np.stack([np.bincount(labels, p[:, k], minlength=n_masks) for k in range(3)], 1)
    s2 = np.stack([np.bincount(labels, p[:, k] ** 2, minlength=n_masks) for k in range(3)], 1)
    safe = np.maximum(cnt, 1)[:, None]
    var = np.maximum(s2 / safe - (s1 / safe) ** 2, 0.0)
    sigma = np.sqrt((eps**2 * var).sum(axis=1))
    return np.where(cnt >= 2, sigma, 0.0)


@dataclass(frozen=True)
class ScaleQuantiles:
    """Monotone map from raw scale sigma to [0, 1] (empirical CDF of the mask scales).

    Attributes:
        knots: (Q,) sorted raw scales at quantiles ``linspace(0, 1, Q)``.
    """

    knots: np.ndarray

    @classmethod
    def fit(cls, scales: np.ndarray, n_quantiles: int = 1000) -> "ScaleQuantiles":
        s = np.asarray(scales, dtype=np.float64)
        if s.size == 0:
            s = np.array([0.0, MAX_GROUPING_SCALE])
        q = np.linspace(0.0, 1.0, min(n_quantiles, max(int(s.size), 2)))
        return cls(np.quantile(s, q))

    def __call__(self, scales: np.ndarray) -> np.ndarray:
        """Raw scales (...) -> (...) float32 in [0, 1]."""
        s = np.asarray(scales, dtype=np.float64)
        q = np.linspace(0.0, 1.0, len(self.knots))
        # np.interp needs strictly increasing x for a sensible result; ties keep the left value
        knots = self.knots + np.arange(len(self.knots)) * 1e-12
        return np.interp(s, knots, q).astype(np.float32)

    def inverse(self, q: float) -> float:
        """Raw scale at quantile ``q`` in [0, 1]."""
        return float(np.interp(q, np.linspace(0.0, 1.0, len(self.knots)), self.knots))
