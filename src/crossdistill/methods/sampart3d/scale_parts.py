"""The parts of a segmented object at any scale, made the way ``crossdistill segment`` makes them.

``crossdistill segment`` clusters the grouping field at a few scales (stage 3:
:func:`~crossdistill.methods.sampart3d.pipeline.parts_from_field`) and writes one
``scale_<s>/labels.npy`` per scale. A click or a slider asks for parts at any scale, and the
answer must be the one ``segment`` would give there: :class:`ScaleParts` reads the saved labels
at a segmented scale and, at any other scale, runs the same stage 3 on the saved field
(``field.pt``, :mod:`.interactive`) with the object's recorded settings and the rules of its
mask teacher. ``crossdistill select`` (parts mode) and ``crossdistill view`` read parts here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import torch

from crossdistill.errors import InputError
from crossdistill.methods.sampart3d.supervision import MaskSupervision
from crossdistill.types import Shape, SurfaceSample

if TYPE_CHECKING:
    from crossdistill.methods.sampart3d.interactive import FieldBundle

__all__ = ["ScaleParts", "segment_config_from_settings"]


def segment_config_from_settings(settings: dict, device: str = "cpu"):
    """The :class:`~.pipeline.SegmentConfig` a ``segment.json`` records (its ``settings``), on ``device``.

    Keys the config does not know (the teacher's id, the backbone) are ignored.
    """
    from crossdistill.methods.sampart3d.cluster import ClusterConfig
    from crossdistill.methods.sampart3d.pipeline import SegmentConfig, SupervisionConfig
    from crossdistill.methods.sampart3d.rules import PartRules
    from crossdistill.methods.sampart3d.train import GroupingTrainConfig

    def build(cls, doc: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})

    doc = {k: v for k, v in settings.items() if k in {f.name for f in fields(SegmentConfig)}}
    for key, cls in (("train", GroupingTrainConfig), ("cluster", ClusterConfig), ("supervision", SupervisionConfig),
                     ("rules", PartRules)):
        if isinstance(doc.get(key), dict):
            doc[key] = build(cls, doc[key])
    if "scales" in doc:
        doc["scales"] = tuple(float(s) for s in doc["scales"])
    return replace(SegmentConfig(**doc), device=device)


class ScaleParts:
    """The parts of one segmented object at any scale, exactly as ``crossdistill segment`` makes them.

    At a segmented scale: the saved ``scale_<s>/labels.npy``. At any other scale: stage 3 of
    the pipeline (:func:`~.pipeline.parts_from_field`) on the saved field, with the object's
    recorded settings and the rules of its mask teacher (``segment.json``). Thread-safe; labels
    are cached per scale, the least recently used dropped past ``cache_size`` scales.

    Args:
        bundle: the object's saved field.
        shape: its input as loaded (input units, input face order).
        settings: ``segment.json``'s ``settings``; meta: its ``meta``.
        saved: {scale: path of its ``labels.npy``} of the segmented scales.
        cache_size: computed scales kept in memory.

    Attributes:
        notes: what differs from ``segment`` (an older ``field.pt``, say), one line each.
    """

    def __init__(self, bundle: FieldBundle, shape: Shape, settings: dict, meta: dict,
                 saved: dict[float, Path], cache_size: int = 64) -> None:
        self.bundle = bundle
        self.shape = shape
        self.saved = {float(s): Path(p) for s, p in saved.items()}
        device = str(bundle.field.low_feat.device)
        self.config = segment_config_from_settings(settings, device)
        kind = meta.get("shape_kind") or ("pieces" if shape.is_mesh else "points")  # older segment.json: none
        rules = self.config.rules_for(SimpleNamespace(mask_kind=meta.get("mask_kind", "sam-like")), kind)
        self.notes: list[str] = []
        recorded = meta.get("rules")
        if recorded is not None and sorted(recorded) != sorted(rules.names):
            self.notes.append(f"segment.json records the rules {recorded}, this version derives {rules.names}")
        if bundle.element == "face" and rules.pieces and rules.fragment_support is not None and bundle.evidence is None:
            rules = replace(rules, fragment_support=None)
            self.notes.append("field.pt holds no mask evidence (written by an older version): at unsaved scales, "
                              "small parts a 2D mask confirms may fold into their piece where segment keeps them")
        if rules.part_vote is not None and (bundle.evidence is None or bundle.evidence.scale is None):
            rules = replace(rules, part_vote=None)
            self.notes.append("field.pt holds no mask scales (written by an older version): at unsaved scales, "
                              "parts that the 2D masks group are not merged where segment merges them")
        self.rules = rules
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[float, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._compute_lock = threading.Lock()
        self._inputs = None

    @classmethod
    def from_dir(cls, object_dir: Path, shape: Shape, bundle: FieldBundle, cache_size: int = 64) -> "ScaleParts":
        """The parts of a finished ``crossdistill segment`` object folder (its ``segment.json``)."""
        from crossdistill.export.parts import scale_dirname
        from crossdistill.methods.sampart3d.outputs import read_segment_meta

        obj = Path(object_dir)
        doc = read_segment_meta(obj)
        saved = {float(s): obj / scale_dirname(float(s)) / "labels.npy" for s in doc.get("scales") or []}
        saved = {s: p for s, p in saved.items() if p.is_file()}
        return cls(bundle, shape, doc.get("settings") or {}, doc.get("meta") or {}, saved, cache_size)

    @property
    def saved_scales(self) -> tuple[float, ...]:
        """The segmented scales, ascending."""
        return tuple(sorted(self.saved))

    def saved_scale(self, scale: float) -> float | None:
        """The segmented scale equal to ``scale`` (to 1e-9), or None."""
        for s in self.saved:
            if abs(s - float(scale)) < 1e-9:
                return s
        return None

    def cached(self, scale: float) -> bool:
        """Are the labels of ``scale`` at hand without computing?"""
        with self._lock:
            return round(float(scale), 9) in self._cache

    def labels(self, scale: float) -> np.ndarray:
        """(M,) int32 part of every input face (meshes) or point (point clouds) at ``scale``; do not modify it.

        Raises:
            InputError: a negative or non-finite scale, or a saved labels file that does not fit.
        """
        scale = float(scale)
        if not np.isfinite(scale) or scale < 0:
            raise InputError(f"scale must be a non-negative number (got {scale})")
        key = round(scale, 9)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        with self._compute_lock:  # one computation at a time; a second caller for the same scale waits for it
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            saved = self.saved_scale(scale)
            lab = self._read(self.saved[saved]) if saved is not None else self._compute((scale,))[0]
            self._keep(key, lab)
            return lab

    def warm(self, scales: list[float], chunk: int = 4) -> None:
        """Compute the labels of ``scales`` not at hand yet, ``chunk`` scales per run of stage 3.

        The clustered subsample (farthest-point sampling, the same for every scale) is drawn once
        and kept; one run over several scales also shares the rest of stage 3's set-up. The labels
        are the same as :meth:`labels` gives one scale at a time. A caller of :meth:`labels` waits at
        most one chunk.
        """
        todo = [float(s) for s in scales if np.isfinite(s) and s >= 0 and not self.cached(s)
                and self.saved_scale(s) is None]
        for i in range(0, len(todo), max(1, int(chunk))):
            with self._compute_lock:
                part = [s for s in todo[i:i + chunk] if not self.cached(s)]
                if part:
                    for s, lab in zip(part, self._compute(tuple(part))):
                        self._keep(round(s, 9), lab)

    def _keep(self, key: float, lab: np.ndarray) -> None:
        lab.setflags(write=False)
        with self._lock:
            self._cache[key] = lab
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _read(self, path: Path) -> np.ndarray:
        try:
            lab = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            raise InputError(f"cannot read {path}") from None
        if lab.shape != (self.bundle.n_elements,):
            raise InputError(f"{path} holds {lab.shape} labels, the object has {self.bundle.n_elements} "
                             f"{self.bundle.element}s")
        return lab.astype(np.int32)

    def _stage3_inputs(self):
        """(unit shape, mesh pieces or None, samples, supervision) for stage 3, built once."""
        if self._inputs is None:
            from crossdistill.geometry.normalize import normalize_shape
            from crossdistill.geometry.topology import face_components

            b = self.bundle
            unit, tf = normalize_shape(self.shape)
            if not (np.allclose(tf.center, b.transform.center) and np.isclose(tf.scale, b.transform.scale)):
                raise InputError("the input's bounding box differs from the one the field was trained on: "
                                 "was the input changed?")
            pieces = face_components(unit.vertices, unit.faces) if unit.is_mesh else None
            n = len(b.points)
            samples = SurfaceSample(np.asarray(b.points, np.float64), np.zeros((n, 3)), np.zeros((n, 3), np.uint8),
                                    np.asarray(b.point_face), np.zeros((n, 3)), np.asarray(b.point_source))
            sup = MaskSupervision.empty() if b.evidence is None else b.evidence.to_supervision()
            self._inputs = (unit, pieces, samples, sup)
        return self._inputs

    def _compute(self, scales: tuple[float, ...]) -> list[np.ndarray]:
        """Stage 3 (:func:`~.pipeline.parts_from_field`) at ``scales`` in one run: (M,) int32 labels per scale."""
        from crossdistill.methods.sampart3d.pipeline import parts_from_field

        from crossdistill.geometry.sampling import farthest_point_sampling

        unit, pieces, samples, sup = self._stage3_inputs()
        if getattr(self, "_subsample", None) is None:  # the clustered subset, drawn once (as segment draws it)
            self._subsample = farthest_point_sampling(samples.points, min(self.config.cluster.max_points, len(samples)),
                                                      seed=self.config.seed)
        with torch.no_grad():
            _, faces, points = parts_from_field(self.bundle.field, sup, unit, samples, pieces, tuple(scales),
                                                self.config, self.rules, subsample=self._subsample)
        out = faces if faces is not None else points
        return [np.array(row, dtype=np.int32) for row in out]
