"""Training the 3D student over many shapes at once, and reading its per-point predictions.

One loss serves every stage: for every point i and part c a non-negative target weight
``T[i, c]`` (the confidence-weighted votes of the 2D predictions covering the point,
:meth:`~crossdistill.methods.partdistill.knowledge.Knowledge.point_targets`, or one-hot
ground truth for the supervised baseline). The loss of a batch is

    L = sum_i sum_c T[i, c] * (-log p_ic) / sum_i sum_c T[i, c]

so points without 2D knowledge (a zero row) contribute nothing (mask-aware), and a
point covered by several predictions learns their confidence-weighted mixture.

With ``StudentConfig.class_weights="released"`` each class's term is multiplied by the
weight of the released PartDistill code (``util.get_class_weight``, option 1): with
``n_c`` the number of (point, prediction) pairs of class c and ``n`` their total,
``w_c = clip(1 + log_4(n / (P * n_c)), 1, 4)``, so parts rarer than average weigh up to 4x
and no class weighs less than 1 (:func:`released_class_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from crossdistill.students.point_student import PointStudent, knn_graph

__all__ = ["StudentConfig", "ShapePoints", "train_student", "predict_probs", "masked_soft_ce",
           "released_class_weights"]


@dataclass(frozen=True)
class StudentConfig:
    """Student network and optimisation settings.

    Attributes:
        n_points: sampled surface points per shape.
        width, n_blocks, k: :class:`~crossdistill.students.point_student.PointStudent` size
            and neighbourhood size.
        iterations: optimiser steps per training run.
        batch_size: shapes per step.
        lr, weight_decay: AdamW (cosine decay to 0).
        scale_jitter: random per-axis scaling in [1 - s, 1 + s] of the coordinates (augmentation).
        seed: seeds weights, batches and augmentation.
        class_weights: None (every class weighs 1) or "released" (the released PartDistill
            code's smoothed inverse-frequency weights, from the training targets; see the
            module docstring).
    """

    n_points: int = 2048
    width: int = 64
    n_blocks: int = 4
    k: int = 16
    iterations: int = 400
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    scale_jitter: float = 0.1
    seed: int = 0
    class_weights: str | None = None

    def __post_init__(self) -> None:
        if self.class_weights not in (None, "released"):
            raise ValueError(f"class_weights must be None or 'released', got {self.class_weights!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ShapePoints:
    """One shape as the student sees it.

    Attributes:
        feats: (N, 9) float32 :func:`~crossdistill.students.point_student.point_features`.
        knn: (N, 2k) int64 :func:`~crossdistill.students.point_student.knn_graph`.
        name: identifier for logs.
    """

    feats: np.ndarray
    knn: np.ndarray
    name: str = ""

    @classmethod
    def build(cls, feats: np.ndarray, k: int, name: str = "") -> "ShapePoints":
        return cls(np.asarray(feats, np.float32), knn_graph(feats[:, :3], k), name)


def masked_soft_ce(logits: torch.Tensor, targets: torch.Tensor,
                   class_weights: torch.Tensor | None = None, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Confidence-weighted cross-entropy; rows of ``targets`` that are all zero give no loss.

    Args:
        logits: (..., P) float.
        targets: (..., P) non-negative weights.
        class_weights: optional (P,) multiplier of each class's term (not of the normaliser).
        negatives: optional (..., P) non-negative weights of negative learning: the term
            ``N * -log(1 - p)`` pushes a point's probability of a part down where the 2D
            knowledge says it is not that part.

    Returns:
        scalar: ``(sum(w_c * T * -log p) + sum(N * -log(1 - p))) / sum(T)`` (0 when ``T`` and ``N``
        are all zero, with a gradient of zero).
    """
    total = targets.sum()
    weighted = targets if class_weights is None else targets * class_weights
    logp = F.log_softmax(logits, -1)
    nll = -(weighted * logp).sum()
    if negatives is not None:
        nll = nll - (negatives * torch.log1p(-logp.exp().clamp(max=1 - 1e-6))).sum()
    return nll / total.clamp(min=1e-12)


def released_class_weights(targets: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """(P,) float32 class weights of the released PartDistill code (``get_class_weight``, option 1).

    Args:
        targets: arrays (N, P) of non-negative target weights; a pair (point, class) counts
            once where its weight is positive.
        n_classes: P.

    Returns:
        ``clip(1 + log_4(n / (P * n_c)), 1, 4)`` per class, n_c its positive pairs, n their
        total; 4 (the cap) for a class with no pair, 1 for all when there is no pair at all.
    """
    counts = np.zeros(n_classes)
    for t in targets:
        counts += (np.asarray(t) > 0).sum(axis=0)
    if counts.sum() == 0:
        return np.ones(n_classes, np.float32)
    with np.errstate(divide="ignore"):
        w = 1.0 + np.log(counts.sum() / (n_classes * counts)) / np.log(4.0)
    return np.clip(np.nan_to_num(w, posinf=4.0), 1.0, 4.0).astype(np.float32)


def train_student(shapes: Sequence[ShapePoints], targets: Sequence[np.ndarray], n_classes: int,
                  config: StudentConfig = StudentConfig(), device: str = "cpu", progress: bool = True,
                  desc: str = "train student", init: PointStudent | None = None,
                  negatives: Sequence[np.ndarray] | None = None) -> PointStudent:
    """Train a :class:`PointStudent` on ``shapes`` with per-point target weights.

    Args:
        shapes: S shapes of N points each (the same N for all).
        targets: S arrays (N, P) float32 of non-negative target weights.
        n_classes: P.
        config: settings (seed, steps, sizes).
        device: torch device.
        progress: tqdm bar.
        init: a student to continue from (its weights are copied, it is not modified; a fresh
            optimiser and learning-rate schedule run ``config.iterations`` steps); None: a
            fresh student from ``config.seed``.
        negatives: optional S arrays (N, P) of negative-learning weights (:func:`masked_soft_ce`).

    Returns:
        the trained student in eval mode.
    """
    if len(shapes) == 0 or len(shapes) != len(targets):
        raise ValueError(f"{len(shapes)} shapes and {len(targets)} target arrays")
    has = [i for i, t in enumerate(targets) if float(np.asarray(t).sum()) > 0]
    if not has:
        raise ValueError("no shape carries any target: nothing to learn from")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = PointStudent(n_classes, config.width, config.n_blocks).to(device)
    if init is not None:
        model.load_state_dict(init.state_dict())
    feats = torch.from_numpy(np.stack([s.feats for s in shapes]))
    knn = torch.from_numpy(np.stack([s.knn for s in shapes]))
    tgt = torch.from_numpy(np.stack([np.asarray(t, np.float32) for t in targets]))
    neg = None if negatives is None else torch.from_numpy(np.stack([np.asarray(t, np.float32) for t in negatives]))
    pool = torch.as_tensor(has)
    weights = None
    if config.class_weights == "released":
        weights = torch.from_numpy(released_class_weights(targets, n_classes)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(config.iterations, 1))
    model.train()
    for _ in tqdm(range(config.iterations), desc=desc, disable=not progress, leave=False):
        b = pool[torch.randint(len(pool), (min(config.batch_size, len(pool)),), generator=gen)]
        x = feats[b].clone()
        if config.scale_jitter > 0:
            s = 1.0 + config.scale_jitter * (2 * torch.rand(len(b), 1, 3, generator=gen) - 1)
            x[..., :3] = x[..., :3] * s
        loss = masked_soft_ce(model(x.to(device), knn[b].to(device)), tgt[b].to(device), weights,
                              None if neg is None else neg[b].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict_probs(model: PointStudent, shape: ShapePoints, device: str = "cpu") -> np.ndarray:
    """(N, P) float32 softmax of the student on one shape."""
    feats = torch.from_numpy(shape.feats)[None].to(device)
    knn = torch.from_numpy(shape.knn)[None].to(device)
    return torch.softmax(model(feats, knn)[0].float(), -1).cpu().numpy()
