"""Core data types shared by every method.

All arrays are numpy arrays; shapes are stated per field. The types are frozen
dataclasses: a stage never mutates its input, it returns a new object.

Conventions
-----------
* World space is the shape's own units unless a :class:`UnitBoxTransform` was applied.
* Cameras follow the OpenCV convention: x right, y down, z forward (into the scene);
  ``world_to_cam`` maps homogeneous world points to camera coordinates; pixel centres
  sit at integer + 0.5, and a flat pixel index is ``y * width + x``.
* ``-1`` marks "nothing" in every index array (background pixel, invisible point,
  unknown label), as PyTorch3D's ``Fragments.pix_to_face`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Shape:
    """A triangle mesh or a point cloud, as loaded.

    Attributes:
        vertices: (V, 3) float64 vertex positions (for a point cloud: the points).
        faces: (F, 3) int64 vertex indices per triangle, or ``None`` for a point cloud.
        face_colors: (F, 3) uint8 colour of each face (textures sampled at the
            face centroid), or ``None``.
        vertex_colors: (V, 3) uint8 colour per vertex / point, or ``None``.
        vertex_normals: (V, 3) float64 unit normals per vertex / point, or ``None``
            (meshes compute face normals on demand, see :attr:`face_normals`).
        face_node: (F,) int32 index into ``node_names`` of the scene node / geometry
            each face came from (GLB/GLTF scenes flattened), or ``None``.
        node_names: names of the scene nodes indexed by ``face_node``.
        source: path the shape was read from ("" when built in code).
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    face_colors: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    vertex_normals: np.ndarray | None = None
    face_node: np.ndarray | None = None
    node_names: tuple[str, ...] = ()
    source: str = ""

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None

    @property
    def n_faces(self) -> int:
        return 0 if self.faces is None else int(len(self.faces))

    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3, 3) float64 corner positions of every face."""
        if self.faces is None:
            raise ValueError("a point cloud has no triangles")
        return self.vertices[self.faces]

    @property
    def face_normals(self) -> np.ndarray:
        """(F, 3) float64 unit face normals (zero for degenerate faces)."""
        tri = self.triangles
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)

    @property
    def face_areas(self) -> np.ndarray:
        """(F,) float64 triangle areas."""
        tri = self.triangles
        return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) float64 axis-aligned min and max corner."""
        return np.stack([self.vertices.min(0), self.vertices.max(0)])

    def with_vertices(self, vertices: np.ndarray) -> "Shape":
        """Copy with new vertex positions (normals are rotated by the caller if needed)."""
        return replace(self, vertices=np.asarray(vertices, dtype=np.float64))


@dataclass(frozen=True)
class UnitBoxTransform:
    """Similarity transform into the unit box: ``x_unit = (x - center) * scale``.

    Maps the shape's bounding box to be centred at the origin with its longest side
    of length 1, so cameras and scales are the same for every object. ``invert``
    returns points to the input's units.

    Attributes:
        center: (3,) float64 bounding-box centre in input units.
        scale: float, 1 / longest bounding-box side.
    """

    center: np.ndarray
    scale: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) input units -> (..., 3) unit box."""
        return (np.asarray(points, dtype=np.float64) - self.center) * self.scale

    def invert(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) unit box -> (..., 3) input units."""
        return np.asarray(points, dtype=np.float64) / self.scale + self.center


@dataclass(frozen=True)
class SurfaceSample:
    """Points sampled on a shape's surface.

    Attributes:
        points: (N, 3) float64 positions.
        normals: (N, 3) float64 unit normals.
        colors: (N, 3) uint8 colours.
        face_id: (N,) int64 face each point lies on (-1 for point clouds, where
            ``source_index`` gives the original point instead).
        barycentric: (N, 3) float64 barycentric coordinates in that face (zeros for
            point clouds).
        source_index: (N,) int64 index of the input point for point clouds (-1 for meshes).
    """

    points: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    face_id: np.ndarray
    barycentric: np.ndarray
    source_index: np.ndarray

    def __len__(self) -> int:
        return int(len(self.points))


@dataclass(frozen=True)
class Cameras:
    """A rig of V pinhole cameras sharing one image size.

    Attributes:
        K: (V, 3, 3) float64 intrinsics (pixels).
        world_to_cam: (V, 4, 4) float64 extrinsics, OpenCV convention.
        width: image width in pixels.
        height: image height in pixels.
        names: one label per view (e.g. "axis+x", "random3", "orbit-el30-az45").
    """

    K: np.ndarray
    world_to_cam: np.ndarray
    width: int
    height: int
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(len(self.K))

    @property
    def cam_to_world(self) -> np.ndarray:
        """(V, 4, 4) float64 inverse extrinsics."""
        return np.linalg.inv(self.world_to_cam)

    @property
    def centers(self) -> np.ndarray:
        """(V, 3) float64 camera centres in world space."""
        return self.cam_to_world[:, :3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points into every view.

        Args:
            points: (N, 3) world positions.

        Returns:
            uv: (V, N, 2) float64 pixel coordinates (x, y), pixel centres at +0.5.
            z: (V, N) float64 camera-space depth (positive in front of the camera).
        """
        p = np.asarray(points, dtype=np.float64)
        cam = np.einsum("vij,nj->vni", self.world_to_cam[:, :3, :3], p) + self.world_to_cam[:, None, :3, 3]
        z = cam[..., 2]
        safe = np.where(np.abs(z) > 1e-12, z, 1e-12)
        pix = np.einsum("vij,vnj->vni", self.K, cam / safe[..., None])
        return pix[..., :2], z

    def subset(self, index: np.ndarray | list[int]) -> "Cameras":
        idx = np.asarray(index, dtype=np.int64)
        names = tuple(self.names[i] for i in idx) if self.names else ()
        return Cameras(self.K[idx], self.world_to_cam[idx], self.width, self.height, names)


@dataclass(frozen=True)
class Views:
    """Rendered buffers of a shape seen by a camera rig.

    Attributes:
        cameras: the rig, V views of H x W pixels.
        face_id: (V, H, W) int32 face hit by each pixel's ray, -1 for background.
            For a point cloud: index of the point splatted at that pixel.
        depth: (V, H, W) float32 camera z-depth of the hit, ``inf`` for background.
        normal: (V, H, W, 3) float32 unit world-space normal facing the camera,
            zeros for background.
        rgb: (V, H, W, 3) uint8 shaded colour (white background).
        is_point_cloud: True when the buffers come from splatted points.
    """

    cameras: Cameras
    face_id: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    rgb: np.ndarray
    is_point_cloud: bool = False

    def __len__(self) -> int:
        return int(len(self.face_id))

    @property
    def foreground(self) -> np.ndarray:
        """(V, H, W) bool pixels that see the shape."""
        return self.face_id >= 0


@dataclass(frozen=True)
class Correspondence:
    """Pixel <-> sampled-point correspondence for V views of H x W pixels, N points.

    Modelled on PyTorch3D's ``Fragments``: index arrays are padded with -1.

    Attributes:
        pix_to_point: (V, H, W) int32 index of the sampled point seen at each pixel
            (the nearest visible sampled point to the pixel's surface hit), -1 for
            background or when no sampled point lies near the hit.
        point_to_pix: (V, N) int32 flat pixel index ``y * W + x`` where each point
            projects when it is visible in that view (inside the image and passing
            the depth test against the rendered depth), -1 otherwise.
        point_depth: (V, N) float32 camera z-depth of each point (any visibility).
        width: W.
        height: H.
    """

    pix_to_point: np.ndarray
    point_to_pix: np.ndarray
    point_depth: np.ndarray
    width: int
    height: int

    @property
    def visible(self) -> np.ndarray:
        """(V, N) bool, point visible in view."""
        return self.point_to_pix >= 0

    def point_pixel_xy(self) -> np.ndarray:
        """(V, N, 2) int32 (x, y) pixel of each point, (-1, -1) when not visible."""
        xy = np.stack([self.point_to_pix % self.width, self.point_to_pix // self.width], axis=-1)
        return np.where(self.visible[..., None], xy, -1).astype(np.int32)


@dataclass(frozen=True)
class RenderResult:
    """Everything one render call produces: buffers, samples and correspondence."""

    views: Views
    samples: SurfaceSample
    correspondence: Correspondence
    meta: dict = field(default_factory=dict)
