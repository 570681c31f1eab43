"""Running the part decoder: every query's mask and score, and one partition of each object.

Two readings of the decoder's last layer per crop:

* **proposals** (for AR@k): every query's mask (inside the object, at the mask-logit
  thresholds of :attr:`PartDistillationConfig.proposal_thresholds`) ranked by its part-ness
  ``sigmoid(score)``;
* **parts**: a partition of the object, the unique-per-pixel reading of PartDistillation:
  each object cell goes to the confident query (part-ness >= ``score_threshold``; the
  best query if none is; with ``min_parts`` = k, at least the k queries of highest
  part-ness compete) maximising ``part-ness * mask probability``. These partitions are
  also the self-training targets of the next round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from crossdistill.methods.partdistillation.crops import InstanceCrop
from crossdistill.methods.partdistillation.decoder import PartDecoder
from crossdistill.methods.partdistillation.proposals import absorb_small_pieces
from crossdistill.methods.partdistillation.training import crop_batches

__all__ = ["CropParts", "decode_crops", "parts_partition", "embedding_crops"]


@dataclass(frozen=True)
class CropParts:
    """The decoder's reading of one crop.

    Attributes:
        logits: (Q, S, S) float32 mask logits of every query (-inf outside the object).
        scores: (Q,) float32 part-ness in [0, 1].
        queries: (Q, D) float32 L2-normalised query features.
        labels: (S, S) int64 partition: index of the query owning each object cell, -1 outside.
        label_probs: (Q, K) float32 class-specific label probabilities of a model with a
            cluster head (:mod:`.final`), else None.
    """

    logits: np.ndarray
    scores: np.ndarray
    queries: np.ndarray
    labels: np.ndarray
    label_probs: np.ndarray | None = None

    @property
    def part_queries(self) -> np.ndarray:
        """(P,) int64 queries that own at least one cell, ascending."""
        return np.unique(self.labels[self.labels >= 0])


def parts_partition(logits: np.ndarray, scores: np.ndarray, object_mask: np.ndarray,
                    score_threshold: float = 0.5, min_fraction: float = 0.01, min_parts: int = 0) -> np.ndarray:
    """(S, S) int64 query owning each object cell (-1 outside), see the module docstring.

    ``min_parts`` = k lets the k queries of highest part-ness compete for cells even below
    ``score_threshold`` (a query still owns a part only where its weighted mask wins, and
    parts under ``min_fraction`` of the object are absorbed by their neighbours).

    Example:
        >>> lg = np.array([[[5., 5.], [-5, -5]], [[-5, -5], [5, 5]], [[5, 5], [5, 5]]])
        >>> parts_partition(lg, np.array([0.9, 0.8, 0.1]), np.ones((2, 2), bool)).tolist()
        [[0, 0], [1, 1]]
    """
    confident = scores >= score_threshold
    if not confident.any():
        confident = scores == scores.max()
    if min_parts > int(confident.sum()):
        confident[np.argsort(-scores, kind="stable")[:min_parts]] = True
    prob = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
    weight = np.where(confident[:, None, None], scores[:, None, None] * prob, -1.0)
    labels = np.where(object_mask, weight.argmax(0), -1).astype(np.int64)
    n = int(object_mask.sum())
    if n:
        labels = absorb_small_pieces(labels, object_mask, max(1, int(np.ceil(min_fraction * n))))
    return labels


@torch.no_grad()
def decode_crops(decoder: PartDecoder, crops: Sequence[InstanceCrop], score_threshold: float = 0.5,
                 min_fraction: float = 0.01, batch_size: int = 32, device: str = "cpu",
                 min_parts: int = 0) -> list[CropParts]:
    """Decode every crop (see the module docstring); the decoder is put in eval mode."""
    decoder.to(device).eval()
    out: list[CropParts] = []
    for chunk, feats, objs in crop_batches(crops, batch_size, device):
        last = decoder(feats, objs)[-1]
        logits = last["masks"].float().cpu().numpy()
        scores = last["scores"].float().sigmoid().cpu().numpy()
        queries = torch.nn.functional.normalize(last["queries"].float(), dim=-1).cpu().numpy()
        for b, crop in enumerate(chunk):
            labels = parts_partition(logits[b], scores[b], crop.mask, score_threshold, min_fraction, min_parts)
            out.append(CropParts(logits[b], scores[b], queries[b], labels))
    return out


@torch.no_grad()
def embedding_crops(decoder: PartDecoder, crops: Sequence[InstanceCrop], batch_size: int = 32,
                    device: str = "cpu") -> list[InstanceCrop]:
    """``crops`` with their features replaced by the decoder's (D, S, S) pixel embeddings.

    The decoder is put in eval mode. Grouping these cells (:func:`.proposals.part_proposals`)
    re-proposes parts in the feature space the decoder has learned.
    """
    decoder.to(device).eval()
    out: list[InstanceCrop] = []
    for chunk, feats, objs in crop_batches(crops, batch_size, device):
        emb = decoder.pixel_embedding(feats, objs).float().cpu().numpy()
        out += [replace(c, features=emb[b]) for b, c in enumerate(chunk)]
    return out
