"""Teacher protocols and their typed results.

A *teacher* is a frozen 2D model that looks at rendered :class:`~crossdistill.types.Views`
and says something about every view. There are four kinds, one ``typing.Protocol`` each:

================  ==========================================  =================================
protocol          method                                      result (one per call / per view)
================  ==========================================  =================================
FeatureTeacher    ``features(views)``                         :class:`FeatureMaps`
MaskTeacher       ``masks(views)``                            ``list[MaskSet]``
TextTeacher       ``predict(views, part_names)``              ``list[PartPredictions]``
InstanceTeacher   ``instances(views)``                        ``list[InstanceSet]``
SemanticTeacher   ``segment(images)``                         ``list[SemanticMap]``
================  ==========================================  =================================

``SemanticTeacher`` reads plain camera images (LiDAR-camera rigs, not renders) and also
exposes its pixel classifier, which the LiDAR students share (FSKD / UDAKD).

Every teacher also has ``teacher_id: str`` (backend + model name + the settings that change
its output; the disk cache keys on it) and ``is_offline_default: bool`` (True for the
weight-free fallbacks, which say so in logs and outputs).

Results are frozen dataclasses of numpy arrays with the shapes stated per field. Each has
``to_arrays()`` / ``from_arrays()`` so :mod:`crossdistill.teachers.cache` can store it as npz.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from crossdistill.types import Views
from crossdistill.teachers.upsample import Upsampler, upsampler_from_spec

__all__ = [
    "FeatureMaps",
    "MaskSet",
    "PartPredictions",
    "InstanceSet",
    "FeatureTeacher",
    "MaskTeacher",
    "TextTeacher",
    "InstanceTeacher",
    "SemanticMap",
    "SemanticTeacher",
    "LEVEL_WHOLE",
    "LEVEL_PART",
    "LEVEL_SUBPART",
]

#: Granularity levels of :attr:`MaskSet.level` (SAM's three multimask outputs).
LEVEL_WHOLE, LEVEL_PART, LEVEL_SUBPART = 0, 1, 2


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FeatureMaps:
    """Dense per-pixel features of V views.

    Attributes:
        features: (V, C, h, w) float16 or float32 features. Either at render resolution
            (``h, w == image_size``) or at the teacher's lower resolution, in which case
            ``upsampler`` maps them to pixels.
        image_size: (H, W) render resolution.
        upsampler: maps (B, C, h, w) features to (B, C, H, W) given the (B, H, W, 3) uint8
            render as guide; ``None`` when ``features`` is already at render resolution.
        guide: (V, H, W, 3) uint8 RGB renders used by guided upsamplers, or ``None``.

    Example:
        >>> fm = FeatureMaps(np.zeros((2, 8, 4, 4), np.float32), (16, 16))
        >>> fm.to_pixels().shape  # bilinear when no upsampler is given
        (2, 8, 16, 16)
    """

    features: np.ndarray
    image_size: tuple[int, int]
    upsampler: Upsampler | None = None
    guide: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.features))

    @property
    def channels(self) -> int:
        return int(self.features.shape[1])

    @property
    def at_render_resolution(self) -> bool:
        return tuple(self.features.shape[2:]) == tuple(self.image_size)

    def pixel_features(self, view: int, device: str = "cpu"):
        """(C, H, W) float32 torch tensor of one view at render resolution."""
        import torch

        from crossdistill.teachers.upsample import BilinearUpsampler

        feats = torch.as_tensor(self.features[view : view + 1], device=device).float()
        if self.at_render_resolution:
            return feats[0]
        up = self.upsampler if self.upsampler is not None else BilinearUpsampler()
        guide = None if self.guide is None else torch.as_tensor(self.guide[view : view + 1], device=device)
        return up(feats, self.image_size, guide)[0]

    def to_pixels(self, dtype: type = np.float32) -> np.ndarray:
        """(V, C, H, W) features at render resolution (memory: V*C*H*W values)."""
        out = np.empty((len(self), self.channels, *self.image_size), dtype=dtype)
        for v in range(len(self)):
            out[v] = self.pixel_features(v).numpy().astype(dtype, copy=False)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"features": self.features, "image_size": np.asarray(self.image_size, np.int64)}
        if self.upsampler is not None:
            arrays["upsampler"] = np.asarray(self.upsampler.spec())
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], views: Views) -> "FeatureMaps":
        up = upsampler_from_spec(str(arrays["upsampler"])) if "upsampler" in arrays else None
        return cls(
            features=arrays["features"],
            image_size=tuple(int(s) for s in arrays["image_size"]),
            upsampler=up,
            guide=views.rgb if up is not None and up.needs_guide else None,
        )


@dataclass(frozen=True)
class MaskSet:
    """Class-agnostic masks of one view.

    Attributes:
        masks: (M, H, W) bool.
        scores: (M,) float32 in [0, 1] (e.g. SAM's predicted IoU).
        level: (M,) int8 granularity: 0 whole/coarse, 1 part, 2 subpart.
    """

    masks: np.ndarray
    scores: np.ndarray
    level: np.ndarray

    def __len__(self) -> int:
        return int(len(self.masks))

    @classmethod
    def empty(cls, height: int, width: int) -> "MaskSet":
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.float32), np.zeros(0, np.int8))

    def at_level(self, level: int) -> "MaskSet":
        keep = self.level == level
        return MaskSet(self.masks[keep], self.scores[keep], self.level[keep])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"masks": self.masks, "scores": self.scores, "level": self.level}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], views: Views | None = None) -> "MaskSet":
        return cls(arrays["masks"].astype(bool), arrays["scores"], arrays["level"])


@dataclass(frozen=True)
class PartPredictions:
    """Text-prompted part predictions of one view.

    Box-level teachers (OWLv2, Grounding DINO) fill ``boxes``; pixel-level teachers
    (CLIPSeg) fill ``masks``.

    Attributes:
        labels: (P,) int64 index into ``part_names``.
        scores: (P,) float32 in [0, 1].
        boxes: (P, 4) float32 xyxy pixel boxes inside the image, or ``None``.
        masks: (P, H, W) bool, or ``None``.
        part_names: the prompts the labels index.
    """

    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray | None = None
    masks: np.ndarray | None = None
    part_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(len(self.labels))

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"labels": self.labels, "scores": self.scores, "part_names": np.asarray(self.part_names, dtype=str)}
        if self.boxes is not None:
            arrays["boxes"] = self.boxes
        if self.masks is not None:
            arrays["masks"] = self.masks
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], views: Views | None = None) -> "PartPredictions":
        return cls(
            labels=arrays["labels"],
            scores=arrays["scores"],
            boxes=arrays.get("boxes"),
            masks=arrays["masks"].astype(bool) if "masks" in arrays else None,
            part_names=tuple(str(s) for s in arrays["part_names"]),
        )


@dataclass(frozen=True)
class InstanceSet:
    """Instance segmentation of one view plus the model's per-pixel embedding.

    Attributes:
        masks: (M, H, W) bool.
        scores: (M,) float32 in [0, 1].
        classes: (M,) int64 class ids of the teacher's label space.
        features: (C, h, w) float16/float32 per-pixel embedding (e.g. Mask2Former's
            pixel-decoder output at 1/4 of the network input), covering the whole view.
    """

    masks: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return int(len(self.masks))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"masks": self.masks, "scores": self.scores, "classes": self.classes, "features": self.features}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], views: Views | None = None) -> "InstanceSet":
        return cls(arrays["masks"].astype(bool), arrays["scores"], arrays["classes"], arrays["features"])


@dataclass(frozen=True)
class SemanticMap:
    """Semantic segmentation of one image, with the features its classifier reads.

    Attributes:
        features: (C, h, w) float32 per-pixel features (the classifier's input), covering the image.
        logits: (K, h, w) float32 class logits, ``classifier(features)``.
        image_size: (H, W) of the image; ``h, w`` may be lower (pixel (x, y) of the image
            reads the maps at ``(x * w / W, y * h / H)``).
    """

    features: np.ndarray
    logits: np.ndarray
    image_size: tuple[int, int]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"features": self.features, "logits": self.logits, "image_size": np.asarray(self.image_size)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], views: Views | None = None) -> "SemanticMap":
        return cls(arrays["features"], arrays["logits"], tuple(int(s) for s in arrays["image_size"]))


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class FeatureTeacher(Protocol):
    """Dense features: ``features(views) -> FeatureMaps`` with (V, C, h, w) features."""

    teacher_id: str
    is_offline_default: bool

    def features(self, views: Views) -> FeatureMaps: ...


@runtime_checkable
class MaskTeacher(Protocol):
    """Class-agnostic multi-granularity masks: one :class:`MaskSet` per view."""

    teacher_id: str
    is_offline_default: bool

    def masks(self, views: Views) -> list[MaskSet]: ...


@runtime_checkable
class TextTeacher(Protocol):
    """Text-prompted parts: one :class:`PartPredictions` per view, labels index ``part_names``."""

    teacher_id: str
    is_offline_default: bool

    def predict(self, views: Views, part_names: Sequence[str]) -> list[PartPredictions]: ...


@runtime_checkable
class InstanceTeacher(Protocol):
    """Instance masks with class ids and per-pixel features: one :class:`InstanceSet` per view."""

    teacher_id: str
    is_offline_default: bool

    def instances(self, views: Views) -> list[InstanceSet]: ...


@runtime_checkable
class SemanticTeacher(Protocol):
    """Per-pixel classes of camera images and the linear classifier behind them.

    ``class_names``: the K classes; ``classifier()``: ((K, C) weight, (K,) bias) numpy
    arrays with ``logits = weight @ features + bias`` per pixel.
    """

    teacher_id: str
    is_offline_default: bool
    class_names: tuple[str, ...]

    def segment(self, images: Sequence[np.ndarray]) -> list[SemanticMap]: ...

    def classifier(self) -> tuple[np.ndarray, np.ndarray]: ...
