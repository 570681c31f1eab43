"""The weight-free geometric part teacher: SAM-like masks of spectral part partitions.

For shapes whose parts meet without pieces, colour edges or depth jumps (closed single
surfaces: characters, animals, scans, generated meshes), the render-cue teacher
(:mod:`.offline_masks`) sees no part boundary. This teacher cuts the 3D shape itself at
several granularities (:func:`crossdistill.geometry.spectral_parts.geometric_partitions`:
spectral clustering of a concavity-weighted dual graph) and hands every part of every
granularity to the SAMPart3D core as masks per view, in the form of SAM's masks
(:class:`~.partition_masks.PartitionMaskTeacher`), so the core lifts them unchanged.
"""

from __future__ import annotations

import numpy as np

from crossdistill.geometry.spectral_parts import DEFAULT_COUNTS, geometric_partitions
from crossdistill.teachers.partition_masks import PartitionMaskTeacher
from crossdistill.types import Shape


def geometric_part_teacher(shape: Shape, counts: tuple[int, ...] = DEFAULT_COUNTS, seed: int = 0,
                           min_pixels: int = 16) -> PartitionMaskTeacher:
    """The geometric part teacher of one shape (the shape as rendered: the same faces / points).

    Args:
        shape: the mesh or point cloud the views are rendered from.
        counts: part counts of the spectral partitions (one granularity each).
    """
    parts = geometric_partitions(shape, counts, seed)
    name = "spectral-concavity:" + ",".join(str(c) for c in counts)
    return PartitionMaskTeacher(parts, name=name, min_pixels=min_pixels, mask_kind="geometric-parts")


def is_single_surface(components: np.ndarray | None, areas: np.ndarray | None, share: float = 1.0) -> bool:
    """Does one connected piece hold at least ``share`` of a mesh's area (default: is it one piece)?
    (point clouds: None -> False)."""
    if components is None or areas is None or len(areas) == 0:
        return False
    per_piece = np.bincount(components, weights=areas)
    return float(per_piece.max()) >= share * float(per_piece.sum())


def is_closed_surface(shape: Shape, components: np.ndarray | None) -> bool:
    """Is a mesh one connected, watertight surface (every edge shared by exactly two faces)?

    Closed single surfaces (characters, animals, sculpted and scanned or generated meshes)
    are the shapes whose parts meet without pieces, colour edges or open borders; objects
    modelled from CAD pieces, even welded into one piece, keep open borders.
    """
    if not shape.is_mesh or not is_single_surface(components, shape.face_areas):
        return False
    import trimesh

    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
    mesh.merge_vertices()
    return bool(mesh.is_watertight)


def shape_kind_of(shape: Shape, components: np.ndarray | None) -> str:
    """Which of :data:`crossdistill.methods.sampart3d.rules.SHAPE_KINDS` a shape is: "points" (a point
    cloud), "closed_surface" (:func:`is_closed_surface`) or "pieces" (any other mesh);
    ``components``: (F,) mesh pieces, None for point clouds."""
    if not shape.is_mesh:
        return "points"
    return "closed_surface" if is_closed_surface(shape, components) else "pieces"


class CombinedMaskTeacher:
    """The masks of several teachers of the same views, view by view (a union of mask sets).

    ``mask_kind`` and ``is_offline_default`` are the first teacher's; ``teacher_id`` joins all.
    """

    def __init__(self, teachers: list) -> None:
        if not teachers:
            raise ValueError("CombinedMaskTeacher needs at least one teacher")
        self.teachers = list(teachers)
        self.mask_kind = getattr(teachers[0], "mask_kind", "sam-like")
        self.is_offline_default = bool(getattr(teachers[0], "is_offline_default", False))

    @property
    def teacher_id(self) -> str:
        return "+".join(getattr(t, "teacher_id", type(t).__name__) for t in self.teachers)

    def masks(self, views):
        from crossdistill.teachers.base import MaskSet

        per = [t.masks(views) for t in self.teachers]
        out = []
        for sets in zip(*per):
            masks = np.concatenate([np.asarray(s.masks, dtype=bool) for s in sets])
            scores = np.concatenate([np.asarray(s.scores, dtype=np.float32) for s in sets])
            level = np.concatenate([np.asarray(s.level, dtype=np.int8) for s in sets])
            out.append(MaskSet(masks, scores, level))
        return out


#: what the weight-free default teacher is, by kind of shape ("render" | "geometric" | "both")
OFFLINE_POLICIES = ("render", "geometric", "both")


class OfflineTeacher:
    """The weight-free default mask teacher, chosen per shape: render cues, geometry, or both.

    Args:
        single_surface: teacher for a closed single surface (:func:`is_closed_surface`).
        multi_piece: teacher for other meshes.
        point_cloud: teacher for point clouds.

    Each is ``"render"`` (the render-cue teacher, :mod:`.offline_masks`), ``"geometric"`` (the
    spectral part partitions, :func:`geometric_part_teacher`) or ``"both"`` (their masks
    together, with the render-cue teacher's rules). :meth:`for_shape` builds the teacher of
    one shape (in the unit box, as rendered).
    """

    def __init__(self, single_surface: str = "both", multi_piece: str = "render", point_cloud: str = "both") -> None:
        for v in (single_surface, multi_piece, point_cloud):
            if v not in OFFLINE_POLICIES:
                raise ValueError(f"offline teacher policy must be one of {OFFLINE_POLICIES}, got {v!r}")
        self.single_surface, self.multi_piece, self.point_cloud = single_surface, multi_piece, point_cloud

    def choice(self, shape: Shape, components: np.ndarray | None, shape_kind: str | None = None) -> str:
        """The policy for a shape of ``shape_kind`` (:func:`shape_kind_of`, found when None)."""
        shape_kind = shape_kind or shape_kind_of(shape, components)
        return {"points": self.point_cloud, "closed_surface": self.single_surface,
                "pieces": self.multi_piece}[shape_kind]

    def for_shape(self, shape: Shape, components: np.ndarray | None, shape_kind: str | None = None):
        """The mask teacher of one shape (``components``: (F,) mesh pieces, None for point clouds;
        ``shape_kind``: its :func:`shape_kind_of` when the caller has it already)."""
        from crossdistill.teachers.offline_masks import RenderMaskTeacher

        kind = self.choice(shape, components, shape_kind)
        render = RenderMaskTeacher(face_groups={"piece": components} if shape.is_mesh else {})
        if kind == "render":
            return render
        geometric = geometric_part_teacher(shape)
        return geometric if kind == "geometric" else CombinedMaskTeacher([render, geometric])
