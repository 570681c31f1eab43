"""The last stage of PartDistillation: self-training on class-specific part ids (cluster ids).

After the class-agnostic decoder is trained and its parts are clustered per object class
(:mod:`.ranking`), PartDistillation labels every training object with class-specific parts
(each decoded part takes the cluster it scores highest for, parts of one cluster merged)
and trains the whole model again on those labels (the released configuration: 8 part
classes per object class, crop / scale / flip augmentation). Here:

* :class:`ClusterHead` holds, per object class, one learnable prototype per recurring part
  (initialised from the ranking's centroids, in rank order); a query's label logits are its
  cosine similarity to each prototype of its object's class over ``temperature``, so the
  label probability is the softmax of :func:`.ranking.class_part_scores` and the
  class-specific score is part-ness x that probability;
* :func:`labelled_partition` turns one crop's decoder output into labelled targets: each
  object cell goes to the confident query maximising ``part-ness x mask probability``
  (:func:`.inference.parts_partition`), each query takes the label of its best
  class-specific score, and the cells of one label form one target;
* :func:`final_targets` does it for every crop with a teacher snapshot (decoder + head).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from crossdistill.methods.partdistillation.crops import InstanceCrop
from crossdistill.methods.partdistillation.inference import parts_partition
from crossdistill.methods.partdistillation.training import crop_batches

__all__ = ["ClusterHead", "labelled_partition", "final_targets", "decode_with_labels"]

_PAD = -1e4  # logit of a label the object's class does not have


class ClusterHead(nn.Module):
    """Per object class, (K_c, D) part prototypes; label logits = cos(query, prototype) / T.

    Args:
        centroids: class name -> (K_c, D) initial prototypes (the ranking's, in rank order).
        temperature: T.

    Example:
        >>> head = ClusterHead({"mug": np.eye(3)[:2]}, temperature=0.5)
        >>> head(torch.tensor([[[1.0, 0.0, 0.0]]]), ["mug"]).tolist()
        [[[2.0, 0.0]]]
    """

    def __init__(self, centroids: Mapping[str, np.ndarray], temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.names = sorted(centroids)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.prototypes = nn.ParameterList(
            nn.Parameter(torch.as_tensor(np.asarray(centroids[n], np.float32))) for n in self.names)
        self.temperature = float(temperature)
        self.kmax = max((len(centroids[n]) for n in self.names), default=1)

    def forward(self, queries: torch.Tensor, classes: Sequence[str]) -> torch.Tensor:
        """(B, Q, D) queries, B class names -> (B, Q, K_max) logits (padding and unknown classes: -1e4)."""
        B, Q, _ = queries.shape
        q = F.normalize(queries.float(), dim=-1)
        out = q.new_full((B, Q, self.kmax), _PAD)
        for b, name in enumerate(classes):
            i = self.index.get(name)
            if i is None:
                continue
            p = F.normalize(self.prototypes[i], dim=-1)
            out[b, :, : len(p)] = q[b] @ p.T / self.temperature
        return out

    def centroids(self) -> dict[str, np.ndarray]:
        """class name -> (K_c, D) float32 unit prototypes."""
        return {n: F.normalize(p.detach().float(), dim=-1).cpu().numpy() for n, p in zip(self.names, self.prototypes)}

    def state(self) -> dict:
        return {"names": self.names, "temperature": self.temperature,
                "prototypes": [p.detach().cpu() for p in self.prototypes]}

    @classmethod
    def from_state(cls, state: Mapping) -> "ClusterHead":
        return cls({n: p.numpy() for n, p in zip(state["names"], state["prototypes"])}, float(state["temperature"]))


def labelled_partition(logits: np.ndarray, partness: np.ndarray, label_probs: np.ndarray, object_mask: np.ndarray,
                       score_threshold: float = 0.5, min_fraction: float = 0.01,
                       min_parts: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One crop's labelled targets (module docstring).

    Args:
        logits: (Q, S, S) mask logits; partness: (Q,) in [0, 1]; label_probs: (Q, K) label
            probabilities of the object's class; object_mask: (S, S) bool.

    Returns:
        ((T, S, S) bool masks, (T,) int64 labels), one mask per label present, labels ascending.

    Example:
        >>> lg = np.array([[[5., 5.], [-5, -5]], [[-5, -5], [5, 5]]])
        >>> m, l = labelled_partition(lg, np.array([0.9, 0.8]), np.array([[0.1, 0.9], [0.2, 0.8]]), np.ones((2, 2), bool))
        >>> m.astype(int).tolist(), l.tolist()  # both queries' best class-specific score is label 1: one target
        ([[[1, 1], [1, 1]]], [1])
    """
    owner = parts_partition(logits, partness, object_mask, score_threshold, min_fraction, min_parts)
    scores = partness[:, None] * label_probs
    qlabel = scores.argmax(1) if scores.shape[1] else np.zeros(len(partness), np.int64)
    lab = np.where(owner >= 0, qlabel[np.maximum(owner, 0)], -1)
    ids = np.unique(lab[lab >= 0])
    masks = lab[None] == ids[:, None, None] if len(ids) else np.zeros((0, *lab.shape), bool)
    return masks, ids.astype(np.int64)


@torch.no_grad()
def decode_with_labels(joint: nn.ModuleDict, crops: Sequence[InstanceCrop], batch_size: int = 32,
                       device: str = "cpu") -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per crop: (Q, S, S) logits, (Q,) part-ness, (Q, D) unit queries, (Q, K_max) label probabilities.

    ``joint`` holds ``decoder`` (:class:`~.decoder.PartDecoder`) and ``head`` (:class:`ClusterHead`).
    """
    joint.to(device).eval()
    out = []
    for chunk, feats, objs in crop_batches(crops, batch_size, device):
        last = joint["decoder"](feats, objs)[-1]
        probs = joint["head"](last["queries"], [c.object_class for c in chunk]).softmax(-1)
        logits = last["masks"].float().cpu().numpy()
        partness = last["scores"].float().sigmoid().cpu().numpy()
        queries = F.normalize(last["queries"].float(), dim=-1).cpu().numpy()
        for b in range(len(chunk)):
            out.append((logits[b], partness[b], queries[b], probs[b].float().cpu().numpy()))
    return out


def final_targets(joint: nn.ModuleDict, crops: Sequence[InstanceCrop], score_threshold: float = 0.5,
                  min_fraction: float = 0.01, device: str = "cpu",
                  min_parts: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Labelled targets of every crop from a teacher snapshot's ``joint`` (decoder + head).

    ``min_parts``: see :func:`.inference.parts_partition`.
    """
    masks, labels = [], []
    for crop, (lg, pn, _, pr) in zip(crops, decode_with_labels(joint, crops, device=device)):
        head = joint["head"]
        if crop.object_class not in head.index:  # a class without recurring parts: nothing to learn
            masks.append(np.zeros((0, *crop.mask.shape), bool))
            labels.append(np.zeros(0, np.int64))
            continue
        k = len(head.prototypes[head.index[crop.object_class]])
        m, lab = labelled_partition(lg, pn, pr[:, :k], crop.mask, score_threshold, min_fraction, min_parts)
        masks.append(m)
        labels.append(lab)
    return masks, labels
