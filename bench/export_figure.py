"""The README's export picture: a textured input, and its parts opened back from ``parts.glb``.

Builds a small textured scene (a table whose top carries a wood-stripe texture, four instanced
legs, a red metal ball and a textured crate; five scene nodes), segments it with
``crossdistill segment`` at a small CPU budget, opens ``scale_<s>/parts.glb`` with trimesh and
moves every part node out from the object's centre along its own pivot (the pivots are node
transforms at the part centres), and renders both with the project's renderer
(:func:`crossdistill.render.render_shape`, textures sampled per face). Writes
``docs/figures/export_parts.png`` (and the inputs / outputs under ``bench/_cache/export_figure``).

Run: ``python bench/export_figure.py`` (about 20 s on a laptop CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_cache" / "export_figure"
OUT = ROOT / "docs" / "figures" / "export_parts.png"
SCALE = "scale_1.0"


def _stripes(size: int = 128) -> Image.Image:
    """A wood-like stripe texture (RGB)."""
    x = np.linspace(0, 1, size)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (9 * x[None, :] + 0.6 * np.sin(2 * np.pi * 2 * x[:, None])))
    base = np.array([150, 95, 45])[None, None] * (0.7 + 0.3 * grain[..., None])
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _checker(size: int = 64) -> Image.Image:
    cells = (np.indices((size, size)) // 8).sum(0) % 2
    return Image.fromarray(np.where(cells[..., None] == 1, [210, 170, 90], [120, 70, 30]).astype(np.uint8))


def _grid_box(extents, n: int) -> trimesh.Trimesh:
    """A box whose faces are subdivided so a texture shows through per-face sampling; planar UVs."""
    box = trimesh.creation.box(extents=extents)
    for _ in range(n):
        box = box.subdivide()
    mesh = trimesh.Trimesh(box.vertices, box.faces, process=False)
    lo, hi = mesh.bounds
    uv = (mesh.vertices[:, [0, 2]] - lo[[0, 2]]) / (hi - lo)[[0, 2]]
    return mesh, uv


def build_scene(path: Path) -> Path:
    from trimesh.visual.material import PBRMaterial
    from trimesh.visual.texture import TextureVisuals

    scene = trimesh.Scene()
    top, uv = _grid_box((2.0, 0.12, 1.1), 4)
    top.visual = TextureVisuals(uv=uv, material=PBRMaterial(name="oak", baseColorTexture=_stripes()))
    scene.add_geometry(top, node_name="table_top", geom_name="top_mesh",
                       transform=trimesh.transformations.translation_matrix((0, 0.96, 0)))
    leg = trimesh.creation.cylinder(radius=0.06, height=0.9, sections=16)
    leg.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    leg.visual = TextureVisuals(material=PBRMaterial(name="steel", baseColorFactor=[90, 90, 100, 255],
                                                     metallicFactor=1.0))
    for i, (x, z) in enumerate([(-0.85, -0.42), (0.85, -0.42), (-0.85, 0.42), (0.85, 0.42)]):
        T = trimesh.transformations.translation_matrix((x, 0.45, z))
        if i == 0:
            scene.add_geometry(leg, node_name="leg_0", geom_name="leg_mesh", transform=T)
        else:
            scene.graph.update(frame_to=f"leg_{i}", frame_from=scene.graph.base_frame, matrix=T, geometry="leg_mesh")
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.22)
    ball.visual = TextureVisuals(material=PBRMaterial(name="red_metal", baseColorFactor=[200, 30, 25, 255],
                                                      metallicFactor=1.0, roughnessFactor=0.3))
    scene.add_geometry(ball, node_name="ball", geom_name="ball_mesh",
                       transform=trimesh.transformations.translation_matrix((0.55, 1.24, 0.1)))
    crate, cuv = _grid_box((0.5, 0.4, 0.45), 3)
    crate.visual = TextureVisuals(uv=cuv, material=PBRMaterial(name="crate_wood", baseColorTexture=_checker()))
    scene.add_geometry(crate, node_name="crate", geom_name="crate_mesh",
                       transform=trimesh.transformations.translation_matrix((-0.5, 1.22, -0.1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    scene.export(path)
    return path


def exploded(parts_glb: Path, factor: float = 0.18):
    """The parts of ``parts_glb`` as one Shape, the largest part in place and every other part moved ``factor``
    x the object's diagonal away from the largest part's pivot, towards its own pivot (its node transform)."""
    from crossdistill.geometry.io import load_shape

    scene = trimesh.load_scene(parts_glb, process=False)
    shape = load_shape(parts_glb)  # the same flattening, with texture colours per face
    pivots, centre = {}, 0.5 * (shape.vertices.min(0) + shape.vertices.max(0))
    parents = scene.graph.transforms.parents
    for node in scene.graph.nodes_geometry:
        top = node
        while parents.get(top) not in (None, scene.graph.base_frame):
            top = parents[top]
        pivots[node] = scene.graph.get(top)[0][:3, 3]
    names = np.asarray(shape.node_names)
    area = np.bincount(shape.face_node, weights=shape.face_areas, minlength=len(names))
    centre = pivots[names[int(np.argmax(area))]]
    shift = np.zeros_like(shape.vertices)
    diagonal = float(np.linalg.norm(shape.vertices.max(0) - shape.vertices.min(0)))
    for i, name in enumerate(names):
        verts = np.unique(shape.faces[shape.face_node == i])
        away = pivots[name] - centre
        if np.linalg.norm(away) < 1e-9:
            continue
        shift[verts] = factor * diagonal * away / max(float(np.linalg.norm(away)), 1e-9)
    return shape.with_vertices(shape.vertices + shift)


def picture(shape, size: int = 420) -> np.ndarray:
    """(size, size, 3) uint8 three-quarter view of ``shape`` in its own colours, filling the picture."""
    from crossdistill.viz.principal import crop_to_object, principal_views

    views, _ = principal_views(shape, size=size)  # the project's renderer, from the principal axes
    return crop_to_object(views.rgb[2], views.foreground[2], size)  # the three-quarter view


def main() -> int:
    from crossdistill.cli.main import main as cli
    from crossdistill.geometry.io import load_shape

    src = build_scene(WORK / "table.glb")
    out = WORK / "out"
    code = cli(["segment", str(src), "-o", str(out), "--points", "6000", "--views", "16", "--size", "160",
                "--iterations", "300", "--scales", "1", "--teacher", "offline", "--quiet"])
    if code != 0:
        return code
    parts = out / "table" / SCALE / "parts.glb"
    before, after = picture(load_shape(src)), picture(exploded(parts))
    n_parts = len(trimesh.load_scene(parts, process=False).graph.nodes_geometry)
    W = before.shape[1]
    canvas = Image.new("RGB", (2 * W + 20, before.shape[0] + 28), "white")
    canvas.paste(Image.fromarray(before), (0, 28))
    canvas.paste(Image.fromarray(after), (W + 20, 28))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 8), "input: table.glb (textures, 5 nodes, instanced legs)", fill=(0, 0, 0))
    draw.text((W + 28, 8), f"{SCALE}/parts.glb opened: {n_parts} part meshes, moved along their pivots",
              fill=(0, 0, 0))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    from crossdistill.io_utils import save_image

    save_image(OUT, canvas)
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
