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

:func:`distill_lidar` trains a :class:`LidarStudent` on frames with their
:class:`PointTargets`; :func:`predict_points` labels any scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.errors import InputError
from crossdistill.methods.lidar_kd.frames import LidarFrame
from crossdistill.methods.lidar_kd.student import LidarStudent, StudentConfig, prepare_scan
from crossdistill.methods.lidar_kd.targets import PointTargets

__all__ = ["DistillConfig", "context_region", "info_nce", "soft_label_kl", "distill_lidar", "predict_points", "save_student",
           "load_student", "FORMAT", "MODES"]

FORMAT = "crossdistill.lidar_student/1"
MODES = ("udakd", "fskd")


@dataclass(frozen=True)
class DistillConfig:
    """Training.

    Attributes:
        mode: "udakd" (InfoNCE feature alignment) or "fskd" (cosine features + soft-label KL).
        student: architecture.
        iterations: optimiser steps (one scan per step, cycling).
        pairs: seen points drawn per step (the InfoNCE batch; its other points are the negatives).
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
        seed: initialisation and draws.
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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "student": self.student.to_dict()}


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


def distill_lidar(frames: Sequence[LidarFrame], targets: Sequence[PointTargets], classifier: tuple[np.ndarray, np.ndarray],
                  config: DistillConfig = DistillConfig(), device: str = "cpu", progress: bool = True
                  ) -> tuple[LidarStudent, list[float]]:
    """Train a student on frames and their targets; returns (student, loss per step)."""
    if not frames or len(frames) != len(targets):
        raise InputError("distillation needs frames with one target set each")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    scans = []
    for frame, tgt in zip(frames, targets):
        keep = (np.hypot(frame.points[:, 0], frame.points[:, 1]) <= config.max_range) & \
            context_region(frame.points, tgt.seen, config.context)
        seen = np.nonzero(tgt.seen[keep])[0]
        if not len(seen):
            continue
        kept = np.nonzero(keep)[0]
        scan = prepare_scan(frame.point_features()[kept], frame.points[kept], config.student, device)
        weight = None
        if config.balanced:
            cls = tgt.logits[kept][seen].argmax(1)
            weight = torch.as_tensor(1.0 / np.bincount(cls)[cls], dtype=torch.float64)
        scans.append((scan, torch.as_tensor(seen, device=device),
                      torch.as_tensor(tgt.features[kept][seen], device=device),
                      torch.as_tensor(tgt.logits[kept][seen], device=device), weight))
    if not scans:
        raise InputError("no point of any frame is seen by a camera: nothing to distil")
    student = LidarStudent(config.student, *classifier).to(device)
    if config.mode == "udakd":
        norms = torch.cat([f2.norm(dim=1) for _, _, f2, _, _ in scans])
        student.readout_norm.fill_(float(norms.mean()))
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(config.iterations, 1), eta_min=0.1 * config.lr)
    losses = []
    student.train()
    bar = tqdm(range(config.iterations), desc=f"{config.mode} student", disable=not progress, leave=False)
    for it in bar:
        scan, seen, f2, z2, weight = scans[it % len(scans)]
        if weight is None or len(seen) <= config.pairs:
            pick = torch.randperm(len(seen), generator=gen)[: config.pairs].to(device)
        else:
            pick = torch.multinomial(weight, config.pairs, replacement=False, generator=gen).to(device)
        f3, z3 = student(scan)
        loss = _loss(config, f3[seen[pick]], z3[seen[pick]], f2[pick], z2[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    student.eval()
    return student, losses


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
        cfg = dict(blob["config"])
        s = cfg.pop("student")
        scfg = StudentConfig(float(s["voxel_size"]), tuple(s["widths"]), bool(s["use_da"]), int(s["in_channels"]))
        config = DistillConfig(student=scfg, **cfg)
        sd = blob["state_dict"]
        student = LidarStudent(scfg, sd["cls_weight"].numpy(), sd["cls_bias"].numpy())
        student.load_state_dict(sd)
        return student.to(device).eval(), tuple(blob["class_names"]), config

    return load_checkpoint(path, FORMAT, "LiDAR student", build, device)
