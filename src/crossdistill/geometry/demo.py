"""A toy robot built in code: the demo object and its ground-truth parts.

No files needed. The robot stands along +y (glTF's up axis), about 2 units tall,
and is made of trimesh primitives, each its own scene node with its own colour:

* head: a box with two spherical eyes and an antenna (cylinder + ball) on top;
* torso: a box with a round chest button;
* two arms, each ONE capsule-shaped mesh (one connected piece) that the fine level splits into
  upper arm and forearm at the elbow, plus a spherical hand touching the forearm;
* two legs (cylinders) hanging a small gap below the torso, each touching a box foot.

So connected components are not the parts: an arm capsule holds two fine parts, the
head's pieces touch without sharing vertices, and the legs are separate pieces.
Two granularities: ``coarse`` (6 parts: head, torso, arms, legs) and ``fine``
(17 parts). 15 primitives, 4352 faces.

Example:
    >>> shape = demo_shape()
    >>> labels = demo_part_labels()
    >>> labels["fine"].shape == (shape.n_faces,)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossdistill.types import Shape

__all__ = ["demo_shape", "demo_part_labels", "demo_part_names", "COARSE_PARTS", "FINE_PARTS"]

COARSE_PARTS: tuple[str, ...] = ("head", "torso", "left arm", "right arm", "left leg", "right leg")
FINE_PARTS: tuple[str, ...] = (
    "head", "left eye", "right eye", "antenna", "antenna ball",
    "torso", "chest button",
    "left upper arm", "left forearm", "left hand",
    "right upper arm", "right forearm", "right hand",
    "left leg", "left foot", "right leg", "right foot",
)  # fmt: skip

_COLORS: dict[str, tuple[int, int, int]] = {
    "head": (200, 200, 210), "left eye": (30, 30, 200), "right eye": (30, 30, 200),
    "antenna": (90, 90, 90), "antenna ball": (230, 40, 40),
    "torso": (70, 130, 200), "chest button": (250, 200, 0),
    "left upper arm": (80, 170, 80), "left forearm": (40, 120, 40), "left hand": (240, 160, 120),
    "right upper arm": (80, 170, 80), "right forearm": (40, 120, 40), "right hand": (240, 160, 120),
    "left leg": (120, 80, 160), "left foot": (60, 40, 30), "right leg": (120, 80, 160),
    "right foot": (60, 40, 30),
}  # fmt: skip

_ELBOW_Y = 1.1  # arms: faces whose centroid lies above this are the upper arm (a ring of the arm mesh)


def _arm_mesh(radius: float = 0.08, length: float = 0.7):
    """A capsule along z as a surface of revolution with rings every length/8.

    Unlike ``trimesh.creation.capsule`` its straight part has intermediate rings
    (one at z = 0), so the arm can be split into two clean halves at the elbow.
    """
    from trimesh.creation import revolve

    a = np.linspace(-np.pi / 2, 0.0, 7)
    bottom = np.stack([radius * np.cos(a), -length / 2 + radius * np.sin(a)], axis=1)
    middle = np.stack([np.full(7, radius), np.linspace(-length / 2, length / 2, 9)[1:-1]], axis=1)
    top = np.stack([radius * np.cos(a[::-1]), length / 2 - radius * np.sin(a[::-1])], axis=1)
    profile = np.concatenate([bottom, middle, top])
    profile[[0, -1], 0] = 0.0  # close the poles
    return revolve(profile, sections=24)


@dataclass(frozen=True)
class _Piece:
    node: str
    coarse: str
    fine: str  # fine part name; for arms the upper-arm name (split at _ELBOW_Y)
    mesh: object  # trimesh.Trimesh


def _pieces() -> list[_Piece]:
    import trimesh
    from trimesh.creation import box, cylinder, icosphere
    from trimesh.transformations import rotation_matrix, translation_matrix

    def moved(mesh, xyz, rot=None):
        if rot is not None:
            mesh.apply_transform(rot)
        mesh.apply_translation(xyz)
        return mesh

    y_up = rotation_matrix(-np.pi / 2, [1, 0, 0])  # z axis -> y axis
    z_fwd = np.eye(4)
    pieces = [
        _Piece("head", "head", "head", moved(box([0.5, 0.4, 0.4]).subdivide().subdivide(), [0, 1.75, 0])),
        _Piece("eye_left", "head", "left eye", moved(icosphere(2, radius=0.06), [-0.11, 1.8, 0.23])),
        _Piece("eye_right", "head", "right eye", moved(icosphere(2, radius=0.06), [0.11, 1.8, 0.23])),
        _Piece("antenna", "head", "antenna", moved(cylinder(0.02, 0.25, sections=16), [0, 2.075, 0], y_up)),
        _Piece("antenna_ball", "head", "antenna ball", moved(icosphere(2, radius=0.06), [0, 2.24, 0])),
        _Piece("torso", "torso", "torso", moved(box([0.8, 0.9, 0.45]).subdivide().subdivide(), [0, 1.1, 0])),
        _Piece("chest_button", "torso", "chest button",
               moved(cylinder(0.08, 0.04, sections=32), [0, 1.25, 0.24], z_fwd)),
    ]  # fmt: skip
    for side, x in (("left", -1.0), ("right", 1.0)):
        pieces += [
            _Piece(f"arm_{side}", f"{side} arm", f"{side} upper arm",
                   moved(_arm_mesh(), [x * 0.5, 1.1, 0], y_up)),
            _Piece(f"hand_{side}", f"{side} arm", f"{side} hand",
                   moved(icosphere(2, radius=0.1), [x * 0.5, 0.57, 0])),
            _Piece(f"leg_{side}", f"{side} leg", f"{side} leg",
                   moved(cylinder(0.1, 0.5, sections=32), [x * 0.2, 0.35, 0], y_up)),
            _Piece(f"foot_{side}", f"{side} leg", f"{side} foot",
                   moved(box([0.24, 0.1, 0.36]).subdivide(), [x * 0.2, 0.05, 0.05])),
        ]  # fmt: skip
    assert all(isinstance(p.mesh, trimesh.Trimesh) for p in pieces)
    return pieces


def _fine_names(piece: _Piece) -> list[str]:
    """Fine part name of every face of one piece (arms are split at the elbow)."""
    n = len(piece.mesh.faces)
    if not piece.node.startswith("arm_"):
        return [piece.fine] * n
    side = piece.node.split("_")[1]
    centroid_y = piece.mesh.triangles_center[:, 1]
    return [f"{side} upper arm" if y > _ELBOW_Y else f"{side} forearm" for y in centroid_y]


def demo_shape() -> Shape:
    """The toy robot as a :class:`Shape` (rebuilt on each call, 4352 faces).

    ``face_colors`` follow the fine parts, ``face_node`` / ``node_names`` name the
    15 primitives (``head``, ``eye_left``, ..., ``arm_left`` ...), ``source`` is "demo".
    """
    pieces = _pieces()
    vertices, faces, nodes, colors = [], [], [], []
    offset = 0
    for i, piece in enumerate(pieces):
        vertices.append(np.asarray(piece.mesh.vertices, dtype=np.float64))
        faces.append(np.asarray(piece.mesh.faces, dtype=np.int64) + offset)
        offset += len(piece.mesh.vertices)
        nodes.append(np.full(len(piece.mesh.faces), i, dtype=np.int32))
        colors.append(np.array([_COLORS[name] for name in _fine_names(piece)], dtype=np.uint8))
    return Shape(
        vertices=np.concatenate(vertices),
        faces=np.concatenate(faces),
        face_colors=np.concatenate(colors),
        face_node=np.concatenate(nodes),
        node_names=tuple(p.node for p in pieces),
        source="demo",
    )


def demo_part_labels() -> dict[str, np.ndarray]:
    """Ground-truth part of every face of :func:`demo_shape`.

    Returns:
        ``{"coarse": (F,) int64 index into COARSE_PARTS, "fine": (F,) int64 index into FINE_PARTS}``.
    """
    coarse, fine = [], []
    for piece in _pieces():
        names = _fine_names(piece)
        coarse.append(np.full(len(names), COARSE_PARTS.index(piece.coarse), dtype=np.int64))
        fine.append(np.array([FINE_PARTS.index(n) for n in names], dtype=np.int64))
    return {"coarse": np.concatenate(coarse), "fine": np.concatenate(fine)}


def demo_part_names() -> dict[str, tuple[str, ...]]:
    """Names of the labels returned by :func:`demo_part_labels`, per level."""
    return {"coarse": COARSE_PARTS, "fine": FINE_PARTS}
