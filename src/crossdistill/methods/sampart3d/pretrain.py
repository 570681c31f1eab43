"""SAMPart3D stage 1: a point backbone pretrained by distilling 2D features of many shapes.

SAMPart3D (Yang et al., 2024, Sec. 3.1) renders each training object from several views,
runs DINOv2 on the renders, and trains a 3D backbone so that every point's feature matches
the 2D feature of the pixel it projects to in the views that see it (occlusion decided by a
depth test). No labels are involved, so any collection of shapes serves. Here:

* a shape is normalised to the unit box, N points are sampled on it and V views are
  rendered (6 axis views + random ones, the rig of stage 2) with the depth-tested
  :class:`~crossdistill.types.Correspondence`;
* the feature teacher (DINOv2 from local weights, or the offline render-feature teacher)
  gives (C, H, W) features per view at render resolution; each point's **target** is the
  mean feature of its pixel over the views that see it (:func:`point_targets`); points no
  view sees carry no target and no loss;
* targets are standardised per channel over the training set, and the backbone
  (:class:`~crossdistill.students.point_student.PointStudent` with C outputs: kNN pooling
  blocks over (xyz, normal, colour), a global feature, a per-point head) is fitted with the
  mean squared error on seen points, B shapes per step;
* :class:`PointBackbone` is the result: a callable (points, normals, colours) -> (N, C) that
  ``segment_shape(..., backbone=...)`` and ``crossdistill segment --backbone`` feed to the
  grouping field's F_B branch in place of the positional encoding.

The paper's backbone is a Point Transformer V3 trained on Objaverse on GPUs; this one is a
light CPU network (see ``docs/results/pretrain.md`` for what it costs and what it changes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.errors import InputError
from crossdistill.geometry.normalize import normalize_shape
from crossdistill.geometry.sampling import farthest_point_sampling, sample_surface
from crossdistill.methods.sampart3d.pretrain_cache import ShapeCache
from crossdistill.render import render_shape
from crossdistill.render.cameras import sampart3d_rig
from crossdistill.students.backbones import make_point_net
from crossdistill.students.point_student import PointStudent, knn_graph, point_features
from crossdistill.types import Correspondence, Shape

_FORMAT = "crossdistill-point-backbone-v1"


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of :func:`pretrain_backbone`.

    Attributes:
        n_points: points sampled per training shape.
        n_views: rendered views per shape (6 axis + random).
        image_size: render resolution.
        width, n_blocks, k: backbone channels, pooling blocks and neighbours.
        backbone: the network, by :func:`~crossdistill.students.backbones.make_point_net` name:
            "light" (kNN pooling, default), "ptv3" (PTv3-object, CPU preset), "ptv3-paper"
            (SAMPart3D's PTv3-object); ``width`` and ``n_blocks`` apply to "light" only.
        steps: optimisation steps; batch: shapes per step; lr: AdamW learning rate.
        seed: seeds sampling, cameras, weights and batches.
        device: torch device of the training.
    """

    n_points: int = 4096
    n_views: int = 12
    image_size: int = 224
    width: int = 96
    n_blocks: int = 4
    k: int = 16
    backbone: str = "light"
    steps: int = 400
    batch: int = 4
    lr: float = 2e-3
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class ShapeTargets:
    """One training shape: backbone inputs and per-point distillation targets.

    Attributes:
        name: where the shape came from.
        inputs: (N, 9) float32 xyz (unit box), normal, colour.
        knn: (N, 2k) int64 neighbour indices.
        target: (N, C) float16 (or float32) mean teacher feature of each point over the views that see it.
        seen: (N,) bool, seen by at least one view.
    """

    name: str
    inputs: np.ndarray
    knn: np.ndarray
    target: np.ndarray
    seen: np.ndarray


def point_targets(feature_maps, correspondence: Correspondence) -> tuple[np.ndarray, np.ndarray]:
    """Back-project per-pixel features onto the sampled points.

    Args:
        feature_maps: :class:`~crossdistill.teachers.base.FeatureMaps` of V views.
        correspondence: the views' point <-> pixel correspondence (N points).

    Returns:
        target (N, C) float32: mean over the views that see a point of the feature of the
        pixel it projects to (zeros where unseen); seen (N,) bool.
    """
    V, N = correspondence.point_to_pix.shape
    C = feature_maps.channels
    acc = np.zeros((N, C), dtype=np.float64)
    cnt = np.zeros(N, dtype=np.int64)
    for v in range(V):
        pix = correspondence.point_to_pix[v]
        vis = pix >= 0
        if not vis.any():
            continue
        f = feature_maps.pixel_features(v).reshape(C, -1).numpy()
        acc[vis] += f[:, pix[vis]].T
        cnt[vis] += 1
    seen = cnt > 0
    target = np.zeros((N, C), dtype=np.float32)
    target[seen] = (acc[seen] / cnt[seen, None]).astype(np.float32)
    return target, seen


def prepare_shape(shape: Shape, teacher, config: PretrainConfig, seed: int = 0) -> ShapeTargets:
    """Sample, render and back-project the teacher's features for one shape."""
    unit, _ = normalize_shape(shape)
    samples = sample_surface(unit, config.n_points, seed=seed)
    if len(samples) < config.n_points:
        raise InputError(f"{shape.source}: {len(samples)} points, fewer than the {config.n_points} sampled per shape")
    cams = sampart3d_rig(config.n_views, config.image_size, seed=seed)
    rendered = render_shape(unit, cams, samples, progress=False)
    target, seen = point_targets(teacher.features(rendered.views), rendered.correspondence)
    inputs = point_features(samples.points, samples.normals, samples.colors)
    # float16 targets halve the memory of large collections (DINOv2: C = 384 per point)
    return ShapeTargets(str(shape.source), inputs, knn_graph(samples.points, config.k), target.astype(np.float16),
                        seen)


class PointBackbone:
    """A pretrained point backbone: (points, normals, colours) -> (N, C) features.

    Args:
        net: the trained network (C outputs).
        config: its training settings.
        teacher_id: the feature teacher it was distilled from.
        mean, std: (C,) standardisation of the teacher's features (outputs are in
            standardised units).
        meta: provenance (shapes used, losses).

    Example:
        >>> bb = PointBackbone.load("backbone.pt")                       # doctest: +SKIP
        >>> bb(points, normals, colors).shape                           # doctest: +SKIP
        (15000, 33)
    """

    def __init__(self, net: PointStudent, config: PretrainConfig, teacher_id: str, mean: np.ndarray,
                 std: np.ndarray, meta: dict | None = None) -> None:
        self.net = net.eval()
        self.config = config
        self.teacher_id = teacher_id
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.meta = meta or {}

    @property
    def name(self) -> str:
        return f"point backbone distilled from {self.teacher_id}"

    @property
    def fingerprint(self) -> str:
        """Short hash of the weights (recorded in segment settings, so resume notices a new backbone)."""
        from crossdistill.teachers.cache import hash_array

        return hash_array(*(v.detach().cpu().numpy() for v in self.net.state_dict().values()), digest_size=8)

    @property
    def channels(self) -> int:
        return int(self.net.n_classes)

    def __call__(self, points: np.ndarray, normals: np.ndarray, colors: np.ndarray | None) -> np.ndarray:
        """(N, C) float32 features of N points given in the unit box.

        The network's neighbourhoods are k nearest points, so their size depends on the
        point density. To see shapes at the density it was trained at, a cloud of more than
        ``config.n_points`` points is run on a farthest-point subset of that many, and every
        point takes the inverse-distance mean of its 3 nearest subset points' features.
        """
        pts = np.asarray(points, dtype=np.float32)
        if len(pts) <= self.config.n_points:
            return self._forward(pts, normals, colors)
        sub = farthest_point_sampling(pts, self.config.n_points, seed=0)
        feats = self._forward(pts[sub], np.asarray(normals)[sub], None if colors is None else np.asarray(colors)[sub])
        dist, nn = cKDTree(pts[sub]).query(pts, k=3)
        w = 1.0 / np.maximum(dist, 1e-8)
        w /= w.sum(axis=1, keepdims=True)
        return (feats[nn] * w[..., None].astype(np.float32)).sum(axis=1)

    @torch.no_grad()
    def _forward(self, points: np.ndarray, normals: np.ndarray, colors: np.ndarray | None) -> np.ndarray:
        """(N, C) network outputs for N points (one shape)."""
        device = next(self.net.parameters()).device
        feats = torch.from_numpy(point_features(points, normals, colors))[None].to(device)
        knn = torch.from_numpy(knn_graph(points, self.config.k))[None].to(device)
        return self.net(feats, knn)[0].float().cpu().numpy()

    def save(self, path: str | Path) -> None:
        """Write the backbone atomically (a checkpoint of tensors and plain values)."""
        save_checkpoint(path, _FORMAT, {
            "config": asdict(self.config), "teacher_id": self.teacher_id, "channels": self.channels,
            "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std), "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "PointBackbone":
        """Read a backbone written by :meth:`save`; InputError for a missing or foreign file."""

        def build(doc: dict) -> "PointBackbone":
            config = PretrainConfig(**doc["config"])
            net = make_point_net(config.backbone, int(doc["channels"]), config.width, config.n_blocks).to(device)
            net.load_state_dict(doc["state_dict"])
            return cls(net, config, doc["teacher_id"], doc["mean"].numpy(), doc["std"].numpy(), doc["meta"])

        return load_checkpoint(path, _FORMAT, "point-backbone checkpoint (crossdistill pretrain)", build, device)


@dataclass
class PretrainResult:
    """What :func:`pretrain_backbone` returns: the backbone and its loss curve."""

    backbone: PointBackbone
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def pretrain_backbone(data: Iterable[ShapeTargets] | ShapeCache, teacher_id: str | None = None,
                      config: PretrainConfig = PretrainConfig(), progress: bool = True,
                      run_dir: str | Path | None = None, checkpoint_every: int = 0, accumulate: int = 1,
                      window: int = 2) -> PretrainResult:
    """Fit a :class:`PointBackbone` to the back-projected teacher features of many shapes.

    Training runs through :func:`crossdistill.engine.training.fit`: under ``torchrun`` every
    process is one DDP rank and takes its share of each global batch of ``config.batch``
    shapes; with ``run_dir`` it checkpoints and resumes.

    Args:
        data: prepared shapes (:func:`prepare_shape`, held in memory), all with the same N and C;
            or a :class:`~crossdistill.methods.sampart3d.pretrain_cache.ShapeCache`, streamed
            ``window`` shards at a time (memory independent of the collection's size).
        teacher_id: recorded in the backbone (None: the cache's).
        config: settings (``config.batch`` is the global batch).
        run_dir: checkpoint / scalars folder of the run (None: none).
        checkpoint_every: checkpoint every this many steps (and at the end) when ``run_dir`` is given.
        accumulate: micro-batches of ``config.batch`` shapes per optimizer step.

    Returns:
        the backbone and its (steps,) loss curve: per shape, the MSE over its seen points in
        standardised units; averaged over the shapes of a step.
    """
    from crossdistill.engine.data import SampledBatches
    from crossdistill.engine.training import TrainConfig, fit
    from crossdistill.methods.sampart3d.pretrain_cache import CacheStream, collate_shapes

    if isinstance(data, ShapeCache):
        C, mean, std = data.channels, data.mean, data.std
        teacher_id = teacher_id or data.teacher_id
        names = data.names()
        source = CacheStream(data, min(config.batch, len(data)), seed=config.seed, window=window)
    else:
        shapes = list(data)
        if not shapes:
            raise InputError("no usable training shapes for pretraining")
        C = shapes[0].target.shape[1]
        count = sum(int(s.seen.sum()) for s in shapes)
        if count == 0:
            raise InputError("no view saw any sampled point of the training shapes")
        # per-channel mean / std over every seen point, accumulated shape by shape (no copy of all targets)
        total = sum(s.target[s.seen].astype(np.float64).sum(0) for s in shapes)
        total_sq = sum((s.target[s.seen].astype(np.float64) ** 2).sum(0) for s in shapes)
        mean = (total / count).astype(np.float32)
        std = np.maximum(np.sqrt(np.maximum(total_sq / count - (total / count) ** 2, 0.0)), 1e-4).astype(np.float32)
        names = [s.name for s in shapes]
        source = SampledBatches(shapes, min(config.batch, len(shapes)), seed=config.seed, collate=lambda rows: (
            collate_shapes([(s.inputs, s.knn, s.target, s.seen) for s in rows], mean, std)))
    torch.manual_seed(config.seed)
    dev = torch.device(config.device)
    net = make_point_net(config.backbone, C, config.width, config.n_blocks).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    warm = max(1, config.steps // 10)  # linear warm-up over 10% of the steps, then cosine decay
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1.0 + np.cos(np.pi * min(t, config.steps) / config.steps)))

    def step(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], _step: int) -> torch.Tensor:
        """Mean over the batch's shapes of the squared error on each shape's seen points."""
        where = next(model.parameters()).device
        inputs, knn, target, seen = (t.to(where) for t in batch)
        per_point = ((model(inputs, knn) - target) ** 2).mean(-1)
        per_shape = (per_point * seen).sum(1) / seen.sum(1).clamp(min=1)
        return per_shape.mean()

    key = json.dumps({**{k: v for k, v in asdict(config).items() if k != "device"}, "teacher": teacher_id,
                      "shapes": len(names), "accumulate": accumulate, "window": window}, sort_keys=True)
    result = fit(net, opt, step, TrainConfig(steps=config.steps, accumulate=accumulate, device=config.device,
                                             run_dir=run_dir, checkpoint_every=checkpoint_every, run_key=key,
                                             progress=progress, desc="pretrain backbone"),
                 scheduler=sched, data=source)
    losses = result.losses
    meta = {"shapes": names, "final_loss": float(np.nanmean(losses[-20:])) if len(losses) else None,
            "world_size": result.world.size}
    return PretrainResult(PointBackbone(result.model.cpu(), config, teacher_id, mean, std, meta), losses)
