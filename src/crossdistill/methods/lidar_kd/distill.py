"""UDAKD and FSKD: training a LiDAR student from a 2D teacher through point-pixel pairs.

Kang, Wang and Luo (Domain Adaptation-Based Crossmodal Knowledge Distillation for 3D
Semantic Segmentation, ICRA 2025) distil a pretrained image segmenter into a LiDAR
network with no 3D label, using the calibrated correspondence between points and pixels:

* **UDAKD** aligns features: for a batch of seen points, the student's feature of point
  i (after the domain-adaptation module and the projection) must be closer to the
  teacher's feature at point i's pixel than to the teacher's features of the other points
  (InfoNCE, temperature ``tau``, both L2-normalised). Read out with the teacher's own
  classifier, the aligned features give zero-shot 3D segmentation.
* **FSKD** distils features and semantics: a cosine feature loss plus the KL divergence
  between the teacher's soft labels and the student's, both produced by the same (shared,
  frozen) classifier, at temperature ``T`` (scaled by T^2, Hinton et al.).

:func:`train_student` trains a :class:`LidarStudent` by streaming frames from a source and
their targets from the cache (:mod:`.loader`: batches of several augmented scans, DataLoader
workers); :func:`distill_lidar` does the same for frames and targets already in memory;
:func:`predict_points` labels any scan. Training runs through the shared loop
(:func:`crossdistill.engine.training.fit`: device, checkpoint / resume with ``run_dir``, DDP
under torchrun, where each rank reads its share of every batch of scans); this module gives
it the student, the optimiser and the loss of one batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.errors import InputError
from crossdistill.methods.lidar_kd.frames import LidarFrame
from crossdistill.methods.lidar_kd.loader import Augment, DistillFrames, LoaderBatches
from crossdistill.methods.lidar_kd.student import LidarStudent, StudentConfig, prepare_scan
from crossdistill.methods.lidar_kd.targets import PointTargets

__all__ = ["DistillConfig", "context_region", "info_nce", "soft_label_kl", "distill_lidar", "train_student",
           "predict_points", "save_student", "load_student", "FORMAT", "MODES"]

FORMAT = "crossdistill.lidar_student/1"
MODES = ("udakd", "fskd")


@dataclass(frozen=True)
class DistillConfig:
    """Training.

    Attributes:
        mode: "udakd" (InfoNCE feature alignment) or "fskd" (cosine features + soft-label KL).
        student: architecture.
        iterations: optimiser steps (one batch of ``batch_size`` scans per step; epochs repeat).
        pairs: seen points drawn per step over the batch (the InfoNCE batch; its other points are the negatives).
        balanced: draw them with weight 1 / (count of the teacher's class) instead of uniformly, so
            rare classes (a car is a few hundred of 20,000 seen points) are in every batch, and the
            InfoNCE negatives are not nearly all background points of near-identical teacher features.
        lr: AdamW learning rate (cosine decay).
        tau: InfoNCE temperature.
        temperature: KL temperature T.
        feature_weight, semantic_weight: FSKD's two terms.
        max_range: metres; farther points are dropped before voxelising.
        context: metres; training scans keep only the points within about this distance
            (horizontally) of a point some camera sees, the region the loss is on plus its
            context (KITTI's front camera sees a sixth of the scan). Prediction uses every point.
        seed: initialisation, frame order, augmentation and draws.
        batch_size: scans per step, packed into one voxel batch.
        workers: DataLoader worker processes reading frames (0: in the training process).
        augment: the training augmentation (:class:`~crossdistill.methods.lidar_kd.loader.Augment`); None for none.
    """

    mode: str = "udakd"
    student: StudentConfig = field(default_factory=StudentConfig)
    iterations: int = 300
    pairs: int = 2048
    balanced: bool = True
    lr: float = 2e-3
    tau: float = 0.07
    temperature: float = 2.0
    feature_weight: float = 1.0
    semantic_weight: float = 1.0
    max_range: float = 50.0
    context: float = 4.0
    seed: int = 0
    batch_size: int = 1
    workers: int = 0
    augment: Augment | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.batch_size < 1 or self.workers < 0:
            raise InputError(f"need batch_size >= 1 and workers >= 0, got {self.batch_size}, {self.workers}")

    def to_dict(self) -> dict:
        return {**asdict(self), "student": self.student.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "DistillConfig":
        d = dict(d)
        s = d.pop("student")
        aug = d.pop("augment", None)
        student = StudentConfig(float(s["voxel_size"]), tuple(s["widths"]), bool(s["use_da"]), int(s["in_channels"]),
                                **({"backend": s["backend"]} if "backend" in s else {}))
        augment = None if aug is None else Augment(float(aug["rotate"]), float(aug["flip"]), tuple(aug["scale"]),
                                                   float(aug["jitter"]))
        return cls(student=student, augment=augment, **d)


def info_nce(student: torch.Tensor, teacher: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """InfoNCE of paired rows: (P, C) student and teacher features, row i's positive is row i.

    Example:
        >>> f = torch.eye(4)
        >>> bool(info_nce(f, f) < info_nce(f, f.roll(1, 0)))
        True
    """
    s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    logits = s @ t.T / tau
    return F.cross_entropy(logits, torch.arange(len(s), device=s.device))


def soft_label_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over rows.

    Example:
        >>> z = torch.randn(5, 3)
        >>> float(soft_label_kl(z, z)) < 1e-6
        True
    """
    T = temperature
    return F.kl_div(F.log_softmax(student_logits / T, 1), F.log_softmax(teacher_logits / T, 1),
                    log_target=True, reduction="batchmean") * T * T


def context_region(points: np.ndarray, seen: np.ndarray, context: float) -> np.ndarray:
    """(N,) bool points whose ``context``-metre ground cell (x, y), or a neighbouring one, holds a seen point."""
    if not seen.any():
        return np.zeros(len(points), bool)
    cell = np.floor(points[:, :2] / context).astype(np.int64)
    lo = cell.min(0) - 1
    cell -= lo
    shape = cell.max(0) + 2
    occupied = np.zeros(shape, bool)
    occupied[cell[seen, 0], cell[seen, 1]] = True
    from scipy import ndimage

    occupied = ndimage.binary_dilation(occupied, np.ones((3, 3), bool))
    return occupied[cell[:, 0], cell[:, 1]]


def _loss(config: DistillConfig, f3: torch.Tensor, z3: torch.Tensor, f2: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    if config.mode == "udakd":
        return info_nce(f3, f2, config.tau)
    cos = 1 - F.cosine_similarity(f3, f2, dim=1).mean()
    return config.feature_weight * cos + config.semantic_weight * soft_label_kl(z3, z2, config.temperature)


class _MemorySource:
    """Frames already in memory, as a frame source."""

    name = "memory"

    def __init__(self, frames: Sequence[LidarFrame]) -> None:
        self._frames = {f.name: f for f in frames}
        self.ids = list(self._frames)

    def load(self, frame_id: str) -> LidarFrame:
        return self._frames[frame_id]


class _MemoryTargets:
    """Targets already in memory, read as the cache reads them."""

    def __init__(self, frames: Sequence[LidarFrame], targets: Sequence[PointTargets]) -> None:
        from crossdistill.methods.lidar_kd.cache import CachedTargets

        self._t = {}
        for f, t in zip(frames, targets):
            idx = np.nonzero(t.seen)[0]
            self._t[f.name] = CachedTargets(len(t.seen), idx, t.features[idx], t.logits[idx],
                                            float(np.linalg.norm(t.features[idx], axis=1).sum()))

    def get(self, source_name: str, frame_id: str):
        return self._t[frame_id]

    def seen_count(self, source_name: str, frame_id: str) -> int:
        return len(self._t[frame_id].index)

    def mean_feature_norm(self, source_name: str, ids: Sequence[str]) -> float:
        return sum(self._t[i].norm_sum for i in ids) / max(sum(len(self._t[i].index) for i in ids), 1)


def distill_lidar(frames: Sequence[LidarFrame], targets: Sequence[PointTargets], classifier: tuple[np.ndarray, np.ndarray],
                  config: DistillConfig = DistillConfig(), device: str = "cpu", progress: bool = True
                  ) -> tuple[LidarStudent, list[float]]:
    """Train a student on frames and their targets held in memory; returns (student, loss per step)."""
    if not frames or len(frames) != len(targets):
        raise InputError("distillation needs frames with one target set each")
    return train_student(_MemorySource(frames), _MemoryTargets(frames, targets), [f.name for f in frames], classifier,
                         config, device, progress)


def _usable(source, targets, ids: Sequence[str]) -> list[str]:
    return [i for i in ids if targets.seen_count(source.name, i)]


def train_student(source, targets, ids: Sequence[str], classifier: tuple[np.ndarray, np.ndarray],
                  config: DistillConfig = DistillConfig(), device: str = "cpu", progress: bool = True,
                  run_dir: str | Path | None = None) -> tuple[LidarStudent, list[float]]:
    """Train a student on the frames ``ids`` of ``source`` with their targets (a TargetCache), streamed.

    Frames no camera sees (no target) are left out. With ``run_dir`` the engine checkpoints
    there and a run started again resumes. Returns (student, loss per step).
    """
    from crossdistill.engine.training import TrainConfig, fit

    ids = _usable(source, targets, ids)
    if not ids:
        raise InputError("no point of any frame is seen by a camera: nothing to distil")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    dataset = DistillFrames(source, targets, ids, config.max_range, config.context, config.augment, config.seed)
    data = LoaderBatches(dataset, config.student, config.batch_size, config.workers, config.seed)
    student = LidarStudent(config.student, *classifier)
    if config.mode == "udakd":
        student.readout_norm.fill_(float(targets.mean_feature_norm(source.name, ids)))
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(config.iterations, 1), eta_min=0.1 * config.lr)

    def step(model, batch, _step):
        batch = batch.to(device)
        seen = batch.seen
        if not config.balanced or len(seen) <= config.pairs:
            pick = torch.randperm(len(seen), generator=gen)[: config.pairs].to(device)
        else:
            cls = batch.z2.argmax(1).cpu()
            weight = 1.0 / torch.bincount(cls).double()[cls]
            pick = torch.multinomial(weight, config.pairs, replacement=False, generator=gen).to(device)
        f3, z3 = model(batch.scan)
        return _loss(config, f3[seen[pick]], z3[seen[pick]], batch.f2[pick], batch.z2[pick])

    train = TrainConfig(steps=config.iterations, device=device, run_dir=run_dir, progress=progress,
                        desc=f"{config.mode} student", run_key=json.dumps(config.to_dict(), sort_keys=True))
    result = fit(student, opt, step, train, scheduler=sched, data=data, rngs={"pairs": gen})
    student = result.model.eval()
    return student, [float(v) for v in result.losses]


@torch.no_grad()
def predict_points(student: LidarStudent, frame: LidarFrame, device: str = "cpu") -> np.ndarray:
    """(N, K) float32 class probabilities of every point of ``frame`` (all points, any range)."""
    scan = prepare_scan(frame.point_features(), frame.points, student.config, device)
    _, z = student.to(device).eval()(scan)
    return torch.softmax(z, 1).cpu().numpy()


def save_student(path: str | Path, student: LidarStudent, class_names: Sequence[str], config: DistillConfig,
                 teacher_id: str) -> Path:
    return save_checkpoint(path, FORMAT, {"config": config.to_dict(), "class_names": list(class_names),
                                          "teacher_id": teacher_id, "state_dict": student.state_dict()})


def load_student(path: str | Path, device: str = "cpu") -> tuple[LidarStudent, tuple[str, ...], DistillConfig]:
    """(student, class names, config) of a checkpoint written by :func:`save_student`."""
    def build(blob: dict):
        config = DistillConfig.from_dict(blob["config"])
        sd = blob["state_dict"]
        student = LidarStudent(config.student, sd["cls_weight"].numpy(), sd["cls_bias"].numpy())
        student.load_state_dict(sd)
        return student.to(device).eval(), tuple(blob["class_names"]), config

    return load_checkpoint(path, FORMAT, "LiDAR student", build, device)
