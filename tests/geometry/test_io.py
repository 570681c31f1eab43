"""Round trips of every supported format, scene flattening order, and bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from crossdistill.errors import InputError
from crossdistill.geometry.io import SUPPORTED_SUFFIXES, load_shape, save_point_cloud, validate_shape
from crossdistill.geometry.pcd import lzf_decompress
from crossdistill.types import Shape

RNG = np.random.default_rng(0)


def _box(vertex_colors: bool = False, face_colors: bool = False) -> trimesh.Trimesh:
    mesh = trimesh.creation.box([1.0, 2.0, 3.0])
    if vertex_colors:
        mesh.visual.vertex_colors = np.c_[RNG.integers(0, 256, (8, 3)), np.full(8, 255)].astype(np.uint8)
    if face_colors:
        mesh.visual.face_colors = np.c_[RNG.integers(0, 256, (12, 3)), np.full(12, 255)].astype(np.uint8)
    return mesh


def _cloud(n: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = RNG.normal(size=(n, 3))
    nrm = RNG.normal(size=(n, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    rgb = RNG.integers(0, 256, (n, 3)).astype(np.uint8)
    return pts, nrm, rgb


def _quad_texture() -> tuple[np.ndarray, np.ndarray, np.ndarray, Image.Image]:
    """A unit quad of 2 faces; face 0's UV centroid lies in the blue half, face 1's in the red."""
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    uv = v[:, :2].copy()
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = [255, 0, 0]
    img[:, 4:] = [0, 0, 255]
    return v, f, uv, Image.fromarray(img)


# ----------------------------------------------------------------------------- meshes


@pytest.mark.parametrize("suffix", [".ply", ".stl", ".off", ".obj", ".glb", ".gltf", ".GLB"])
def test_mesh_geometry_round_trip(tmp_path: Path, suffix: str) -> None:
    mesh = trimesh.creation.icosphere(1)
    path = tmp_path / f"m{suffix}"
    mesh.export(path)
    shape = load_shape(path)
    ref = trimesh.load(path, force="mesh", process=False)
    assert shape.is_mesh and shape.source == str(path)
    np.testing.assert_array_equal(shape.faces, ref.faces)
    np.testing.assert_allclose(shape.vertices, ref.vertices)
    assert shape.faces.dtype == np.int64 and shape.vertices.dtype == np.float64
    # same surface as written (STL unmerges vertices, so compare triangles)
    np.testing.assert_allclose(shape.triangles, mesh.triangles, atol=1e-6)


def test_ply_face_colors_round_trip(tmp_path: Path) -> None:
    mesh = _box(face_colors=True)
    mesh.export(tmp_path / "b.ply")
    shape = load_shape(tmp_path / "b.ply")
    np.testing.assert_array_equal(shape.face_colors, mesh.visual.face_colors[:, :3])
    assert shape.vertex_colors is None and shape.vertex_normals is None


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_vertex_colors_round_trip(tmp_path: Path, suffix: str) -> None:
    mesh = _box(vertex_colors=True)
    mesh.export(tmp_path / f"b{suffix}")
    shape = load_shape(tmp_path / f"b{suffix}")
    np.testing.assert_array_equal(shape.faces, mesh.faces)
    np.testing.assert_array_equal(shape.vertex_colors, mesh.visual.vertex_colors[:, :3])
    assert shape.face_colors is None


def test_obj_texture_gives_face_colors(tmp_path: Path) -> None:
    v, f, uv, image = _quad_texture()
    visual = trimesh.visual.TextureVisuals(uv=uv, material=trimesh.visual.material.SimpleMaterial(image=image))
    trimesh.Trimesh(v, f, visual=visual, process=False).export(tmp_path / "q.obj")
    assert (tmp_path / "q.obj").exists() and any(p.suffix == ".mtl" for p in tmp_path.iterdir())
    shape = load_shape(tmp_path / "q.obj")
    np.testing.assert_array_equal(shape.face_colors, [[0, 0, 255], [255, 0, 0]])


def test_glb_scene_flattening_matches_trimesh(tmp_path: Path) -> None:
    """Several nodes, an instanced geometry, a mirroring transform, mixed visuals."""
    v, f, uv, image = _quad_texture()
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image, baseColorFactor=[255, 255, 255, 255])
    quad = trimesh.Trimesh(v, f, visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    scene = trimesh.Scene()
    scene.add_geometry(_box(vertex_colors=True), node_name="body", geom_name="box",
                       transform=trimesh.transformations.translation_matrix([3, 0, 0]))
    scene.add_geometry(quad, node_name="label", geom_name="quad")
    sphere = trimesh.creation.icosphere(1)
    scene.add_geometry(sphere, node_name="ball_a", geom_name="ball")
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    mirror[:3, 3] = [0, 5, 0]
    scene.add_geometry(sphere, node_name="ball_b", geom_name="ball", transform=mirror)  # instance
    path = tmp_path / "scene.glb"
    scene.export(path)

    shape = load_shape(path)
    ref = trimesh.load(path, force="mesh", process=False)
    np.testing.assert_array_equal(shape.faces, ref.faces)
    np.testing.assert_allclose(shape.vertices, ref.vertices)
    loaded = trimesh.load_scene(path, process=False)
    assert list(shape.node_names) == list(loaded.graph.nodes_geometry)
    assert set(shape.node_names) == {"body", "label", "ball_a", "ball_b"}
    counts = {name: int((shape.face_node == i).sum()) for i, name in enumerate(shape.node_names)}
    assert counts == {"body": 12, "label": 2, "ball_a": 80, "ball_b": 80}
    # mixed visuals -> face colours: texture on the quad, grey-free box colours
    label = shape.face_node == shape.node_names.index("label")
    np.testing.assert_array_equal(shape.face_colors[label], [[0, 0, 255], [255, 0, 0]])
    assert shape.vertex_colors is None


@pytest.mark.shared_data
def test_shared_glb_face_order_matches_trimesh(shared_data: Path) -> None:
    paths = sorted((shared_data / "partnet_mobility_dev").glob("*/*.glb"))[:4]
    assert paths, "no GLB in shared data"
    for path in paths:
        before = path.read_bytes()
        shape = load_shape(path)
        ref = trimesh.load(path, force="mesh", process=False)
        np.testing.assert_array_equal(shape.faces, ref.faces)
        np.testing.assert_array_equal(shape.vertices, ref.vertices)
        labels = np.load(path.with_name(path.stem + ".labels.npz"))
        assert len(labels["face_leaf"]) == shape.n_faces
        assert shape.vertex_colors is not None and shape.vertex_colors.shape == (shape.n_vertices, 3)
        assert path.read_bytes() == before  # input untouched


@pytest.mark.shared_data
def test_shared_point_ply(shared_data: Path) -> None:
    path = sorted((shared_data / "partnet_mobility_dev_points").glob("*/*.ply"))[0]
    shape = load_shape(path)
    assert not shape.is_mesh and shape.vertices.shape == (15000, 3)
    assert shape.vertex_normals.shape == (15000, 3) and shape.vertex_colors.dtype == np.uint8


# ----------------------------------------------------------------------------- point clouds


@pytest.mark.parametrize("with_normals,with_colors", [(True, True), (False, True), (True, False), (False, False)])
def test_save_point_cloud_round_trip(tmp_path: Path, with_normals: bool, with_colors: bool) -> None:
    pts, nrm, rgb = _cloud()
    path = save_point_cloud(tmp_path / "p.ply", pts, nrm if with_normals else None, rgb if with_colors else None)
    assert [p.name for p in tmp_path.iterdir()] == ["p.ply"]  # no temp file left
    shape = load_shape(path)
    assert not shape.is_mesh
    np.testing.assert_allclose(shape.vertices, pts, atol=1e-6)
    if with_normals:
        np.testing.assert_allclose(shape.vertex_normals, nrm, atol=1e-6)
    else:
        assert shape.vertex_normals is None
    if with_colors:
        np.testing.assert_array_equal(shape.vertex_colors, rgb)
    else:
        assert shape.vertex_colors is None
    ref = trimesh.load(path)  # trimesh reads our writer's output too
    np.testing.assert_allclose(ref.vertices, pts, atol=1e-6)


def test_trimesh_point_ply(tmp_path: Path) -> None:
    pts, _, rgb = _cloud()
    trimesh.PointCloud(pts, colors=rgb).export(tmp_path / "p.ply", encoding="ascii")
    shape = load_shape(tmp_path / "p.ply")
    np.testing.assert_allclose(shape.vertices, pts, atol=1e-5)
    np.testing.assert_array_equal(shape.vertex_colors, rgb)


def _write_pcd(path: Path, pts: np.ndarray, nrm: np.ndarray, rgb: np.ndarray, binary: bool) -> None:
    packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        "FIELDS x y z normal_x normal_y normal_z rgb\nSIZE 4 4 4 4 4 4 4\nTYPE F F F F F F F\n"
        f"COUNT 1 1 1 1 1 1 1\nWIDTH {len(pts)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\n"
        f"DATA {'binary' if binary else 'ascii'}\n"
    )
    rec = np.empty(len(pts), dtype=[("p", "<f4", 3), ("n", "<f4", 3), ("c", "<u4")])
    rec["p"], rec["n"], rec["c"] = pts, nrm, packed
    with open(path, "wb") as fh:
        fh.write(header.encode())
        if binary:
            fh.write(rec.tobytes())
        else:
            rgb_float = packed.view(np.float32)
            for p, n, c in zip(rec["p"], rec["n"], rgb_float):
                fh.write((" ".join(f"{x:.9g}" for x in [*p, *n]) + f" {c:.9g}\n").encode())


@pytest.mark.parametrize("binary", [False, True])
def test_pcd_round_trip(tmp_path: Path, binary: bool) -> None:
    pts, nrm, rgb = _cloud()
    _write_pcd(tmp_path / "c.PCD", pts, nrm, rgb, binary)  # upper-case suffix on purpose
    shape = load_shape(tmp_path / "c.PCD")
    np.testing.assert_allclose(shape.vertices, pts, atol=1e-6)
    np.testing.assert_allclose(shape.vertex_normals, nrm, atol=1e-6)
    np.testing.assert_array_equal(shape.vertex_colors, rgb)


def test_pcd_binary_compressed_from_open3d(tmp_path: Path) -> None:
    o3d = pytest.importorskip("open3d", reason="open3d writes the binary_compressed PCD fixture", exc_type=ImportError)
    pts, nrm, rgb = _cloud(2000)
    pts = np.round(pts, 2)  # repeated byte patterns so LZF emits back references
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    cloud.normals = o3d.utility.Vector3dVector(nrm)
    cloud.colors = o3d.utility.Vector3dVector(rgb / 255.0)
    path = tmp_path / "c.pcd"
    assert o3d.io.write_point_cloud(str(path), cloud, write_ascii=False, compressed=True)
    assert b"binary_compressed" in path.read_bytes()[:400]
    shape = load_shape(path)
    np.testing.assert_allclose(shape.vertices, pts, atol=1e-6)
    np.testing.assert_allclose(shape.vertex_normals, nrm, atol=1e-6)
    np.testing.assert_array_equal(shape.vertex_colors, rgb)


def test_lzf_back_reference() -> None:
    # literal "ab", then copy 6 bytes from distance 2 (overlapping run)
    assert lzf_decompress(bytes([1, ord("a"), ord("b"), 0x80, 0x01]), 8) == b"abababab"
    with pytest.raises(ValueError):
        lzf_decompress(bytes([1, ord("a"), ord("b")]), 5)


@pytest.mark.parametrize("width", [3, 6, 9])
def test_npy_round_trip(tmp_path: Path, width: int) -> None:
    pts, nrm, rgb = _cloud()
    arr = np.concatenate([pts, nrm, rgb / 255.0], axis=1)[:, :width]
    np.save(tmp_path / "c.npy", arr)
    shape = load_shape(tmp_path / "c.npy")
    np.testing.assert_allclose(shape.vertices, pts)
    if width >= 6:
        np.testing.assert_allclose(shape.vertex_normals, nrm)
    if width == 9:
        np.testing.assert_array_equal(shape.vertex_colors, rgb)


def test_npy_xyz_rgb_is_rejected_with_hint(tmp_path: Path) -> None:
    pts, _, rgb = _cloud()
    np.save(tmp_path / "c.npy", np.concatenate([pts, rgb.astype(float)], axis=1))
    with pytest.raises(InputError, match="npz"):
        load_shape(tmp_path / "c.npy")


@pytest.mark.parametrize("key", ["points", "xyz"])
def test_npz_round_trip(tmp_path: Path, key: str) -> None:
    pts, nrm, rgb = _cloud()
    np.savez(tmp_path / "c.npz", **{key: pts, "normals": nrm, "colors": rgb})
    shape = load_shape(tmp_path / "c.npz")
    np.testing.assert_allclose(shape.vertices, pts)
    np.testing.assert_allclose(shape.vertex_normals, nrm)
    np.testing.assert_array_equal(shape.vertex_colors, rgb)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_round_trip(tmp_path: Path, suffix: str) -> None:
    laspy = pytest.importorskip("laspy")
    pts, _, rgb = _cloud()
    header = laspy.LasHeader(point_format=2, version="1.2")
    header.scales = np.array([1e-4, 1e-4, 1e-4])
    header.offsets = np.zeros(3)
    las = laspy.LasData(header)
    las.x, las.y, las.z = pts[:, 0], pts[:, 1], pts[:, 2]
    las.red, las.green, las.blue = (rgb.astype(np.uint16) * 257).T
    las.write(str(tmp_path / f"c{suffix}"))
    shape = load_shape(tmp_path / f"c{suffix}")
    np.testing.assert_allclose(shape.vertices, pts, atol=1e-4)
    np.testing.assert_array_equal(shape.vertex_colors, rgb)


# ----------------------------------------------------------------------------- bad inputs


def _raises_one_line(path: Path, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        load_shape(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message


def test_missing_file(tmp_path: Path) -> None:
    _raises_one_line(tmp_path / "nope.glb", "not found")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.obj").write_bytes(b"")
    _raises_one_line(tmp_path / "e.obj", "empty")


@pytest.mark.parametrize("suffix", [".glb", ".ply", ".off", ".pcd", ".npy", ".npz", ".las"])
def test_garbage_bytes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"g{suffix}"
    path.write_bytes(os.urandom(300))
    _raises_one_line(path, "cannot read|no faces|not a valid")


def test_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "x.xyz").write_text("0 0 0\n")
    _raises_one_line(tmp_path / "x.xyz", "unsupported file type")
    assert ".glb" in SUPPORTED_SUFFIXES


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "d.glb").mkdir()
    _raises_one_line(tmp_path / "d.glb", "not a regular file")


def test_file_without_geometry(tmp_path: Path) -> None:
    (tmp_path / "z.stl").write_text("solid empty\nendsolid empty\n")
    _raises_one_line(tmp_path / "z.stl", "no faces and no points")


def test_nan_points(tmp_path: Path) -> None:
    pts = RNG.normal(size=(10, 3))
    pts[3, 1] = np.nan
    np.save(tmp_path / "n.npy", pts)
    _raises_one_line(tmp_path / "n.npy", "NaN")


def test_identical_points(tmp_path: Path) -> None:
    np.save(tmp_path / "same.npy", np.ones((10, 3)))
    _raises_one_line(tmp_path / "same.npy", "identical")


def test_zero_area_mesh(tmp_path: Path) -> None:
    (tmp_path / "flat.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")
    _raises_one_line(tmp_path / "flat.off", "zero area")


def test_npz_without_points(tmp_path: Path) -> None:
    np.savez(tmp_path / "k.npz", foo=np.zeros((3, 3)))
    _raises_one_line(tmp_path / "k.npz", "'points' or 'xyz'")


@pytest.mark.parametrize(
    "shape,match",
    [
        (Shape(vertices=np.zeros((0, 3))), "no vertices"),
        (Shape(vertices=np.eye(3), faces=np.zeros((0, 3), dtype=np.int64)), "zero faces"),
        (Shape(vertices=np.eye(3), faces=np.array([[0, 1, 3]])), "out of range"),
        (Shape(vertices=np.array([[np.inf, 0, 0], [0, 1, 0], [0, 0, 1]]), faces=np.array([[0, 1, 2]])), "NaN"),
        (Shape(vertices=np.ones((4, 3))), "identical"),
        (Shape(vertices=np.eye(3), faces=np.array([[0, 1, 2]]), face_colors=np.zeros((2, 3), np.uint8)),
         "face_colors"),
    ],
)
def test_validate_shape(shape: Shape, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        validate_shape(shape, "thing.glb")
    assert "\n" not in str(info.value) and str(info.value).startswith("thing.glb: ")


def test_validate_accepts_good_shape() -> None:
    good = Shape(vertices=np.eye(3), faces=np.array([[0, 1, 2]]))
    assert validate_shape(good) is good
