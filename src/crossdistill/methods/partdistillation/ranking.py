"""Class-specific part ranking: which of an object class's parts recur, named consistently.

After the class-agnostic decoder, PartDistillation associates the parts of all instances
of one object class: their query features are clustered (k-means, 8 clusters per class in
the released configuration), and each part takes its cluster as a class-specific label.
Parts that recur across instances (a mug's handle) gather in dense regions of the
feature space; one-off segments (a reflection, a sticker) are scattered. So the clusters
are ranked by a density estimate:

* every part feature's log density under a Gaussian kernel density estimate of all the
  class's part features (``sklearn.neighbors.KernelDensity``, bandwidth the median
  distance to the 5th neighbour unless given);
* a cluster's density is the mean over its members; its coverage the share of the class's
  instances having a member;
* clusters with coverage >= ``min_coverage`` are the class's recurring parts, ranked by
  density and named ``"<class> part <rank>"``; every part is then labelled with its nearest
  recurring centroid (cosine), so each object is fully named.

The class-specific score of a part (:func:`class_part_scores`, the score PartDistillation
ranks class-specific part predictions by, as its released code computes it: "ranking score
* confidence") is its part-ness times the softmax over the class's clusters of its cosine
similarity to each centroid, at temperature ``temperature``:

    s(p, k) = partness(p) * exp(cos(f_p, c_k) / T) / sum_j exp(cos(f_p, c_j) / T)

so a part scores high for a cluster when it is confidently a part and clearly that
cluster's member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RankingConfig", "ClassParts", "PartRanking", "class_part_features", "class_part_scores"]


def class_part_scores(partness: np.ndarray, feats: np.ndarray, centroids: np.ndarray,
                      temperature: float = 0.1) -> np.ndarray:
    """(P, K) class-specific part scores (module docstring) of P parts against K centroids.

    Args:
        partness: (P,) part-ness in [0, 1].
        feats: (P, D) part features (any length; compared by cosine).
        centroids: (K, D) cluster centres.
        temperature: T > 0.

    Example:
        >>> s = class_part_scores(np.array([0.5]), np.array([[1.0, 0.0]]), np.eye(2), 1.0)
        >>> np.round(s, 4).tolist()  # 0.5 * e / (e + 1), 0.5 * 1 / (e + 1)
        [[0.3655, 0.1345]]
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    f = _unit(np.asarray(feats, np.float64))
    c = _unit(np.asarray(centroids, np.float64))
    logits = f @ c.T / temperature
    logits -= logits.max(1, keepdims=True) if logits.size else 0.0
    p = np.exp(logits)
    p /= np.maximum(p.sum(1, keepdims=True), 1e-300)
    return np.asarray(partness, np.float64)[:, None] * p


@dataclass(frozen=True)
class RankingConfig:
    """Part ranking.

    Attributes:
        clusters: k-means clusters per object class (fewer when it has fewer parts).
        min_coverage: share of the class's instances a cluster must reach to be a recurring part.
        bandwidth: kernel bandwidth in feature space; None: median 5-NN distance.
        temperature: T of the class-specific part score (:func:`class_part_scores`).
    """

    clusters: int = 8
    min_coverage: float = 0.2
    bandwidth: float | None = None
    temperature: float = 0.1


@dataclass(frozen=True)
class ClassParts:
    """The recurring parts of one object class, best ranked first.

    Attributes:
        object_class: class name.
        centroids: (K, D) float32 unit cluster centres.
        density: (K,) float mean log density of each cluster's members.
        coverage: (K,) float share of the class's instances with a member.
        names: K part names.
    """

    object_class: str
    centroids: np.ndarray
    density: np.ndarray
    coverage: np.ndarray
    names: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"object_class": self.object_class, "centroids": self.centroids.tolist(),
                "density": self.density.tolist(), "coverage": self.coverage.tolist(), "names": list(self.names)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ClassParts":
        return cls(str(d["object_class"]), np.asarray(d["centroids"], np.float32).reshape(len(d["names"]), -1),
                   np.asarray(d["density"], float), np.asarray(d["coverage"], float), tuple(d["names"]))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _rank_class(name: str, feats: np.ndarray, owner: np.ndarray, config: RankingConfig, seed: int) -> ClassParts:
    from sklearn.cluster import KMeans
    from sklearn.neighbors import KernelDensity, NearestNeighbors

    x = _unit(feats.astype(np.float64))
    k = max(1, min(config.clusters, len(np.unique(x.round(6), axis=0))))
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x) if k > 1 else np.zeros(len(x), int)
    bw = config.bandwidth
    if bw is None:
        nn = min(6, len(x))
        dist = NearestNeighbors(n_neighbors=nn).fit(x).kneighbors(x)[0][:, -1] if nn > 1 else np.ones(1)
        bw = float(max(np.median(dist), 1e-3))
    logd = KernelDensity(bandwidth=bw).fit(x).score_samples(x)
    n_inst = len(np.unique(owner))
    dens = np.array([logd[labels == c].mean() for c in range(k)])
    cover = np.array([len(np.unique(owner[labels == c])) / n_inst for c in range(k)])
    centres = _unit(np.stack([x[labels == c].mean(0) for c in range(k)]))
    recurring = np.nonzero(cover >= config.min_coverage)[0]
    if not len(recurring):
        recurring = np.array([int(np.argmax(cover))])
    order = recurring[np.argsort(-dens[recurring], kind="stable")]
    names = tuple(f"{name} part {r + 1}" if name else f"part {r + 1}" for r in range(len(order)))
    return ClassParts(name, centres[order].astype(np.float32), dens[order], cover[order], names)


@dataclass(frozen=True)
class PartRanking:
    """Recurring parts per object class (see the module docstring).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = np.eye(4)[0], np.eye(4)[1]
        >>> feats = np.concatenate([a + 0.01 * rng.normal(size=(10, 4)), b + 0.01 * rng.normal(size=(10, 4))])
        >>> owner = np.concatenate([np.arange(10), np.arange(10)])
        >>> rank = PartRanking.fit({"mug": (feats, owner)}, RankingConfig(clusters=2))
        >>> len(rank.classes["mug"].names), int(rank.assign("mug", feats[:1])[0]) != int(rank.assign("mug", feats[-1:])[0])
        (2, True)
    """

    classes: dict[str, ClassParts] = field(default_factory=dict)
    config: RankingConfig = RankingConfig()

    @classmethod
    def fit(cls, parts: Mapping[str, tuple[np.ndarray, np.ndarray]], config: RankingConfig = RankingConfig(),
            seed: int = 0) -> "PartRanking":
        """Rank the parts of every object class.

        Args:
            parts: class name -> ((n, D) part query features, (n,) id of the instance each part belongs to).
        """
        out = {}
        for name in sorted(parts):
            feats, owner = parts[name]
            if len(feats):
                out[name] = _rank_class(name, np.asarray(feats), np.asarray(owner), config, seed)
        return cls(out, config)

    def assign(self, object_class: str, feats: np.ndarray) -> np.ndarray:
        """(P,) int64 rank of the recurring part nearest to each of (P, D) part features; -1 for an unknown class."""
        parts = self.classes.get(object_class)
        if parts is None or not len(feats):
            return np.full(len(feats), -1, np.int64)
        return (_unit(np.asarray(feats, np.float64)) @ parts.centroids.T.astype(np.float64)).argmax(1).astype(np.int64)

    def scores(self, object_class: str, partness: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """(P, K) class-specific part scores (:func:`class_part_scores`) against the class's
        recurring parts, in rank order; (P, 0) for an unknown class."""
        parts = self.classes.get(object_class)
        if parts is None:
            return np.zeros((len(feats), 0))
        return class_part_scores(partness, feats, parts.centroids, self.config.temperature)

    def with_centroids(self, centroids: Mapping[str, np.ndarray]) -> "PartRanking":
        """A copy whose classes have the given (K, D) centroids (same order and names)."""
        out = dict(self.classes)
        for name, c in centroids.items():
            old = out[name]
            out[name] = ClassParts(name, _unit(np.asarray(c, np.float64)).astype(np.float32), old.density,
                                   old.coverage, old.names)
        return PartRanking(out, self.config)

    def names(self, object_class: str) -> tuple[str, ...]:
        parts = self.classes.get(object_class)
        return () if parts is None else parts.names

    def to_dict(self) -> dict:
        return {"config": {"clusters": self.config.clusters, "min_coverage": self.config.min_coverage,
                           "bandwidth": self.config.bandwidth, "temperature": self.config.temperature},
                "classes": {k: v.to_dict() for k, v in self.classes.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "PartRanking":
        return cls({k: ClassParts.from_dict(v) for k, v in d.get("classes", {}).items()},
                   RankingConfig(**d.get("config", {})))


def class_part_features(object_classes: Sequence[str], queries: Sequence[np.ndarray]
                        ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group per-instance part features by class: class -> ((n, D) features, (n,) instance index)."""
    groups: dict[str, tuple[list, list]] = {}
    for i, (c, q) in enumerate(zip(object_classes, queries)):
        f, o = groups.setdefault(c, ([], []))
        f.append(np.asarray(q, np.float32))
        o.append(np.full(len(q), i, np.int64))
    return {c: (np.concatenate(f), np.concatenate(o)) for c, (f, o) in groups.items() if f}
