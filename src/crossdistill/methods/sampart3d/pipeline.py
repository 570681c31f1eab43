"""SAMPart3D stages 2 and 3 for one object: masks -> grouping field -> parts at every scale.

``segment_shape`` is the library entry point behind ``crossdistill segment``::

    shape --normalise--> unit box --sample N points--> render V views (+ correspondence)
          --mask teacher--> per view, overlapping 2D masks at every granularity
          --every mask its own scale sigma (Eq. 3); a pixel in every mask containing it-->
          train the scale-conditioned grouping field --at each scale: features -->
          HDBSCAN --> point labels --per-face vote--> face labels (meshes)
                                   --nearest sample--> input point labels (point clouds)

Steps beyond the paper (joining close clusters, keeping parts inside mesh pieces, smooth
regions of point clouds, ...) are named rules (:mod:`.rules`), on per mask teacher.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from crossdistill.errors import InputError
from crossdistill.geometry.normalize import normalize_shape
from crossdistill.geometry.sampling import estimate_normals, farthest_point_sampling, sample_surface
from crossdistill.geometry.topology import face_components, region_growing
from crossdistill.labels import relabel_by_size
from crossdistill.methods.sampart3d.cluster import ClusterConfig, cluster_points
from crossdistill.methods.sampart3d.default_scale import default_scale_of
from crossdistill.methods.sampart3d.part_votes import merge_parts_by_mask_votes
from crossdistill.methods.sampart3d.rules import PAPER_RULES, SILHOUETTE_SHARE, PartRules, rules_for_teacher
from crossdistill.methods.sampart3d.supervision import MaskSupervision, build_supervision
from crossdistill.methods.sampart3d.support import MaskPointSets
from crossdistill.methods.sampart3d.train import GroupingTrainConfig, TrainedField, piece_codes, train_grouping_field
from crossdistill.methods.sampart3d.vote import (face_mean_features, majority_per_group, piece_parts,
                                                 split_at_pieces, vote_faces)
from crossdistill.render import render_shape
from crossdistill.render.cameras import sampart3d_rig
from crossdistill.teachers.geometric_parts import OfflineTeacher, shape_kind_of
from crossdistill.types import RenderResult, Shape, UnitBoxTransform

PAPER_SCALES: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)

#: the weight-free default mask teacher, per shape: the geometric part teacher on closed single
#: surfaces (chosen on psb_dev categories A, reported on B: docs/results/segment_single_surface.md;
#: no PartNet-Mobility mesh is one: segment_single_surface_partnet.md), render cues elsewhere
DEFAULT_OFFLINE_TEACHER = OfflineTeacher(single_surface="geometric", multi_piece="render", point_cloud="render")


@dataclass(frozen=True)
class SupervisionConfig:
    """How the teacher's masks become supervision (:func:`.supervision.build_supervision`).

    Attributes:
        min_pixels: masks covering fewer supervised pixels are dropped.
        max_scale: masks with sigma (Eq. 3) at least this are dropped (the released code: 2.0);
            None keeps every mask.
        erode: denoise masks with the released code's 3x3 erosion.
    """

    min_pixels: int = 16
    max_scale: float | None = None
    erode: bool = False


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of :func:`segment_shape`: the method's (paper values in brackets) and the rules beyond it.

    Two presets (:func:`preset`): ``paper`` (SAMPart3D's settings and nothing beyond them,
    meant for a GPU) and ``fast`` (the CPU budget; the default).

    Attributes:
        n_points: surface points [15000].
        n_views: rendered views, 6 axis + the rest random [36].
        image_size: render resolution (square) [512].
        scales: scales to cluster at [0.0, 0.5, 1.0, 1.5, 2.0].
        scale_unit: "sigma": the paper's mask scale (Eq. 3, in the unit box); "relative":
            0..2 spans the object's own mask scales, finest to coarsest (q = scale / 2 in
            the quantile space of its masks).
        seed: seeds sampling, cameras, training and clustering.
        device: torch device of the grouping field.
        train: grouping-field training settings.
        cluster: clustering settings.
        supervision: how masks become supervision.
        rules: stage-3 rules beyond the paper (:mod:`.rules`); None: the defaults of the mask
            teacher in use (:func:`.rules.rules_for_teacher`).
        merge_pieces: let parts span connected pieces at every scale whatever the rules say
            (``--merge-pieces``).
    """

    n_points: int = 15000
    n_views: int = 36
    image_size: int = 384
    scales: tuple[float, ...] = PAPER_SCALES
    scale_unit: str = "relative"
    seed: int = 0
    device: str = "cpu"
    train: GroupingTrainConfig = field(default_factory=GroupingTrainConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    rules: PartRules | None = None
    merge_pieces: bool = False

    def rules_for(self, teacher, shape_kind: str = "pieces") -> PartRules:
        """The rules that apply with this mask teacher on a shape of ``shape_kind``
        (:data:`.rules.SHAPE_KINDS`)."""
        rules = self.rules if self.rules is not None else rules_for_teacher(teacher, shape_kind)
        return rules.merged_pieces() if self.merge_pieces else rules


def preset(name: str, **overrides) -> SegmentConfig:
    """A named preset of :class:`SegmentConfig`, with keyword overrides of its fields.

    * ``fast``: the CPU budget (400 steps of 16 images x 128 pixels, width 128, output 32,
      384 px renders, HDBSCAN on a 3000-point subsample, relative scales), rules by teacher.
    * ``paper``: SAMPart3D's settings: 15k points, 36 views of 512 px, 5000 steps of 90 images x
      256 pixels with the released pair sampling, width and output 384, lr 1e-4, masks of
      sigma >= 2 dropped and eroded as the released code does, sigma scales 0..2, HDBSCAN on
      every point (min cluster 30, min samples 30, epsilon 0.1), no rule beyond the paper.
    """
    if name == "fast":
        return replace(SegmentConfig(), **overrides)
    if name == "paper":
        cfg = SegmentConfig(
            n_points=15000, n_views=36, image_size=512, scales=PAPER_SCALES, scale_unit="sigma",
            train=GroupingTrainConfig(iterations=5000, images_per_iter=90, pixels_per_image=256, lr=1e-4,
                                      width=384, out_dim=384, pair_sampling="released"),
            cluster=ClusterConfig(max_points=15000, min_cluster_size=30 / 15000, min_samples=30, epsilon=0.1),
            supervision=SupervisionConfig(min_pixels=16, max_scale=2.0, erode=True),
            rules=PAPER_RULES,
        )
        return replace(cfg, **overrides)
    raise ValueError(f"unknown preset {name!r} (paper or fast)")


PRESETS: tuple[str, ...] = ("fast", "paper")


@dataclass
class Segmentation:
    """Parts of one object at every requested scale.

    Attributes:
        scales: the S scales, ascending (fine to coarse).
        point_labels: (S, N) int32 part of every sampled point.
        face_labels: (S, F) int32 part of every face in the input's face order, or None for point clouds.
        input_point_labels: (S, N_in) int32 part of every input point (point clouds), or None.
        render: buffers, samples and correspondence used.
        transform: unit-box transform of the input (outputs go back to input units with it).
        field: the trained grouping field.
        masks: the 2D mask sets of every view (one per view), as the teacher gave them.
        supervision: the masks as the field's supervision (pixels, per-pixel masks, sigma).
        timings: seconds per stage.
        meta: settings and provenance (teacher id, offline or not, seed).
    """

    scales: tuple[float, ...]
    point_labels: np.ndarray
    face_labels: np.ndarray | None
    input_point_labels: np.ndarray | None
    render: RenderResult
    transform: UnitBoxTransform
    field: TrainedField
    masks: list
    supervision: MaskSupervision
    timings: dict[str, float]
    meta: dict

    @property
    def default_scale(self) -> float:
        """The scale to show first (:mod:`crossdistill.methods.sampart3d.default_scale`)."""
        return float(self.meta.get("default_scale", self.scales[len(self.scales) // 2]))

    def labels(self, scale_index: int) -> np.ndarray:
        """Labels of the input elements (faces for meshes, points for point clouds) at one scale."""
        src = self.face_labels if self.face_labels is not None else self.input_point_labels
        return src[scale_index]


class _Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self._t
        self._t = now


def segment_shape(shape: Shape, config: SegmentConfig = SegmentConfig(), mask_teacher=None,
                  backbone: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
                  progress: bool = True) -> Segmentation:
    """Segment one mesh or point cloud into parts at every scale of ``config.scales``.

    Args:
        shape: a loaded, validated shape (any units).
        config: settings.
        mask_teacher: a MaskTeacher; default: the offline :class:`RenderMaskTeacher`
            (mesh pieces as a cue for meshes).
        backbone: optional pretrained point backbone (stage 1): a callable mapping
            (points (N,3) unit box, normals (N,3), colours (N,3) uint8) to (N, C) features.
        progress: show progress bars.
    """
    timer = _Timer()
    torch.manual_seed(config.seed)
    unit, transform = normalize_shape(shape)
    samples = sample_surface(unit, config.n_points, seed=config.seed)
    components = face_components(unit.vertices, unit.faces) if unit.is_mesh else None
    timer.lap("sample")
    cams = sampart3d_rig(config.n_views, config.image_size, seed=config.seed)
    rendered = render_shape(unit, cams, samples, progress=progress)
    timer.lap("render")
    if mask_teacher is None:
        mask_teacher = DEFAULT_OFFLINE_TEACHER
    kind = shape_kind_of(unit, components)
    teacher = mask_teacher.for_shape(unit, components, kind) if hasattr(mask_teacher, "for_shape") else mask_teacher
    rules = config.rules_for(teacher, kind)
    mask_sets = teacher.masks(rendered.views)
    timer.lap("masks")
    sc = config.supervision
    sup = build_supervision(mask_sets, rendered.correspondence, samples.points, min_pixels=sc.min_pixels,
                            max_scale=sc.max_scale, erode=sc.erode)
    if not sup.views:
        tid = getattr(teacher, "teacher_id", type(teacher).__name__)
        raise InputError(f"the 2D mask teacher {tid} gave no usable mask on any of the {len(cams)} views of this "
                         "object: nothing to learn from (try --mask-teacher offline)")
    feats_bb = backbone(samples.points, samples.normals, samples.colors) if backbone is not None else None
    codes = piece_codes(components[samples.face_id], seed=config.seed) if rules.piece_codes and unit.is_mesh else None
    train_cfg = config.train
    if rules.push_floor:
        train_cfg = replace(train_cfg, push_floor=True)
    if rules.group_balance > 0:
        train_cfg = replace(train_cfg, group_balance=rules.group_balance)
    trained = train_grouping_field(sup, samples.points, samples.normals, samples.colors, train_cfg,
                                   backbone_feat=feats_bb, piece_code=codes, seed=config.seed,
                                   device=config.device, progress=progress)
    timer.lap("train")
    scales = tuple(sorted(float(s) for s in config.scales))
    point_labels, face_labels, input_labels = parts_from_field(trained, sup, unit, samples, components, scales,
                                                               config, rules, timer)
    timer.lap("vote")
    default = default_scale_of(scales, face_labels if face_labels is not None else input_labels, kind,
                               getattr(teacher, "mask_kind", "sam-like"), shape=unit)
    meta = {
        "method": "SAMPart3D (stages 2-3)",
        "mask_teacher": getattr(teacher, "teacher_id", type(teacher).__name__),
        "mask_teacher_offline": bool(getattr(teacher, "is_offline_default", False)),
        "mask_kind": getattr(teacher, "mask_kind", "sam-like"),
        "shape_kind": kind,
        "backbone": "none (Fourier positional encoding)" if backbone is None else getattr(backbone, "name", "given"),
        "seed": config.seed,
        "n_points": len(samples),
        "n_views": len(cams),
        "image_size": config.image_size,
        "n_masks": sup.n_masks,
        "scale_unit": config.scale_unit,
        "margin": config.train.margin,
        "pair_sampling": config.train.pair_sampling,
        "push_floor": train_cfg.push_floor,
        "group_balance": train_cfg.group_balance,
        "rules": rules.names,
        "keep_in_pieces": [rules.keep_in_pieces(s) for s in scales] if unit.is_mesh else None,
        "join_margins": [rules.join_at(s, unit.is_mesh) for s in scales],
        "final_loss": float(trained.losses[-10:].mean()) if len(trained.losses) else float("nan"),
        "default_scale": default,
    }
    return Segmentation(scales, point_labels, face_labels, input_labels, rendered, transform, trained,
                        list(mask_sets), sup, timer.times, meta)


def parts_from_field(trained: TrainedField, sup: MaskSupervision, unit: Shape, samples, components: np.ndarray | None,
                     scales: tuple[float, ...], config: SegmentConfig, rules: PartRules, timer: _Timer | None = None,
                     subsample: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Stage 3: the trained field's features at every scale -> clusters -> parts of the input's elements.

    Args:
        trained: the grouping field; sup: its supervision (evidence of the piece rule).
        unit: the shape in the unit box; samples: its N sampled points; components: (F,) mesh
            pieces (None for point clouds).
        scales: the S query scales; config: clustering and scale settings; rules: stage-3 rules.
        subsample: the clustered points' indices, when a caller keeps them across calls (default:
            the farthest-point subset of ``config.cluster.max_points``, the same for a given seed).

    Returns:
        point labels (S, N), face labels (S, F) or None, input point labels (S, M) or None.
    """
    sub = subsample if subsample is not None else farthest_point_sampling(
        samples.points, min(config.cluster.max_points, len(samples)), seed=config.seed)
    cluster = config.cluster if rules.hdbscan_epsilon is None else replace(config.cluster, epsilon=rules.hdbscan_epsilon)
    by_feature = unit.is_mesh and rules.pieces and rules.fragment_fold == "similar"
    feats = [trained.features(s, config.scale_unit) for s in scales] if by_feature else None
    point_labels = np.stack([
        cluster_points(feats[i] if feats is not None else trained.features(s, config.scale_unit), samples.points,
                       cluster, subsample=sub, margin=config.train.margin, join=rules.join_at(s, unit.is_mesh))
        for i, s in enumerate(scales)
    ]).astype(np.int32)
    if timer is not None:
        timer.lap("cluster")
    face_labels = input_labels = None
    needs_evidence = ((unit.is_mesh and rules.pieces and rules.fragment_support is not None)
                      or rules.part_vote is not None)
    evidence = MaskPointSets.from_supervision(sup, len(samples)) if needs_evidence else None
    vote_sup = evidence.to_supervision() if rules.part_vote is not None else None
    if unit.is_mesh:
        centroids = unit.triangles.mean(axis=1)
        areas = unit.face_areas
        face_labels = np.stack([mesh_face_labels(pl, samples.face_id, centroids, components, areas, rules, s, evidence,
                                                 feats[i] if feats is not None else None)
                                for i, (s, pl) in enumerate(zip(scales, point_labels))])
        if vote_sup is not None:
            face_labels = np.stack([_vote_merged(fl, fl[samples.face_id], trained, vote_sup, s, config, rules, areas)
                                    for s, fl in zip(scales, face_labels)])
        point_labels = face_labels[:, samples.face_id]  # the points carry their face's part
    else:
        input_labels = point_cloud_labels(point_labels, samples.points, unit, rules.point_region_deg)
        if vote_sup is not None:
            input_labels = np.stack([_vote_merged(il, il[samples.source_index], trained, vote_sup, s, config, rules)
                                     for s, il in zip(scales, input_labels)])
        point_labels = input_labels[:, samples.source_index]  # the samples carry their input point's part
    return point_labels, face_labels, input_labels


def _vote_merged(labels: np.ndarray, point_part: np.ndarray, trained: TrainedField, vote_sup: MaskSupervision,
                 scale: float, config: SegmentConfig, rules: PartRules,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """(E,) int32 ``labels`` of the input's elements with the parts the masks group at ``scale`` merged
    (the ``part_vote`` rule, :mod:`.part_votes`); ``point_part``: (N,) the sampled points' parts;
    ``vote_sup``: the masks as point sets (:meth:`.support.MaskPointSets.to_supervision`)."""
    merged = merge_parts_by_mask_votes(point_part, vote_sup, trained.raw_scale(scale, config.scale_unit),
                                       float(rules.part_vote), rules.part_vote_min_points, rules.part_vote_min_views,
                                       n_parts=int(labels.max()) + 1)
    return relabel_by_size(merged[labels], weights=weights).astype(np.int32)


def with_rules(seg: "Segmentation", shape: Shape, config: SegmentConfig, rules: PartRules) -> "Segmentation":
    """The same trained field with other stage-3 rules (no retraining): a new :class:`Segmentation`.

    Args:
        seg: a segmentation of ``shape`` made with ``config``; rules: the rules to apply instead.
    """
    unit, _ = normalize_shape(shape)
    components = face_components(unit.vertices, unit.faces) if unit.is_mesh else None
    pl, fl, il = parts_from_field(seg.field, seg.supervision, unit, seg.render.samples, components, seg.scales,
                                  config, rules)
    default = default_scale_of(seg.scales, fl if fl is not None else il, seg.meta.get("shape_kind", "pieces"),
                               seg.meta.get("mask_kind", "sam-like"), shape=unit)
    meta = dict(seg.meta, rules=rules.names, default_scale=default)
    return replace(seg, point_labels=pl, face_labels=fl, input_point_labels=il, meta=meta)


def mesh_face_labels(point_labels: np.ndarray, point_face: np.ndarray, centroids: np.ndarray,
                     components: np.ndarray, areas: np.ndarray, rules: PartRules = PAPER_RULES,
                     scale: float = 0.0, evidence: MaskPointSets | None = None,
                     point_features: np.ndarray | None = None) -> np.ndarray:
    """Stage 3's last step on a mesh at one scale: per-face vote, then the piece rules that are on.

    Args:
        point_labels: (N,) part of every sampled point; point_face: (N,) its face;
        centroids: (F, 3) face centroids; components: (F,) piece id; areas: (F,) face areas.
        rules: the stage-3 rules (:mod:`.rules`); scale: the query scale (the piece rule
            applies below ``rules.pieces_until``).
        evidence: the 2D masks as 3D point sets; with ``rules.fragment_support`` set, the
            parts they confirm are not folded inside a dominant piece (None: no evidence).
        point_features: (N, D) grouping features of the sampled points at ``scale``; needed
            by ``rules.fragment_fold == "similar"`` (without them fragments fold into the majority).

    Returns:
        (F,) int32 part per face, in the input's face order.
    """
    spill_groups = components if rules.face_spill > 0 else None
    labels = vote_faces(point_labels, point_face, len(centroids), centroids, spill_groups, areas, rules.face_spill)
    if rules.keep_in_pieces(scale):
        protected = None
        if evidence is not None and rules.fragment_support is not None:
            part = piece_parts(labels, components)
            support = evidence.support(part[point_face], int(part.max()) + 1,
                                       max_view_share=None if rules.silhouette_support else SILHOUETTE_SHARE)
            protected = support[part] >= rules.fragment_support
        face_feat = None
        if rules.fragment_fold == "similar" and point_features is not None:
            face_feat = face_mean_features(point_features, point_face, len(centroids))
        labels = split_at_pieces(labels, components, areas, rules.piece_fragment, rules.dominant_piece,
                                 rules.dominant_fragment, protected, face_feat,
                                 protect_everywhere=rules.support_everywhere)
    return labels


def point_cloud_labels(point_labels: np.ndarray, sample_points: np.ndarray, cloud: Shape,
                       region_deg: float | None) -> np.ndarray:
    """Stage 3's last step on a point cloud: sampled labels to every input point, then
    (unless ``region_deg`` is None) one part per smooth normal region.

    Args:
        point_labels: (S, N) part of every sampled point at each scale; sample_points: (N, 3).
        cloud: the (unit-box) point cloud, M points; its normals, or normals estimated from
            16 neighbours where it has none.
        region_deg: largest normal angle inside a region (degrees), None for no regions.

    Returns:
        (S, M) int32 part of every input point, 0..K-1 by decreasing size at each scale.
    """
    labels = np.stack([propagate_to_inputs(pl, sample_points, cloud.vertices) for pl in point_labels])
    if region_deg is None or len(labels) == 0:
        return labels
    normals = cloud.vertex_normals if cloud.vertex_normals is not None else estimate_normals(cloud.vertices, k=16)
    regions = region_growing(np.asarray(cloud.vertices), np.asarray(normals), region_deg)
    n_regions = int(regions.max()) + 1
    out = []
    for lab in labels:
        winner, _ = majority_per_group(regions, lab, n_regions)
        out.append(relabel_by_size(winner[regions]))
    return np.stack(out).astype(np.int32)


def propagate_to_inputs(point_labels: np.ndarray, sample_points: np.ndarray, input_points: np.ndarray) -> np.ndarray:
    """Label every input point with the label of its nearest sampled point.

    Args:
        point_labels: (N,) labels of the sampled points; sample_points: (N, 3); input_points: (M, 3).

    Returns:
        (M,) int32 labels.
    """
    from scipy.spatial import cKDTree

    _, nn = cKDTree(sample_points).query(input_points, k=1, workers=-1)
    return point_labels[nn].astype(np.int32)


def part_hierarchy(labels_by_scale: Sequence[np.ndarray], weights: np.ndarray | None = None) -> list[dict]:
    """Which part at each scale lies in which part at the next coarser scale.

    Args:
        labels_by_scale: S arrays (M,) of labels, fine to coarse.
        weights: (M,) element weights (face areas), default equal.

    Returns:
        one dict per adjacent pair of scales: {"fine_scale_index", "parent": {fine_label: coarse_label},
        "containment": {fine_label: share of the fine part inside its parent}}.
    """
    from crossdistill.methods.sampart3d.vote import majority_per_group

    out = []
    for i in range(len(labels_by_scale) - 1):
        fine, coarse = labels_by_scale[i], labels_by_scale[i + 1]
        n_fine = int(fine.max()) + 1 if len(fine) else 0
        parent, share = majority_per_group(fine, coarse, n_fine, weights)
        out.append({
            "fine_scale_index": i,
            "parent": {int(k): int(parent[k]) for k in range(n_fine) if parent[k] >= 0},
            "containment": {int(k): round(float(share[k]), 4) for k in range(n_fine) if parent[k] >= 0},
        })
    return out
