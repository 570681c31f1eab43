"""Rendering: camera rigs, ray casting / splatting, shading and pixel <-> point correspondence.

Public API::

    from crossdistill.render import render_shape, sampart3d_rig
    result = render_shape(unit_box_shape, sampart3d_rig(36, 512))
    result.views.face_id          # (V, H, W) int32, -1 background
    result.correspondence.point_to_pix   # (V, N) int32 flat pixel or -1

Modules: :mod:`.cameras` (rigs, K / Rt), :mod:`.raycast` (Embree, Open3D, torch
backends), :mod:`.splat` (point clouds), :mod:`.shading`, :mod:`.correspondence`,
:mod:`.renderer` (``render_shape``).
"""

from crossdistill.render.cameras import (axis_rig, cameras_from_matrices, intrinsics, look_at, orbit_rig,
                                         random_rig, rig_from_directions, sampart3d_rig)
from crossdistill.render.correspondence import ViewCorrespondence, build_correspondence, sample_spacing
from crossdistill.render.raycast import (EmbreeRaycaster, Open3DRaycaster, Raycaster, TorchZBuffer, ViewHits,
                                         make_raycaster, pixel_directions_cam, view_positions, view_rays)
from crossdistill.render.renderer import render_shape
from crossdistill.render.splat import PointSplatter

__all__ = [
    "render_shape", "build_correspondence", "sample_spacing", "ViewCorrespondence",
    "look_at", "intrinsics", "axis_rig", "random_rig", "sampart3d_rig", "orbit_rig", "rig_from_directions",
    "cameras_from_matrices",
    "Raycaster", "ViewHits", "EmbreeRaycaster", "Open3DRaycaster", "TorchZBuffer", "make_raycaster",
    "PointSplatter", "pixel_directions_cam", "view_rays", "view_positions",
]
