"""The package's face: load a shape, segment it into parts at several scales, save or use the parts.

Five lines from a file to parts on disk (the README's example; a test runs it)::

    import crossdistill
    shape = crossdistill.load("chair.glb")
    seg = crossdistill.segment(shape, preset="fast", scales=[0.5, 1.0, 2.0])
    print(seg.n_parts(1.0), seg.labels(1.0).shape)
    seg.save("out/chair")

:func:`segment` is :func:`crossdistill.methods.sampart3d.pipeline.segment_shape` with a preset
(:func:`~crossdistill.methods.sampart3d.pipeline.preset`), the mask teacher chosen as the CLI
chooses it (:func:`~crossdistill.teachers.registry.load_mask_teacher`) and a checked device;
:meth:`Segmentation.save` writes what ``crossdistill segment`` writes for one object. The deeper
modules stay importable for researchers (``Segmentation.result`` is the pipeline's own result).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossdistill.types import Shape

__all__ = ["load", "segment", "Segmentation", "Part"]


def load(path: str | os.PathLike) -> Shape:
    """Read a mesh or point cloud (GLB/GLTF, OBJ, PLY, STL, OFF, PCD, NPY, NPZ, LAS/LAZ) into a :class:`Shape`.

    Raises:
        InputError: missing, unreadable or unusable file (a one-line message).
    """
    from crossdistill.geometry.io import load_shape

    return load_shape(path)


@dataclass(frozen=True)
class Part:
    """One part at one scale.

    Attributes:
        label: the part's label (index into :meth:`Segmentation.labels`).
        elements: (k,) int64 indices of the input faces (meshes) or points (point clouds) in the part.
        shape: the part alone, in the input's units (faces re-indexed; colours kept).
        centre: (3,) float64 centre of the part's bounding box (the pivot of the exported node).
    """

    label: int
    elements: np.ndarray
    shape: Shape
    centre: np.ndarray


def _subshape(shape: Shape, elements: np.ndarray) -> Shape:
    if not shape.is_mesh:
        pick = lambda a: None if a is None else a[elements]  # noqa: E731
        return Shape(vertices=shape.vertices[elements], vertex_colors=pick(shape.vertex_colors),
                     vertex_normals=pick(shape.vertex_normals), source=shape.source)
    used, inv = np.unique(shape.faces[elements], return_inverse=True)
    return Shape(vertices=shape.vertices[used], faces=inv.reshape(-1, 3).astype(np.int64),
                 face_colors=None if shape.face_colors is None else shape.face_colors[elements],
                 vertex_colors=None if shape.vertex_colors is None else shape.vertex_colors[used],
                 vertex_normals=None if shape.vertex_normals is None else shape.vertex_normals[used],
                 face_node=None if shape.face_node is None else shape.face_node[elements],
                 node_names=shape.node_names, source=shape.source)


class Segmentation:
    """Parts of one shape at every scale segmented.

    Attributes:
        shape: the input shape.
        result: the pipeline's :class:`crossdistill.methods.sampart3d.pipeline.Segmentation`
            (grouping field, masks, sampled points, timings).
        config: the :class:`~crossdistill.methods.sampart3d.pipeline.SegmentConfig` that ran.
        mask_teacher: id of the 2D mask teacher that ran.
    """

    def __init__(self, shape: Shape, result: Any, config: Any, mask_teacher: str) -> None:
        self.shape = shape
        self.result = result
        self.config = config
        self.mask_teacher = mask_teacher

    @property
    def scales(self) -> tuple[float, ...]:
        """The scales segmented, ascending (0 finest, 2 coarsest)."""
        return tuple(float(s) for s in self.result.scales)

    def _index(self, scale: float) -> int:
        for i, s in enumerate(self.scales):
            if abs(s - float(scale)) < 1e-9:
                return i
        raise KeyError(f"scale {scale:g} was not segmented; scales: {' '.join(f'{s:g}' for s in self.scales)}")

    def labels(self, scale: float) -> np.ndarray:
        """(M,) int32 part of every input face (meshes, input face order) or point (point clouds).

        Raises:
            KeyError: ``scale`` is not one of :attr:`scales`.
        """
        return np.asarray(self.result.labels(self._index(scale)), dtype=np.int32)

    def n_parts(self, scale: float) -> int:
        """Number of parts at ``scale``."""
        lab = self.labels(scale)
        return int(lab.max()) + 1 if len(lab) else 0

    def parts(self, scale: float) -> list[Part]:
        """The parts at ``scale``, in label order (:class:`Part`)."""
        lab = self.labels(scale)
        out = []
        for k in range(self.n_parts(scale)):
            elements = np.flatnonzero(lab == k)
            if len(elements) == 0:
                continue
            sub = _subshape(self.shape, elements)
            out.append(Part(k, elements, sub, 0.5 * (sub.vertices.min(0) + sub.vertices.max(0))))
        return out

    def save(self, out_dir: str | os.PathLike, export_parts: str | None = None, save_field: bool = True) -> Path:
        """Write what ``crossdistill segment`` writes for one object into ``out_dir``; return it.

        Args:
            out_dir: the object's folder (created; existing files of the same names are replaced).
            export_parts: also one file per part per scale: "glb", "obj" or "ply".
            save_field: keep the grouping field (``field.pt``, for ``crossdistill select``).
        """
        from crossdistill.engine.batch import settings_hash
        from crossdistill.methods.sampart3d.outputs import write_segmentation

        out = Path(out_dir)
        settings = dataclasses.asdict(self.config) | {"mask_teacher": self.mask_teacher, "backbone": None}
        if export_parts:
            settings["export_parts"] = export_parts
        write_segmentation(self.result, self.shape, out, settings, settings_hash(settings), save_field=save_field,
                           export_parts=export_parts)
        return out

    def __repr__(self) -> str:
        counts = ", ".join(f"{s:g}: {self.n_parts(s)}" for s in self.scales)
        return f"Segmentation({self.shape.source or 'shape'!r}, parts per scale {{{counts}}}, teacher {self.mask_teacher!r})"


def segment(shape_or_path: Shape | str | os.PathLike, preset: str = "fast", scales=None,
            mask_teacher: Any = "auto", device: str = "cpu", seed: int = 0, mask_weights: str | None = None,
            progress: bool = False, **overrides: Any) -> Segmentation:
    """Segment a mesh or point cloud into parts at several scales (SAMPart3D).

    Args:
        shape_or_path: a :class:`Shape` (from :func:`load`) or a path.
        preset: "fast" (the CPU budget) or "paper" (SAMPart3D's settings, meant for a GPU).
        scales: scales in [0, 2] (0 finest, 2 coarsest); default the preset's (0 0.5 1 1.5 2).
        mask_teacher: "auto" (SAM when its weights are on this machine, else the offline
            render-based teacher), "offline", "sam", "learned" (with ``mask_weights``), or a
            ready mask teacher object.
        device: "cpu", "cuda", "cuda:N", "mps" or "auto".
        seed: seeds sampling, views, training and clustering.
        mask_weights: a local SAM folder, or the learned teacher's file.
        progress: show progress bars.
        **overrides: other :class:`~crossdistill.methods.sampart3d.pipeline.SegmentConfig` fields
            (``n_points``, ``n_views``, ``image_size``, ...).

    Returns:
        :class:`Segmentation`.

    Raises:
        InputError: unreadable input, bad settings, an unknown device or teacher, missing weights.
    """
    from crossdistill.engine.devices import resolve_device
    from crossdistill.engine.quiet import quiet_libraries
    from crossdistill.errors import InputError
    from crossdistill.methods.sampart3d.pipeline import PRESETS, preset as make_preset, segment_shape

    shape = shape_or_path if isinstance(shape_or_path, Shape) else load(shape_or_path)
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r} ({' or '.join(PRESETS)})")
    dev = resolve_device(device, "device")
    if scales is not None:
        scales = tuple(float(s) for s in np.atleast_1d(scales))
        if not scales or any(not (0.0 <= s <= 2.0) for s in scales):
            raise InputError(f"scales must lie in [0, 2] (got {scales})")
        overrides["scales"] = scales
    try:
        config = make_preset(preset, seed=int(seed), device=dev, **overrides)
    except TypeError as exc:
        raise InputError(f"unknown setting: {exc}") from None
    with contextlib.nullcontext() if progress else quiet_libraries():  # no transformers bar unless asked
        teacher = _mask_teacher(mask_teacher, mask_weights, dev, preset)
    result = segment_shape(shape, config, mask_teacher=teacher, progress=progress)
    return Segmentation(shape, result, config, str(result.meta.get("mask_teacher", "")))


def _mask_teacher(choice: Any, weights: str | None, device: str, preset: str):
    """None (the offline default) or the mask teacher object ``choice`` names (or is)."""
    if not isinstance(choice, str):
        return choice
    from crossdistill.teachers.registry import load_mask_teacher

    settings = None
    if choice in ("auto", "sam"):
        from crossdistill.teachers.sam import SAMPART3D_SAM_SETTINGS, AutoMaskSettings

        settings = SAMPART3D_SAM_SETTINGS if preset == "paper" else AutoMaskSettings()
    return load_mask_teacher(choice, weights, device=device, sam_settings=settings)
