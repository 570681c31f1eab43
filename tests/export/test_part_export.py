"""Parts exported as an artist gets them: attributes kept, pivots at part centres, input node names,
one file per part, every scale nested in one GLB; round trips through trimesh (and the Khronos
glTF validator when it is installed: `npm install --prefix .tools gltf-validator`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh

from crossdistill.export.part_scene import hierarchy_scene
from crossdistill.export.parts import write_scale_outputs
from crossdistill.export.source import source_meshes
from crossdistill.geometry.io import load_shape
from crossdistill.methods.sampart3d.pipeline import part_hierarchy

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = Path(os.environ.get("CROSSDISTILL_GLTF_VALIDATOR", REPO / ".tools" / "node_modules" / "gltf-validator"))


def edges(scene: trimesh.Scene) -> dict[str, dict]:
    """node -> {"parent", "matrix", "metadata", "geometry"} of a loaded scene."""
    out = {}
    for parent, child, data in scene.graph.to_edgelist():
        out[child] = {"parent": parent, "matrix": np.asarray(data.get("matrix", np.eye(4))),
                      "metadata": data.get("metadata", {}), "geometry": data.get("geometry")}
    return out


def world(scene: trimesh.Scene, node: str) -> np.ndarray:
    return scene.graph.get(node)[0]


def mesh_world(scene: trimesh.Scene, node: str) -> trimesh.Trimesh:
    """The node's mesh moved to world space (normals kept; trimesh's copy drops COLOR_0, so put it back)."""
    src = scene.geometry[scene.graph[node][1]]
    geom = src.copy(include_cache=True)
    for key, value in getattr(src.visual, "vertex_attributes", {}).items():
        geom.visual.vertex_attributes[key] = value
    geom.apply_transform(world(scene, node))
    return geom


def box_centre(points: np.ndarray) -> np.ndarray:
    return 0.5 * (points.min(0) + points.max(0))


def textured_labels(shape) -> np.ndarray:
    """ball, crate: crate split in two by x; ball one part; a part holding 4 faces of each node."""
    node = np.asarray(shape.node_names)[shape.face_node]
    centre_x = shape.triangles.mean(1)[:, 0]
    lab = np.where(node == "crate", np.where(centre_x < -1.0, 0, 1), 2)
    lab[np.flatnonzero(node == "crate")[:4]] = 3
    lab[np.flatnonzero(node == "ball")[:4]] = 3
    return lab


def test_parts_glb_keeps_uvs_materials_normals_colours_and_pivots(tmp_path, textured_glb):
    before = textured_glb.read_bytes()
    shape = load_shape(textured_glb)
    lab = textured_labels(shape)
    write_scale_outputs(tmp_path / "s", shape, lab, scale=1.0)
    assert textured_glb.read_bytes() == before
    assert np.array_equal(np.load(tmp_path / "s" / "labels.npy"), lab)
    out = trimesh.load_scene(tmp_path / "s" / "parts.glb", process=False)
    info = edges(out)
    assert set(info) == {"crate.part_000", "crate.part_001", "ball.part_002", "part_003", "crate.part_003",
                         "ball.part_003"}
    assert info["crate.part_003"]["parent"] == "part_003" and info["ball.part_003"]["parent"] == "part_003"
    assert info["part_003"]["metadata"]["input_nodes"] == ["ball", "crate"]
    raw = trimesh.load_scene(textured_glb, process=False)
    ref = {n: mesh_world(raw, n) for n in ("ball", "crate")}
    first = {n: int(np.flatnonzero(np.asarray(shape.node_names)[shape.face_node] == n)[0]) for n in ("ball", "crate")}
    for k in range(4):
        faces = np.flatnonzero(lab == k)
        centre = box_centre(shape.vertices[np.unique(shape.faces[faces])])
        part_node = {0: "crate.part_000", 1: "crate.part_001", 2: "ball.part_002", 3: "part_003"}[k]
        assert np.allclose(world(out, part_node)[:3, 3], centre, atol=1e-6)  # the pivot: a node transform
        assert np.allclose(world(out, part_node)[:3, :3], np.eye(3))
        assert info[part_node]["metadata"]["part"] == k and info[part_node]["metadata"]["n_faces"] == len(faces)
        for src in ("ball", "crate"):
            mine = faces[np.asarray(shape.node_names)[shape.face_node[faces]] == src]
            node = f"{src}.part_{k:03d}"
            if len(mine) == 0:
                assert node not in info
                continue
            got = mesh_world(out, node)
            assert np.allclose(got.triangles, shape.triangles[mine], atol=1e-5)  # same faces, same order
            local = mine - first[src]
            inp = ref[src]
            material = got.visual.material
            assert material.name == inp.visual.material.name
            if src == "crate":
                assert np.allclose(got.visual.uv[got.faces], inp.visual.uv[inp.faces[local]], atol=1e-6)
                assert np.array_equal(np.asarray(material.baseColorTexture.convert("RGB")),
                                      np.asarray(inp.visual.material.baseColorTexture.convert("RGB")))
            else:
                assert material.metallicFactor == pytest.approx(1.0)
                assert np.array_equal(material.baseColorFactor, inp.visual.material.baseColorFactor)
                colours = got.visual.vertex_attributes["color"][got.faces]
                assert np.array_equal(colours, inp.visual.vertex_attributes["color"][inp.faces[local]])
                # smooth normals survive (the file's, rotated by the input node's transform)
                rot = raw.graph.get("ball")[0][:3, :3]
                expect = raw.geometry["ball_mesh"].vertex_normals @ rot.T
                assert np.allclose(got.vertex_normals[got.faces], expect[inp.faces[local]], atol=1e-5)
    # a texture shared by parts is stored once
    doc = glb_json(tmp_path / "s" / "parts.glb")
    assert len(doc["images"]) == 1 and sorted(m["name"] for m in doc["materials"]) == ["crate_wood", "red_metal"]
    # the colour-coded preview stays separate: every face in its part's colour, input face order
    preview = trimesh.load(tmp_path / "s" / "parts_colored.glb", force="mesh", process=False)
    assert np.allclose(preview.triangles, shape.triangles, atol=1e-5)
    colours = preview.visual.vertex_colors[preview.faces][:, :, :3]
    assert (colours == colours[:, :1]).all()
    assert len({tuple(c) for c in colours[:, 0][lab == 3]}) == 1


def glb_json(path: Path) -> dict:
    data = path.read_bytes()
    n = int.from_bytes(data[12:16], "little")
    return json.loads(data[20:20 + n])


def test_instances_become_parts_at_their_own_places(tmp_path, instanced_glb):
    shape = load_shape(instanced_glb)
    names = np.asarray(shape.node_names)[shape.face_node]
    lab = np.array([{"leg_0": 0, "leg_1": 1, "leg_2": 2, "leg_3": 3}.get(n, 4) for n in names])
    write_scale_outputs(tmp_path / "s", shape, lab, scale=0.5)
    out = trimesh.load_scene(tmp_path / "s" / "parts.glb", process=False)
    centres = []
    for k in range(4):
        node = f"leg_{k}.part_{k:03d}"
        got = mesh_world(out, node)
        assert np.allclose(got.triangles, shape.triangles[lab == k], atol=1e-5)
        centres.append(world(out, node)[:3, 3])
    assert len({tuple(np.round(c, 3)) for c in centres}) == 4  # four legs, four places
    assert np.allclose(mesh_world(out, "top.part_004").triangles, shape.triangles[lab == 4], atol=1e-5)


def test_a_part_across_two_primitives_keeps_both_materials(tmp_path, two_primitives_glb):
    shape = load_shape(two_primitives_glb)
    lab = np.zeros(shape.n_faces, int)
    lab[:6] = 1  # six faces of the first primitive form their own part
    write_scale_outputs(tmp_path / "s", shape, lab, scale=2.0)
    out = trimesh.load_scene(tmp_path / "s" / "parts.glb", process=False)
    info = edges(out)
    assert info["body.part_000"]["parent"] == "part_000" and info["body_2.part_000"]["parent"] == "part_000"
    mats = {n: out.geometry[info[n]["geometry"]].visual.material.name for n in ("body.part_000", "body_2.part_000")}
    assert mats == {"body.part_000": "paint", "body_2.part_000": "chrome"}
    assert "body.part_001" in info and info["body.part_001"]["parent"] == out.graph.base_frame


def test_every_scale_in_one_glb_nested_as_hierarchy_json(tmp_path, textured_glb):
    shape = load_shape(textured_glb)
    fine = textured_labels(shape)
    mid = np.where(fine == 1, 0, fine)          # crate halves joined
    mid = np.unique(mid, return_inverse=True)[1]
    coarse = np.zeros_like(fine)                # everything
    per_scale, scales = [fine, mid, coarse], (0.0, 1.0, 2.0)
    levels = part_hierarchy(per_scale, shape.face_areas)
    scene = hierarchy_scene(source_meshes(shape), shape.vertices, shape.faces, per_scale, scales, levels)
    path = tmp_path / "h.glb"
    scene.export(path)
    out = trimesh.load_scene(path, process=False)
    info = edges(out)
    part_nodes = {(d["metadata"]["scale"], d["metadata"]["part"]): n for n, d in info.items()
                  if "n_faces" in d["metadata"]}
    assert {s for s, _ in part_nodes} == set(scales)
    for i, level in enumerate(levels):
        for k, parent in level["parent"].items():
            assert info[part_nodes[(scales[i], int(k))]]["parent"] == part_nodes[(scales[i + 1], parent)]
    roots = [n for n, d in info.items() if d["parent"] == out.graph.base_frame]
    assert roots == [part_nodes[(2.0, 0)]] and roots[0] == "part_000@2"
    # meshes only at the finest scale: the object appears once, every face exactly once
    tris = np.concatenate([mesh_world(out, n).triangles for n in out.graph.nodes_geometry])
    assert len(tris) == shape.n_faces
    assert all(info[n]["metadata"]["scale"] == 0.0 for n in out.graph.nodes_geometry)
    key = lambda t: np.round(t.reshape(len(t), -1), 4)  # noqa: E731
    assert np.array_equal(np.unique(key(tris), axis=0), np.unique(key(shape.triangles), axis=0))


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_one_file_per_part(tmp_path, textured_glb, fmt):
    shape = load_shape(textured_glb)
    lab = textured_labels(shape)
    write_scale_outputs(tmp_path / "s", shape, lab, scale=1.0, export_parts=fmt)
    folder = tmp_path / "s" / "parts"
    stems = {"crate.part_000", "crate.part_001", "ball.part_002", "part_003"}
    assert {p.stem for p in folder.glob(f"*.{fmt}")} == stems
    for k, stem in enumerate(sorted(stems, key=lambda s: s[-3:])):
        path = folder / f"{stem}.{fmt}"
        faces = np.flatnonzero(lab == k)
        got = trimesh.load(path, force="mesh", process=False)
        assert len(got.faces) == len(faces)
        if fmt == "glb":  # the pivot is a node transform; the mesh sits around it
            scene = trimesh.load_scene(path, process=False)
            top = [n for n, d in edges(scene).items() if d["parent"] == scene.graph.base_frame]
            assert top == [stem]
            centre = box_centre(shape.vertices[np.unique(shape.faces[faces])])
            assert np.allclose(world(scene, stem)[:3, 3], centre, atol=1e-6)
        else:  # no node transforms in OBJ / PLY: world coordinates
            assert np.allclose(np.sort(got.triangles.reshape(-1, 3), axis=0),
                               np.sort(shape.triangles[faces].reshape(-1, 3), axis=0), atol=1e-5)
    crate = trimesh.load(folder / f"crate.part_000.{fmt}", force="mesh", process=False)
    if fmt in ("glb", "obj"):  # the texture travels with the part
        material = crate.visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        assert crate.visual.uv is not None and image is not None and image.size == (16, 16)
    else:
        assert crate.visual.kind == "vertex"  # the texture sampled into vertex colours
    if fmt == "obj":
        assert (folder / "crate.part_000.mtl").is_file()
        assert len(list(folder.glob("crate.part_000_*.png"))) == 1


def test_labels_npy_is_the_face_mask_part_tools_take(tmp_path, textured_glb):
    """HoloPart's recipe: trimesh.load(mesh, force="mesh") + a per-face mask.npy -> one submesh per part."""
    shape = load_shape(textured_glb)
    lab = textured_labels(shape)
    write_scale_outputs(tmp_path / "s", shape, lab, scale=1.0)
    mask = np.load(tmp_path / "s" / "labels.npy")
    mesh = trimesh.load(textured_glb, force="mesh")  # their call, default processing
    assert len(mask) == len(mesh.faces)
    for part_id in np.unique(mask):
        piece = mesh.submesh([mask == part_id], append=True)
        assert np.allclose(piece.area, shape.face_areas[lab == part_id].sum())


def _validate(path: Path) -> dict:
    script = ("const v=require(process.argv[1]);const fs=require('fs');"
              "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])))"
              ".then(r=>console.log(JSON.stringify(r.issues))).catch(e=>{console.error(String(e));process.exit(1)});")
    done = subprocess.run(["node", "-e", script, str(VALIDATOR), str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(shutil.which("node") is None or not VALIDATOR.is_dir(),
                    reason="Khronos glTF validator not installed (npm install --prefix .tools gltf-validator)")
@pytest.mark.parametrize("kind", ["textured", "instanced", "two_primitives"])
def test_khronos_validator_finds_no_error_or_warning(tmp_path, kind, request):
    path = request.getfixturevalue(f"{kind}_glb")
    shape = load_shape(path)
    lab = (shape.triangles.mean(1)[:, 0] > shape.triangles.mean(1)[:, 0].mean()).astype(int)
    fine = np.where(np.arange(shape.n_faces) % 7 == 0, 2, lab)
    write_scale_outputs(tmp_path / "s", shape, fine, scale=0.0, export_parts="glb")
    levels = part_hierarchy([fine, lab], shape.face_areas)
    hierarchy_scene(source_meshes(shape), shape.vertices, shape.faces, [fine, lab], (0.0, 2.0), levels).export(
        tmp_path / "h.glb")
    files = [tmp_path / "s" / "parts.glb", tmp_path / "s" / "parts_colored.glb", tmp_path / "h.glb",
             *sorted((tmp_path / "s" / "parts").glob("*.glb"))]
    for f in files:
        issues = _validate(f)
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, (f.name, issues["messages"][:3])


def test_segment_cli_writes_faithful_parts_and_every_scale(tmp_path, textured_glb, capsys):
    from crossdistill.cli.main import main

    out = tmp_path / "out"
    argv = ["segment", str(textured_glb), "-o", str(out), "--points", "2000", "--views", "8", "--size", "64",
            "--iterations", "30", "--scales", "0", "2", "--export-parts", "obj", "--teacher", "offline"]
    assert main(argv) == 0
    assert "mask teacher: offline render-based masks" in capsys.readouterr().err
    obj = out / "textured"
    shape = load_shape(textured_glb)
    for s in ("scale_0.0", "scale_2.0"):
        lab = np.load(obj / s / "labels.npy")
        scene = trimesh.load_scene(obj / s / "parts.glb", process=False)
        assert all(n.split(".part_")[0] in ("ball", "crate") for n in scene.graph.nodes_geometry)
        assert sum(len(g.faces) for g in scene.geometry.values()) == shape.n_faces
        assert len(list((obj / s / "parts").glob("*.obj"))) == int(lab.max()) + 1
    levels = json.loads((obj / "hierarchy.json").read_text())["levels"]
    nested = trimesh.load_scene(obj / "parts_hierarchy.glb", process=False)
    info = edges(nested)
    for fine, coarse in levels[0]["parent"].items():
        child = next(n for n, d in info.items() if d["metadata"].get("scale") == 0.0
                     and d["metadata"].get("part") == int(fine) and "n_faces" in d["metadata"])
        assert info[info[child]["parent"]]["metadata"]["part"] == coarse
