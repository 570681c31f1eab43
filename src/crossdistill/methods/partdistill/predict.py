"""Student checkpoints and labelling new shapes with a trained student.

A checkpoint (``student.pt``) holds the student's weights, the part names (its classes in
order), the :class:`~crossdistill.methods.partdistill.student_training.StudentConfig`
and free-form metadata (teacher, data, seeds). :func:`label_shape` turns any mesh or
point cloud into semantic labels: per face for meshes (majority of the sampled points
on each face, nearest labelled face for faces no point reaches), per point for point
clouds (the student runs on a farthest-point subsample, every input point takes the
label of its nearest subsample point).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.geometry.normalize import normalize_shape
from crossdistill.geometry.sampling import estimate_normals, farthest_point_sampling
from crossdistill.methods.partdistill.distill import shape_points
from crossdistill.methods.partdistill.student_training import ShapePoints, StudentConfig, predict_probs
from crossdistill.methods.sampart3d.vote import vote_faces
from crossdistill.students.point_student import PointStudent, point_features
from crossdistill.types import Shape

__all__ = ["StudentCheckpoint", "save_student", "load_student", "label_shape"]

FORMAT = "crossdistill-partdistill-student-v1"


@dataclass
class StudentCheckpoint:
    """A trained student with what is needed to use it.

    Attributes:
        model: the :class:`PointStudent` (eval mode).
        part_names: its P classes.
        config: the student settings it was trained with (points per shape, k, ...).
        meta: free-form JSON-able metadata.
    """

    model: PointStudent
    part_names: tuple[str, ...]
    config: StudentConfig
    meta: dict


def save_student(path: str | Path, model: PointStudent, part_names, config: StudentConfig,
                 meta: dict | None = None) -> Path:
    """Write a checkpoint atomically."""
    return save_checkpoint(path, FORMAT, {"part_names": list(part_names), "config": config.to_dict(),
                                          "meta": meta or {},
                                          "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})


def load_student(path: str | Path, device: str = "cpu") -> StudentCheckpoint:
    """Read a checkpoint written by :func:`save_student`; InputError if it is not one."""

    def build(blob: dict) -> StudentCheckpoint:
        config = StudentConfig(**blob["config"])
        model = PointStudent(len(blob["part_names"]), config.width, config.n_blocks)
        model.load_state_dict(blob["state_dict"])
        return StudentCheckpoint(model.to(device).eval(), tuple(blob["part_names"]), config, dict(blob["meta"]))

    return load_checkpoint(path, FORMAT, "student checkpoint", build)


def label_shape(ckpt: StudentCheckpoint, shape: Shape, device: str = "cpu", seed: int | None = None) -> np.ndarray:
    """Semantic part labels of a shape: (F,) int32 per face of a mesh, (N,) int32 per point of a cloud.

    Labels index ``ckpt.part_names``; the input's face / point order is kept.
    """
    cfg = ckpt.config
    seed = cfg.seed if seed is None else seed
    if shape.is_mesh:
        unit, samples, points = shape_points(shape, cfg.n_points, cfg.k, seed)
        labels = predict_probs(ckpt.model, points, device).argmax(1)
        centroids = unit.vertices[unit.faces].mean(1)
        return vote_faces(labels, samples.face_id, unit.n_faces, centroids, spill=0.0)
    unit, _ = normalize_shape(shape)
    normals = unit.vertex_normals if unit.vertex_normals is not None else estimate_normals(unit.vertices)
    n = len(unit.vertices)
    sub = farthest_point_sampling(unit.vertices, min(cfg.n_points, n), seed=seed) if n > cfg.n_points else np.arange(n)
    colors = None if unit.vertex_colors is None else unit.vertex_colors[sub]
    feats = point_features(unit.vertices[sub], normals[sub], colors)
    labels = predict_probs(ckpt.model, ShapePoints.build(feats, cfg.k), device).argmax(1)
    if len(sub) == n:
        return labels.astype(np.int32)
    _, nn = cKDTree(unit.vertices[sub]).query(unit.vertices, k=1, workers=-1)
    return labels[nn].astype(np.int32)
