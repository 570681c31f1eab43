"""The bad-input corpus: every kind of broken or odd input the commands must survive, written by code.

Nothing here is a committed binary: :func:`build` writes each case into its own folder
under a root (the tests use a temporary folder) and returns what each case is, which
commands read it, and what they must say.

* ``bad`` cases must be refused: exit code 2, one line on stderr matching ``expect``, no
  traceback, nothing written, the input unchanged.
* ``odd`` cases are legitimate but unusual (one triangle, quads, a path with spaces and
  unicode, coordinates at 1e9): handled (exit 0) or refused as a bad one is, never a crash.

Add a kind by writing one ``_case_*`` function and listing it in :data:`BUILDERS`.

Usage: ``python tests/data/make_bad_inputs.py OUT_DIR`` writes the corpus and lists it.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Which commands read which kind of input.
SHAPE_COMMANDS = ("info", "segment", "render", "predict")
IMAGE_COMMANDS = ("discover",)
LIDAR_COMMANDS = ("lidar",)
SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".pcd", ".npy", ".npz", ".las", ".laz")


@dataclass(frozen=True)
class Case:
    """One corpus entry.

    Attributes:
        name: unique id (also its folder under the corpus root).
        target: path, relative to the case folder, given to the commands (may not exist).
        commands: which commands read it (keys of the tests' command table).
        expect: regex the error line must match (``bad``), or that a refusal must match (``odd``; "" = any).
        kind: "bad" or "odd".
        canary: a path (relative to the case folder) that must never exist: unpickling the input would create it.
        needs_non_root: the case only means something when not running as root (permissions).
    """

    name: str
    target: str
    commands: tuple[str, ...]
    expect: str
    kind: str = "bad"
    canary: str | None = None
    needs_non_root: bool = False


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _box_glb() -> bytes:
    import trimesh

    return trimesh.creation.box().export(file_type="glb")


def _npy_bytes(header: dict, payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


class _Canary:
    """Unpickling this creates a file: proof that an input was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _png(width: int, height: int, body: bytes | None = None) -> bytes:
    """A PNG with an RGB header of the given size; ``body`` is its (zlib) pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = body if body is not None else zlib.compress(b"".join(b"\x00" + b"\xff" * 3 * width for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _las_header(count: int, version=(1, 2), fmt: int = 0, rec_len: int = 20, extra: int = 100) -> bytes:
    """A LAS public header (227 bytes) claiming ``count`` points, followed by ``extra`` bytes of data."""
    head = bytearray(227)
    head[:4] = b"LASF"
    head[24], head[25] = version
    struct.pack_into("<HIIBHI", head, 94, 227, 227, 0, fmt, rec_len, count)
    struct.pack_into("<3d", head, 131, 0.01, 0.01, 0.01)
    return bytes(head) + b"\x00" * extra


# ------------------------------------------------------------------------------- shapes
def _case_missing(root: Path) -> list[Case]:
    return [Case("missing_path", "nope.glb", SHAPE_COMMANDS, r"not found")]


def _case_empty_folder(root: Path) -> list[Case]:
    (root / "empty_folder" / "in").mkdir(parents=True)
    return [Case("empty_folder", "in", ("segment",), r"no mesh or point-cloud files")]


def _case_zero_byte(root: Path) -> list[Case]:
    out = []
    for suffix in SUFFIXES:
        name = f"zero_byte{suffix.replace('.', '_')}"
        _write(root / name / f"empty{suffix}", b"")
        out.append(Case(name, f"empty{suffix}", SHAPE_COMMANDS, r"empty \(0 bytes\)"))
    return out


def _case_glb(root: Path) -> list[Case]:
    glb = _box_glb()
    _write(root / "truncated_glb" / "cut.glb", glb[: len(glb) // 2])
    _write(root / "garbage_glb" / "junk.glb", b"glTF" + _rng(1).bytes(400))
    return [Case("truncated_glb", "cut.glb", SHAPE_COMMANDS, r"cut\.glb: cannot read as GLB"),
            Case("garbage_glb", "junk.glb", SHAPE_COMMANDS, r"junk\.glb: cannot read as GLB")]


def _case_obj_values(root: Path) -> list[Case]:
    tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
    _write(root / "obj_nan" / "nan.obj", tri + "v nan 0 0\nf 1 2 3\nf 1 2 4\n")
    _write(root / "obj_inf" / "inf.obj", tri + "v inf 0 0\nf 1 2 3\nf 1 2 4\n")
    _write(root / "obj_faces_past_vertices" / "past.obj", tri + "f 1 2 99\n")
    _write(root / "zero_area_faces" / "flat.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 1 1 2\n")
    _write(root / "coords_1e300" / "huge.obj", "v 0 0 0\nv 1e300 0 0\nv 0 1e300 0\nf 1 2 3\n")
    return [Case("obj_nan", "nan.obj", SHAPE_COMMANDS, r"NaN or infinite"),
            Case("obj_inf", "inf.obj", SHAPE_COMMANDS, r"NaN or infinite"),
            Case("obj_faces_past_vertices", "past.obj", SHAPE_COMMANDS, r"past\.obj: (cannot read|face indices)"),
            Case("zero_area_faces", "flat.obj", SHAPE_COMMANDS, r"zero area"),
            Case("coords_1e300", "huge.obj", SHAPE_COMMANDS, r"coordinates reach 1e\+300")]


def _case_points(root: Path) -> list[Case]:
    np.save(_write(root / "one_point" / "one.npy", b""), np.zeros((1, 3)))
    np.save(_write(root / "identical_points" / "same.npy", b""), np.ones((50, 3)))
    return [Case("one_point", "one.npy", SHAPE_COMMANDS, r"identical \(zero extent\)"),
            Case("identical_points", "same.npy", SHAPE_COMMANDS, r"identical \(zero extent\)")]


def _case_wrong_content(root: Path) -> list[Case]:
    _write(root / "png_named_obj" / "picture.obj", _png(8, 8))
    _write(root / "random_stl" / "noise.stl", _rng(2).bytes(500))
    _write(root / "random_obj" / "noise.obj", _rng(3).bytes(500))
    _write(root / "stl_count_mismatch" / "liar.stl", b"\x00" * 80 + struct.pack("<I", 10**9) + b"\x00" * 100)
    (root / "folder_named_glb" / "d.glb").mkdir(parents=True)
    return [Case("png_named_obj", "picture.obj", SHAPE_COMMANDS, r"not a valid OBJ file: it holds a PNG image"),
            Case("random_stl", "noise.stl", SHAPE_COMMANDS, r"not a valid STL file"),
            Case("random_obj", "noise.obj", SHAPE_COMMANDS, r"holds binary data"),
            Case("stl_count_mismatch", "liar.stl", SHAPE_COMMANDS, r"not a valid STL file"),
            Case("folder_named_glb", "d.glb", ("info", "render"), r"not a regular file")]


def _case_pickles(root: Path) -> list[Case]:
    out = []
    for suffix in (".npy", ".npz"):
        name = f"pickled{suffix.replace('.', '_')}"
        canary = root / name / "UNPICKLED"
        arr = np.array([_Canary(str(canary))], dtype=object)
        path = _write(root / name / f"evil{suffix}", b"")
        with open(path, "wb") as fh:
            if suffix == ".npy":
                np.save(fh, arr, allow_pickle=True)
            else:
                np.savez(fh, points=arr)
        out.append(Case(name, f"evil{suffix}", SHAPE_COMMANDS, r"pickle|Python objects", canary="UNPICKLED"))
    return out


def _case_headers(root: Path) -> list[Case]:
    _write(root / "random_las" / "noise.las", b"LASF" + _rng(4).bytes(400))
    _write(root / "las_claims_1e9_points" / "liar.las", _las_header(10**9))
    _write(root / "npy_claims_1e9_points" / "liar.npy",
           _npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (10**9, 3)}, b"\x00" * 96))
    n = 800_000  # 19 MB of zeros: deflates about 1000x
    member = _npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (n, 3)}, b"\x00" * (n * 24))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("points.npy", member)
    _write(root / "npz_zip_bomb" / "bomb.npz", buf.getvalue())
    pcd = ("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000\nHEIGHT 1\n"
           "POINTS 1000000\nDATA binary_compressed\n").encode() + struct.pack("<II", 10, 12_000_000) + b"\x00" * 10
    _write(root / "pcd_compressed_claims_12mb" / "liar.pcd", pcd)
    _write(root / "ply_claims_1e9_vertices" / "liar.ply",
           b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\n"
           b"property float y\nproperty float z\nend_header\n" + b"\x00" * 120)
    return [Case("random_las", "noise.las", SHAPE_COMMANDS, r"not a valid LAS/LAZ file"),
            Case("las_claims_1e9_points", "liar.las", SHAPE_COMMANDS, r"claims 1000000000 points"),
            Case("npy_claims_1e9_points", "liar.npy", SHAPE_COMMANDS, r"more than one input may hold"),
            Case("npz_zip_bomb", "bomb.npz", SHAPE_COMMANDS, r"zip bomb"),
            Case("pcd_compressed_claims_12mb", "liar.pcd", SHAPE_COMMANDS, r"compressed block"),
            Case("ply_claims_1e9_vertices", "liar.ply", SHAPE_COMMANDS, r"liar\.ply: cannot read as PLY")]


def _case_unreadable(root: Path) -> list[Case]:
    path = _write(root / "unreadable_file" / "locked.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    path.chmod(0)
    return [Case("unreadable_file", "locked.obj", SHAPE_COMMANDS, r"locked\.obj: cannot read", needs_non_root=True)]


# --------------------------------------------------------------------------- odd shapes
def _case_odd_shapes(root: Path) -> list[Case]:
    import trimesh

    odd = ("info", "segment", "predict")
    tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
    _write(root / "one_triangle" / "tri.obj", tri + "f 1 2 3\n")
    _write(root / "non_manifold" / "fin.obj", tri + "v 0 0 1\nv 0 0 -1\nf 1 2 3\nf 1 2 4\nf 1 2 5\n")
    _write(root / "quads_and_ngons" / "poly.obj",
           "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0.5 1.5 0\nv 0 0 1\nf 1 2 3 4\nf 4 3 5\nf 1 2 6\nf 2 3 5 4 1\n")
    scene = trimesh.Scene()
    for i, shape in enumerate((trimesh.creation.box(), trimesh.creation.icosphere(subdivisions=1))):
        tf = trimesh.transformations.rotation_matrix(0.3 * (i + 1), (0, 0, 1))
        tf[:3, 3] = (2.5 * i, 0, 0)
        scene.add_geometry(shape, node_name=f"part{i}", transform=tf)
    _write(root / "multi_mesh_scene" / "scene.glb", scene.export(file_type="glb"))
    box = trimesh.creation.box()
    _write(root / "coords_1e9_offset" / "far.npy", b"")
    np.save(root / "coords_1e9_offset" / "far.npy", box.sample(400, seed=0) * 5.0 + 1e9)
    tiny = box.copy()
    tiny.vertices *= 1e-9
    _write(root / "coords_1e-9_scale" / "tiny.ply", tiny.export(file_type="ply"))
    _write(root / "unicode_spaces_path" / "my shapes" / "chaise longue ü 椅子.stl", box.export(file_type="stl"))
    gltf = {"asset": {"version": "2.0"}, "images": [{"uri": "missing_texture.png"}]}
    _write(root / "gltf_missing_texture" / "textured.gltf", _gltf_with_texture(gltf))
    line = np.stack([np.linspace(0, 1, 200), np.zeros(200), np.zeros(200)], 1)
    np.save(_write(root / "collinear_points" / "line.npy", b""), line)
    read = ("info", "render", "predict")  # segmenting every odd case costs a second each: the likeliest to break do
    return [Case("one_triangle", "tri.obj", odd, "", kind="odd"),
            Case("non_manifold", "fin.obj", read, "", kind="odd"),
            Case("quads_and_ngons", "poly.obj", read, "", kind="odd"),
            Case("multi_mesh_scene", "scene.glb", odd, "", kind="odd"),
            Case("coords_1e9_offset", "far.npy", odd, "", kind="odd"),
            Case("coords_1e-9_scale", "tiny.ply", read, "", kind="odd"),
            Case("unicode_spaces_path", "my shapes/chaise longue ü 椅子.stl", odd, "", kind="odd"),
            Case("gltf_missing_texture", "textured.gltf", read, "", kind="odd"),
            Case("collinear_points", "line.npy", odd, "", kind="odd")]


def _gltf_with_texture(base: dict) -> str:
    """A one-triangle glTF whose material's texture file is absent."""
    import base64
    import json

    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()
    uv = np.array([[0, 0], [1, 0], [0, 1]], np.float32).tobytes()
    idx = np.array([0, 1, 2], np.uint16).tobytes() + b"\x00\x00"
    blob = pos + uv + idx
    doc = dict(base)
    doc |= {
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
        "textures": [{"source": 0}],
        "buffers": [{"byteLength": len(blob),
                     "uri": "data:application/octet-stream;base64," + base64.b64encode(blob).decode()}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": 36},
                        {"buffer": 0, "byteOffset": 36, "byteLength": 24},
                        {"buffer": 0, "byteOffset": 60, "byteLength": 6}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]},
                      {"bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC2"},
                      {"bufferView": 2, "componentType": 5123, "count": 3, "type": "SCALAR"}],
    }
    return json.dumps(doc)


# ------------------------------------------------------------------------------- images
def _case_images(root: Path) -> list[Case]:
    _write(root / "png_decompression_bomb" / "bomb.png", _png(30000, 30000, zlib.compress(b"")))
    good = _png(16, 16)
    _write(root / "png_truncated" / "cut.png", good[: len(good) // 2])
    _write(root / "text_named_jpg" / "note.jpg", "not an image\n")
    _write(root / "zero_byte_png" / "empty.png", b"")
    return [Case("png_decompression_bomb", "bomb.png", IMAGE_COMMANDS, r"decompression bomb"),
            Case("png_truncated", "cut.png", IMAGE_COMMANDS, r"cut\.png: not a readable image"),
            Case("text_named_jpg", "note.jpg", IMAGE_COMMANDS, r"note\.jpg: not a readable image"),
            Case("zero_byte_png", "empty.png", IMAGE_COMMANDS, r"empty\.png: not a readable image")]


# -------------------------------------------------------------------------------- LiDAR
KITTI_CALIB = {
    "P0": "700 0 320 0 0 700 120 0 0 0 1 0", "P1": "700 0 320 -380 0 700 120 0 0 0 1 0",
    "P2": "700 0 320 45 0 700 120 0 0 0 1 0", "P3": "700 0 320 -340 0 700 120 0 0 0 1 0",
    "R0_rect": "1 0 0 0 1 0 0 0 1",
    "Tr_velo_to_cam": "0 -1 0 0 0 0 -1 0 1 0 0 0", "Tr_imu_to_velo": "1 0 0 0 0 1 0 0 0 0 1 0",
}


def write_kitti_frame(folder: Path, fid: str, seed: int = 0, points: np.ndarray | None = None,
                      calib: dict[str, str] | None = None) -> None:
    """One synthetic KITTI object frame: a car-sized block of points ahead, its 2D box, a 640x240 image."""
    rng = _rng(seed)
    base = folder / "training"
    if points is None:
        ground = np.c_[rng.uniform(2, 40, 3000), rng.uniform(-10, 10, 3000), np.full(3000, -1.6)]
        car = np.c_[rng.uniform(9, 13, 1500), rng.uniform(-1, 1, 1500), rng.uniform(-1.6, 0, 1500)]
        xyz = np.concatenate([ground, car])
        points = np.c_[xyz, rng.uniform(0, 1, len(xyz))].astype(np.float32)
    _write(base / "velodyne" / f"{fid}.bin", np.asarray(points, np.float32).tobytes())
    img = np.full((240, 640, 3), 200, np.uint8)
    img[100:200, 240:400] = (180, 30, 30)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    _write(base / "image_2" / f"{fid}.png", buf.getvalue())
    lines = [f"{k}: {v}" for k, v in (calib or KITTI_CALIB).items()]
    _write(base / "calib" / f"{fid}.txt", "\n".join(lines) + "\n")
    _write(base / "label_2" / f"{fid}.txt", "Car 0.00 0 0.0 240.0 100.0 400.0 200.0 1.6 2.0 4.0 0.0 0.8 11.0 0.0\n")


def _case_lidar(root: Path) -> list[Case]:
    out = []

    def frame(name: str, expect: str, **kw) -> None:
        write_kitti_frame(root / name / "kitti", "000000", **kw)
        out.append(Case(name, "kitti", LIDAR_COMMANDS, expect))

    pts = np.c_[_rng(5).uniform(2, 30, (500, 3)), np.zeros(500)].astype(np.float32)
    nan_pts = pts.copy()
    nan_pts[7, 1] = np.nan
    frame("kitti_nan_in_bin", r"frame 000000: .*1 of 500 records hold NaN", points=nan_pts)
    frame("kitti_all_nan_scan", r"500 of 500 records hold NaN", points=np.full((500, 4), np.nan, np.float32))
    frame("kitti_nan_in_p2", r"P2 holds NaN", calib=KITTI_CALIB | {"P2": "nan 0 320 45 0 700 120 0 0 0 1 0"})
    frame("kitti_zero_p2", r"P2 is singular", calib=KITTI_CALIB | {"P2": " ".join(["0"] * 12)})
    frame("kitti_calib_missing_key", r"calibration lacks \['Tr_velo_to_cam'\]",
          calib={k: v for k, v in KITTI_CALIB.items() if k != "Tr_velo_to_cam"})
    write_kitti_frame(root / "kitti_bin_cut_mid_record" / "kitti", "000000", points=pts)
    cut = root / "kitti_bin_cut_mid_record" / "kitti" / "training" / "velodyne" / "000000.bin"
    cut.write_bytes(cut.read_bytes()[:-6])
    out.append(Case("kitti_bin_cut_mid_record", "kitti", LIDAR_COMMANDS, r"cut mid-record"))
    (root / "kitti_empty_folder" / "kitti").mkdir(parents=True)
    out.append(Case("kitti_empty_folder", "kitti", LIDAR_COMMANDS, r"not found"))
    return out


BUILDERS: tuple[Callable[[Path], list[Case]], ...] = (
    _case_missing, _case_empty_folder, _case_zero_byte, _case_glb, _case_obj_values, _case_points,
    _case_wrong_content, _case_pickles, _case_headers, _case_unreadable, _case_odd_shapes, _case_images,
    _case_lidar,
)


def build(root: Path) -> list[Case]:
    """Write every case under ``root`` (``root/<case name>/...``) and return them."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases = [c for make in BUILDERS for c in make(root)]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    for c in cases:
        (root / c.name).mkdir(parents=True, exist_ok=True)
    return cases


if __name__ == "__main__":  # pragma: no cover - a helper for people, the tests call build()
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    for case in build(target):
        print(f"{case.kind:4} {case.name:32} {case.target:40} {','.join(case.commands)}")
