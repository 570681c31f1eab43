"""Inputs of the export tests, written at test time: a textured two-node GLB, an instanced GLB and a
GLB whose one node holds a mesh of two primitives (two materials), as an artist's tool writes them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image


def checker(size: int = 16) -> Image.Image:
    """A two-colour checker texture (RGB)."""
    cells = (np.indices((size, size)) // 4).sum(0) % 2
    rgb = np.where(cells[..., None] == 1, [200, 150, 60], [90, 40, 10]).astype(np.uint8)
    return Image.fromarray(rgb)


def write_textured(path: Path) -> Path:
    """`crate`: a box with UVs, a checker texture and normals; `ball`: a smooth sphere with the PBR
    material `red_metal` (no texture), normals and vertex colours; both moved by node transforms."""
    from trimesh.visual.material import PBRMaterial
    from trimesh.visual.texture import TextureVisuals

    crate = trimesh.creation.box(extents=(1.0, 0.8, 0.6))
    crate = crate.unmerge_vertices() or crate
    crate = trimesh.Trimesh(crate.vertices, crate.faces, process=False)
    crate.unmerge_vertices()
    rng = np.random.default_rng(0)
    crate.visual = TextureVisuals(uv=rng.random((len(crate.vertices), 2)),
                                  material=PBRMaterial(name="crate_wood", baseColorTexture=checker(),
                                                       roughnessFactor=0.8))
    _ = crate.vertex_normals  # stored in the file
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    ball.visual = TextureVisuals(material=PBRMaterial(name="red_metal", baseColorFactor=[200, 20, 20, 255],
                                                      metallicFactor=1.0, roughnessFactor=0.3))
    ball.visual.vertex_attributes["color"] = np.column_stack(
        [rng.integers(0, 256, (len(ball.vertices), 3)), np.full(len(ball.vertices), 255)]).astype(np.uint8)
    _ = ball.vertex_normals
    scene = trimesh.Scene()
    scene.add_geometry(crate, node_name="crate", geom_name="crate_mesh",
                       transform=trimesh.transformations.translation_matrix((-1.0, 0.3, 0.0)))
    turn = trimesh.transformations.rotation_matrix(0.7, (0, 1, 0))
    turn[:3, 3] = (1.2, 0.4, 0.1)
    scene.add_geometry(ball, node_name="ball", geom_name="ball_mesh", transform=turn)
    scene.export(path)
    return path


def write_instanced(path: Path) -> Path:
    """A table: `top` and one `leg` mesh instanced by four nodes (`leg_0` ... `leg_3`)."""
    top = trimesh.creation.box(extents=(2.0, 0.1, 1.0))
    leg = trimesh.creation.cylinder(radius=0.05, height=0.9, sections=12)
    leg.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    _ = leg.vertex_normals
    scene = trimesh.Scene()
    scene.add_geometry(top, node_name="top", geom_name="top_mesh",
                       transform=trimesh.transformations.translation_matrix((0, 0.95, 0)))
    for i, (x, z) in enumerate([(-0.9, -0.4), (0.9, -0.4), (-0.9, 0.4), (0.9, 0.4)]):
        T = trimesh.transformations.translation_matrix((x, 0.45, z))
        if i == 0:
            scene.add_geometry(leg, node_name="leg_0", geom_name="leg_mesh", transform=T)
        else:
            scene.graph.update(frame_to=f"leg_{i}", frame_from=scene.graph.base_frame, matrix=T,
                               geometry="leg_mesh")
    scene.export(path)
    return path


def write_two_primitives(path: Path) -> Path:
    """A hand-written GLB: node `body` whose one mesh has two primitives (materials `paint`, `chrome`)."""
    a = trimesh.creation.box(extents=(1, 1, 1))
    b = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
    b.apply_translation((0, 0.75, 0))
    blobs, views, accessors, prims = [], [], [], []

    def add(data: np.ndarray, kind: str, ctype: int, target: int) -> int:
        raw = np.ascontiguousarray(data).tobytes()
        offset = sum(len(x) for x in blobs)
        blobs.append(raw + b"\0" * (-len(raw) % 4))
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(raw), "target": target})
        acc = {"bufferView": len(views) - 1, "componentType": ctype, "count": int(len(data)), "type": kind}
        if kind == "VEC3":
            acc["min"], acc["max"] = data.min(0).tolist(), data.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    for mat, m in enumerate((a, b)):
        pos = add(np.asarray(m.vertices, np.float32), "VEC3", 5126, 34962)
        nrm = add(np.asarray(m.vertex_normals, np.float32), "VEC3", 5126, 34962)
        idx = add(np.asarray(m.faces, np.uint32).reshape(-1), "SCALAR", 5125, 34963)
        prims.append({"attributes": {"POSITION": pos, "NORMAL": nrm}, "indices": idx, "material": mat})
    binary = b"".join(blobs)
    doc = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
           "nodes": [{"name": "body", "mesh": 0, "translation": [0.5, 0.0, 0.0]}],
           "meshes": [{"name": "body_mesh", "primitives": prims}],
           "materials": [{"name": "paint", "pbrMetallicRoughness": {"baseColorFactor": [0.1, 0.3, 0.9, 1.0]}},
                         {"name": "chrome", "pbrMetallicRoughness": {"baseColorFactor": [0.8, 0.8, 0.8, 1.0],
                                                                     "metallicFactor": 1.0}}],
           "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(binary)}]}
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)
    return path


@pytest.fixture
def textured_glb(tmp_path) -> Path:
    return write_textured(tmp_path / "textured.glb")


@pytest.fixture
def instanced_glb(tmp_path) -> Path:
    return write_instanced(tmp_path / "instanced.glb")


@pytest.fixture
def two_primitives_glb(tmp_path) -> Path:
    return write_two_primitives(tmp_path / "two_prims.glb")
