"""PartDistillation end to end: instances -> proposals -> self-trained part decoder -> ranked parts.

:meth:`PartDistillation.fit` takes the :class:`InstanceCrop` of every object instance of a
collection of images (``crop_instances`` of an instance teacher's output) and

1. proposes parts by cosine k-means of the teacher's pixel features inside each instance
   (:mod:`.proposals`);
2. trains the query-based part decoder on the proposals (:mod:`.training`);
3. self-trains it ``rounds - 1`` more times, continuing from the previous weights: a
   teacher snapshot (EMA of the decoder, :class:`~.augment.TeacherSnapshot`) re-labels the
   objects with its partitions (:mod:`.inference`) every ``self_train.refresh_every`` steps
   and the decoder learns them on strongly augmented crops (:mod:`.augment`);
4. ranks the decoded parts per object class (:mod:`.ranking`);
5. unless ``final_steps`` is 0, self-trains decoder and a per-class cluster head on
   class-specific part ids (:mod:`.final`), again from a snapshot on augmented crops
   (by default as many steps as each round).

:meth:`PartDistillation.predict_image` then labels the pixels of one image: a
class-agnostic part id per pixel and a class-specific part (an index into
:attr:`PartDistillation.vocabulary`). A model with a cluster head labels parts by their
class-specific score (part-ness x label probability) and merges the parts of one label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.methods.partdistillation.augment import AugmentConfig, TeacherSnapshot
from crossdistill.methods.partdistillation.crops import InstanceCrop, paste_logits
from crossdistill.methods.partdistillation.decoder import DecoderConfig, PartDecoder
from crossdistill.methods.partdistillation.final import ClusterHead, decode_with_labels, final_targets
from crossdistill.methods.partdistillation.inference import CropParts, decode_crops, embedding_crops, parts_partition
from crossdistill.methods.partdistillation.proposals import ProposalConfig, part_proposals, partition_masks
from crossdistill.methods.partdistillation.ranking import PartRanking, RankingConfig, class_part_features
from crossdistill.methods.partdistillation.training import TrainConfig, train_decoder

__all__ = ["PartDistillationConfig", "PartDistillation", "ImageParts", "SelfTrainConfig", "FORMAT"]

FORMAT = "crossdistill.partdistillation/1"


@dataclass(frozen=True)
class SelfTrainConfig:
    """Self-training (rounds after the first, and the final stage).

    Attributes:
        augment: strong augmentation of the student's crops; None: none.
        momentum: EMA momentum of the teacher snapshot per step (0: a copy refreshed at each re-labelling).
        refresh_every: steps between re-labellings of all crops by the snapshot.
        proposal_augment: also augment the first round (training on the proposals).
        min_parts: the snapshot's partitions used as targets let at least this many queries
            (highest part-ness first) compete for cells (0: only the confident ones;
            :func:`~.inference.parts_partition`), so merged parts can split again.
        targets: what the snapshot's re-labelling gives in the rounds after the first:
            "partition", its partition of each object (PartDistillation); "embedding", the
            proposals' k-means (same :class:`ProposalConfig`) of its pixel embeddings
            (:func:`~.inference.embedding_crops`), so every object keeps the proposals' part count.
    """

    augment: AugmentConfig | None = AugmentConfig()
    momentum: float = 0.99
    refresh_every: int = 50
    proposal_augment: bool = False
    min_parts: int = 0
    targets: str = "partition"

    def __post_init__(self) -> None:
        if self.targets not in ("partition", "embedding"):
            raise ValueError(f"targets must be partition or embedding, got {self.targets!r}")
        if self.min_parts < 0:
            raise ValueError("min_parts must be >= 0")


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
        min_parts: the decoder's reading lets at least this many queries (highest part-ness
            first) compete for an object's cells (0: only the confident ones).
        ranking: class-specific part ranking.
        normalize_input: the decoder also reads its input features standardised per object (:class:`DecoderConfig`).
        pixel_kernel: kernel of the decoder's second pixel convolution (:class:`DecoderConfig`).
        pixel_layers: residual 3x3 blocks of the decoder's pixel embedding (:class:`DecoderConfig`).
        pixel_position: channels of the cell-position code in the pixel embedding's input (:class:`DecoderConfig`).
        self_train: how rounds after the first (and the final stage) self-train.
        final_steps: steps of the final self-training on class-specific part ids (0: none; None,
            the default: as many as each training round, ``train.steps``, as the benchmark runs it).
        proposal_thresholds: mask-logit thresholds at which every query's mask is offered as a
            ranked proposal (AR@k), ranked by the query's part-ness; the masks at the second and
            later thresholds rank just below the first (default: logit > 0, then the looser
            logit > -2 and the tighter logit > 2; chosen in docs/results/partdistillation_notes.md).
            The partition (the parts) does not depend on them.
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
    min_fraction: float = 0.05
    min_parts: int = 0
    ranking: RankingConfig = RankingConfig()
    normalize_input: bool = False
    pixel_kernel: int = 1
    pixel_layers: int = 0
    pixel_position: int = 0
    self_train: SelfTrainConfig = SelfTrainConfig()
    final_steps: int | None = None
    proposal_thresholds: tuple[float, ...] = (0.0, -2.0, 2.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.proposal_thresholds:
            raise ValueError("proposal_thresholds needs at least one threshold")
        if self.rounds < 1:
            raise ValueError("rounds must be >= 1")
        if self.final_steps is not None and self.final_steps < 0:
            raise ValueError("final_steps must be >= 0 (or None: as many as train.steps)")
        if self.min_parts < 0:
            raise ValueError("min_parts must be >= 0")

    @property
    def final_stage_steps(self) -> int:
        """Steps of the final self-training stage (``final_steps``, or ``train.steps`` when None)."""
        return self.train.steps if self.final_steps is None else self.final_steps

    def decoder_config(self, in_channels: int) -> DecoderConfig:
        return DecoderConfig(in_channels, self.dim, self.queries, self.layers, self.heads, self.grid,
                             self.normalize_input, self.pixel_kernel, self.pixel_layers, self.pixel_position)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PartDistillationConfig":
        d = dict(d)
        d["proposals"] = ProposalConfig(**{**d.get("proposals", {}), "ks": tuple(d.get("proposals", {}).get("ks", (4,)))})
        d["train"] = TrainConfig(**d.get("train", {}))
        d["ranking"] = RankingConfig(**d.get("ranking", {}))
        st = dict(d.get("self_train", {}))
        aug = st.get("augment", AugmentConfig().to_dict())
        st["augment"] = None if aug is None else AugmentConfig(**{**aug, "scale": tuple(aug.get("scale", (0.6, 1.6)))})
        d["self_train"] = SelfTrainConfig(**st)
        d["proposal_thresholds"] = tuple(d.get("proposal_thresholds", (0.0,)))
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
        proposals: (R, H, W) bool ranked part masks for AR@k, with ``proposal_scores`` (R,): the
            image's parts first (score 1 + part score), then every query's own mask inside its
            object at each of ``config.proposal_thresholds`` (score its part-ness, a little less
            at each later threshold).
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
        head: the cluster head of the final stage (None: parts named by nearest ranking centroid).
    """

    def __init__(self, decoder: PartDecoder, ranking: PartRanking, config: PartDistillationConfig,
                 teacher_id: str = "", head: ClusterHead | None = None) -> None:
        self.decoder = decoder.eval()
        self.ranking = ranking
        self.config = config
        self.teacher_id = teacher_id
        self.head = head.eval() if head is not None else None

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
        st = config.self_train

        def relabel(model: PartDecoder) -> tuple[list[np.ndarray], None]:
            if st.targets == "embedding":
                out = [part_proposals(c, config.proposals, config.seed)
                       for c in embedding_crops(model, crops, device=device)]
            else:
                decoded = decode_crops(model, crops, config.score_threshold, config.min_fraction, device=device,
                                       min_parts=st.min_parts)
                out = [partition_masks(d.labels) for d in decoded]
            history.parts_per_object.append(float(np.mean([len(t) for t in out])))
            return out, None

        for r in range(config.rounds):
            tc = replace(config.train, seed=config.train.seed + r)
            desc = f"part decoder, round {r + 1}/{config.rounds}"
            if r == 0:
                history.parts_per_object.append(float(np.mean([len(t) for t in targets])))
                aug = st.augment if st.proposal_augment else None
                history.losses.append(train_decoder(decoder, crops, targets, tc, device, progress, desc, augment=aug))
            else:
                teacher = TeacherSnapshot(decoder, st.momentum)
                history.losses.append(train_decoder(decoder, crops, [], tc, device, progress, desc, augment=st.augment,
                                                    teacher=teacher, make_targets=relabel,
                                                    refresh_every=st.refresh_every))
            if after_round is not None:
                after_round(r, decoder)
        model = cls(decoder, PartRanking(config=config.ranking), config, teacher_id)
        model.ranking = model.fit_ranking(crops, device)
        if config.final_stage_steps > 0 and model.ranking.classes:
            head = ClusterHead({c: p.centroids for c, p in model.ranking.classes.items()}, config.ranking.temperature)
            joint = torch.nn.ModuleDict({"decoder": decoder, "head": head})
            teacher = TeacherSnapshot(joint, st.momentum)

            def relabel_final(j: torch.nn.ModuleDict) -> tuple[list[np.ndarray], list[np.ndarray]]:
                out = final_targets(j, crops, config.score_threshold, config.min_fraction, device, st.min_parts)
                history.parts_per_object.append(float(np.mean([len(t) for t in out[0]])))
                return out

            tc = replace(config.train, steps=config.final_stage_steps, seed=config.train.seed + config.rounds)
            history.losses.append(train_decoder(decoder, crops, [], tc, device, progress, "part decoder, final",
                                                augment=st.augment, teacher=teacher, make_targets=relabel_final,
                                                refresh_every=st.refresh_every, head=head))
            model.head = head.eval()
            model.ranking = model.ranking.with_centroids(head.centroids())
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
        """The decoder's reading of every crop; with a head, also each query's label probabilities."""
        if self.head is None:
            return decode_crops(self.decoder, crops, self.config.score_threshold, self.config.min_fraction,
                                device=device, min_parts=self.config.min_parts)
        joint = torch.nn.ModuleDict({"decoder": self.decoder, "head": self.head})
        out = []
        for crop, (lg, pn, q, pr) in zip(crops, decode_with_labels(joint, crops, device=device)):
            k = len(self.ranking.names(crop.object_class))
            labels = parts_partition(lg, pn, crop.mask, self.config.score_threshold, self.config.min_fraction,
                                     self.config.min_parts)
            out.append(CropParts(lg, pn, q, labels, pr[:, :k]))
        return out

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
            for j, t in enumerate(self.config.proposal_thresholds):
                props.append(pasted > t)
                prop_scores.append(dec.scores - 1e-3 * j)
            own = dec.part_queries
            if not len(own):
                continue
            weight = dec.scores[own, None, None] * (1 / (1 + np.exp(-np.clip(pasted[own], -30, 30))))
            weight[:, ~obj] = -np.inf
            winner = weight.argmax(0)
            value = weight.max(0)
            better = obj & (value > best)  # overlapping instances: the more confident part wins
            names = self.ranking.names(crop.object_class)
            score = dec.scores[own]
            if dec.label_probs is not None and dec.label_probs.shape[1]:
                # class-specific scores (part-ness x label probability); one part per label
                cs = dec.scores[own, None] * dec.label_probs[own]
                ranks, score = cs.argmax(1), cs.max(1)
                group_ids, group_of = np.unique(ranks, return_inverse=True)
                group_rank = group_ids
            else:
                ranks = self.ranking.assign(crop.object_class, dec.queries[own])
                group_of, group_rank = np.arange(len(own)), ranks
            first = len(p_inst)
            for g, r in enumerate(group_rank):
                p_inst.append(crop.instance_index)
                p_score.append(float(score[group_of == g].max()))
                p_name.append(names[r] if r >= 0 and r < len(names) else "")
            parts[better] = first + group_of[winner[better]]
            name_idx = np.array([vocab_index.get(n, -1) for n in p_name[first:]], np.int32)
            classes[better] = name_idx[group_of[winner[better]]]
            best[better] = value[better]
        present = np.unique(parts[parts >= 0])
        if len(present):
            props.insert(0, parts[None] == present[:, None, None])
            prop_scores.insert(0, 1.0 + np.asarray(p_score, np.float32)[present])
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
            "teacher_id": self.teacher_id, "head": self.head.state() if self.head is not None else None})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "PartDistillation":
        """Read a model written by :meth:`save`; a bad file is one :class:`InputError` line."""
        def build(blob: dict) -> "PartDistillation":
            decoder = PartDecoder(DecoderConfig(**blob["decoder_config"]))
            decoder.load_state_dict(blob["state_dict"])
            head = ClusterHead.from_state(blob["head"]).to(device) if blob.get("head") else None
            return cls(decoder.to(device), PartRanking.from_dict(blob["ranking"]),
                       PartDistillationConfig.from_dict(blob["config"]), str(blob.get("teacher_id", "")), head)

        return load_checkpoint(path, FORMAT, "PartDistillation model", build, device)
