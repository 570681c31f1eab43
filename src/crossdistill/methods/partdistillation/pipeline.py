"""PartDistillation end to end: instances -> proposals -> self-trained part decoder -> ranked parts.

:meth:`PartDistillation.fit` takes the :class:`InstanceCrop` of every object instance of a
collection of images (``crop_instances`` of an instance teacher's output) and

1. proposes parts by k-means of the teacher's pixel features inside each instance
   (:mod:`.proposals`);
2. trains the query-based part decoder on the proposals (:mod:`.training`);
3. self-trains it ``rounds - 1`` more times, each round on the decoder's own partitions of
   the objects (:mod:`.inference`), continuing from the previous weights;
4. ranks the decoded parts per object class (:mod:`.ranking`).

:meth:`PartDistillation.predict_image` then labels the pixels of one image: a
class-agnostic part id per pixel and a class-specific part (an index into
:attr:`PartDistillation.vocabulary`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.methods.partdistillation.crops import InstanceCrop, paste_logits
from crossdistill.methods.partdistillation.decoder import DecoderConfig, PartDecoder
from crossdistill.methods.partdistillation.inference import CropParts, decode_crops
from crossdistill.methods.partdistillation.proposals import ProposalConfig, part_proposals, partition_masks
from crossdistill.methods.partdistillation.ranking import PartRanking, RankingConfig, class_part_features
from crossdistill.methods.partdistillation.training import TrainConfig, train_decoder

__all__ = ["PartDistillationConfig", "PartDistillation", "ImageParts", "FORMAT"]

FORMAT = "crossdistill.partdistillation/1"


@dataclass(frozen=True)
class PartDistillationConfig:
    """Every setting of the method.

    Attributes:
        grid: S, the crop grid.
        proposals: k-means pixel grouping.
        dim, queries, layers, heads: decoder size (:class:`DecoderConfig`).
        train: decoder training (steps per round).
        rounds: training rounds; 1 = on the proposals only, each further round self-trains.
        score_threshold: part-ness a query needs to own cells.
        min_fraction: smallest part kept, as a share of its object.
        ranking: class-specific part ranking.
        seed: seeds proposals, decoder initialisation, batches and ranking.
    """

    grid: int = 48
    proposals: ProposalConfig = ProposalConfig()
    dim: int = 64
    queries: int = 12
    layers: int = 3
    heads: int = 4
    train: TrainConfig = TrainConfig()
    rounds: int = 2
    score_threshold: float = 0.5
    min_fraction: float = 0.01
    ranking: RankingConfig = RankingConfig()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("rounds must be >= 1")

    def decoder_config(self, in_channels: int) -> DecoderConfig:
        return DecoderConfig(in_channels, self.dim, self.queries, self.layers, self.heads, self.grid)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PartDistillationConfig":
        d = dict(d)
        d["proposals"] = ProposalConfig(**{**d.get("proposals", {}), "ks": tuple(d.get("proposals", {}).get("ks", (4,)))})
        d["train"] = TrainConfig(**d.get("train", {}))
        d["ranking"] = RankingConfig(**d.get("ranking", {}))
        return cls(**d)


@dataclass(frozen=True)
class ImageParts:
    """Parts of one image.

    Attributes:
        parts: (H, W) int32 class-agnostic part id (unique within the image), -1 background.
        part_classes: (H, W) int32 index into the model's vocabulary, -1 background / unnamed.
        part_instance: (P,) int64 instance (index into the teacher's instances) of each part id.
        part_scores: (P,) float32 part-ness of each part id.
        part_names: P names (class-specific, "" when the instance's class was not ranked).
        proposals: (R, H, W) bool every query's mask (AR@k), with ``proposal_scores`` (R,).
    """

    parts: np.ndarray
    part_classes: np.ndarray
    part_instance: np.ndarray
    part_scores: np.ndarray
    part_names: tuple[str, ...]
    proposals: np.ndarray
    proposal_scores: np.ndarray


@dataclass
class FitHistory:
    """Per-round losses and part counts of :meth:`PartDistillation.fit`."""

    losses: list[list[float]] = field(default_factory=list)
    parts_per_object: list[float] = field(default_factory=list)


class PartDistillation:
    """A trained part decoder and its class-specific ranking.

    Args:
        decoder: the part decoder.
        ranking: recurring parts per object class.
        config: the settings it was trained with.
        teacher_id: the instance teacher whose features it reads.
    """

    def __init__(self, decoder: PartDecoder, ranking: PartRanking, config: PartDistillationConfig,
                 teacher_id: str = "") -> None:
        self.decoder = decoder.eval()
        self.ranking = ranking
        self.config = config
        self.teacher_id = teacher_id

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, crops: Sequence[InstanceCrop], config: PartDistillationConfig = PartDistillationConfig(),
            teacher_id: str = "", device: str = "cpu", progress: bool = True,
            after_round: Callable[[int, PartDecoder], None] | None = None) -> tuple["PartDistillation", FitHistory]:
        """Train on the instances of a collection (see the module docstring).

        ``after_round(r, decoder)`` is called after each training round r (0-based), e.g. to
        evaluate the decoder before self-training.
        """
        if not crops:
            raise ValueError("no object instance to learn parts from")
        grids = {c.grid for c in crops}
        if grids != {config.grid}:
            raise ValueError(f"crops are on grids {sorted(grids)}, the config says {config.grid}")
        torch.manual_seed(config.seed)
        decoder = PartDecoder(config.decoder_config(int(crops[0].features.shape[0])))
        targets = [part_proposals(c, config.proposals, config.seed) for c in crops]
        history = FitHistory()
        for r in range(config.rounds):
            history.parts_per_object.append(float(np.mean([len(t) for t in targets])))
            tc = replace(config.train, seed=config.train.seed + r)
            history.losses.append(train_decoder(decoder, crops, targets, tc, device, progress,
                                                desc=f"part decoder, round {r + 1}/{config.rounds}"))
            if after_round is not None:
                after_round(r, decoder)
            if r + 1 < config.rounds:
                decoded = decode_crops(decoder, crops, config.score_threshold, config.min_fraction, device=device)
                targets = [partition_masks(d.labels) for d in decoded]
        model = cls(decoder, PartRanking(config=config.ranking), config, teacher_id)
        model.ranking = model.fit_ranking(crops, device)
        return model, history

    def fit_ranking(self, crops: Sequence[InstanceCrop], device: str = "cpu") -> PartRanking:
        """Rank the decoded parts of ``crops`` per object class."""
        decoded = self.decode(crops, device)
        feats = class_part_features([c.object_class for c in crops], [d.queries[d.part_queries] for d in decoded])
        return PartRanking.fit(feats, self.config.ranking, self.config.seed)

    # ------------------------------------------------------------------ inference
    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Every class-specific part name, class by class in sorted order."""
        return tuple(n for c in sorted(self.ranking.classes) for n in self.ranking.names(c))

    def decode(self, crops: Sequence[InstanceCrop], device: str = "cpu") -> list[CropParts]:
        return decode_crops(self.decoder, crops, self.config.score_threshold, self.config.min_fraction,
                            device=device)

    def predict_image(self, crops: Sequence[InstanceCrop], instance_masks: np.ndarray,
                      decoded: Sequence[CropParts] | None = None, device: str = "cpu") -> ImageParts:
        """Parts of one image from the crops of its instances.

        Args:
            crops: the image's instance crops (``instance_index`` indexes ``instance_masks``).
            instance_masks: (M, H, W) bool the teacher's instance masks of the image.
            decoded: :meth:`decode` of ``crops`` when already computed.
        """
        H, W = instance_masks.shape[1:]
        decoded = list(decoded) if decoded is not None else self.decode(crops, device)
        parts = np.full((H, W), -1, np.int32)
        classes = np.full((H, W), -1, np.int32)
        best = np.full((H, W), -np.inf, np.float32)
        vocab_index = {n: i for i, n in enumerate(self.vocabulary)}
        p_inst, p_score, p_name, props, prop_scores = [], [], [], [], []
        for crop, dec in zip(crops, decoded):
            obj = instance_masks[crop.instance_index]
            pasted = paste_logits(dec.logits, crop.box, (H, W), obj)  # (Q, H, W)
            props.append(pasted > 0)
            prop_scores.append(dec.scores)
            own = dec.part_queries
            if not len(own):
                continue
            weight = dec.scores[own, None, None] * (1 / (1 + np.exp(-np.clip(pasted[own], -30, 30))))
            weight[:, ~obj] = -np.inf
            winner = weight.argmax(0)
            value = weight.max(0)
            better = obj & (value > best)  # overlapping instances: the more confident part wins
            ranks = self.ranking.assign(crop.object_class, dec.queries[own])
            names = self.ranking.names(crop.object_class)
            first = len(p_inst)
            for j, q in enumerate(own):
                p_inst.append(crop.instance_index)
                p_score.append(float(dec.scores[q]))
                p_name.append(names[ranks[j]] if ranks[j] >= 0 else "")
            parts[better] = first + winner[better]
            name_idx = np.array([vocab_index.get(n, -1) for n in p_name[first:]], np.int32)
            classes[better] = name_idx[winner[better]]
            best[better] = value[better]
        present = np.unique(parts[parts >= 0])
        remap = np.full(len(p_inst) + 1, -1, np.int32)
        remap[present] = np.arange(len(present), dtype=np.int32)
        parts = np.where(parts >= 0, remap[np.maximum(parts, 0)], -1).astype(np.int32)
        return ImageParts(
            parts=parts, part_classes=classes,
            part_instance=np.asarray(p_inst, np.int64)[present] if len(present) else np.zeros(0, np.int64),
            part_scores=np.asarray(p_score, np.float32)[present] if len(present) else np.zeros(0, np.float32),
            part_names=tuple(p_name[i] for i in present),
            proposals=np.concatenate(props) if props else np.zeros((0, H, W), bool),
            proposal_scores=np.concatenate(prop_scores).astype(np.float32) if prop_scores else np.zeros(0, np.float32),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write decoder weights, config, ranking and teacher id atomically."""
        return save_checkpoint(path, FORMAT, {
            "config": self.config.to_dict(), "decoder_config": self.decoder.config.to_dict(),
            "state_dict": self.decoder.state_dict(), "ranking": self.ranking.to_dict(),
            "teacher_id": self.teacher_id})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "PartDistillation":
        """Read a model written by :meth:`save`; a bad file is one :class:`InputError` line."""
        def build(blob: dict) -> "PartDistillation":
            decoder = PartDecoder(DecoderConfig(**blob["decoder_config"]))
            decoder.load_state_dict(blob["state_dict"])
            return cls(decoder.to(device), PartRanking.from_dict(blob["ranking"]),
                       PartDistillationConfig.from_dict(blob["config"]), str(blob.get("teacher_id", "")))

        return load_checkpoint(path, FORMAT, "PartDistillation model", build, device)
