"""Tests for crossdistill.eval.benchmarks.

Public formats that are not on this machine are tested with tiny fixtures written in the
documented layout into tmp_path and loaded back; the shared real data (../shared/data)
is tested where present (skipped otherwise, through the ``shared_data`` fixture).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from crossdistill.errors import InputError
from crossdistill.eval import benchmarks as B

# ------------------------------------------------------------------------------ helpers


def write_ply_points(path, xyz, rgb):
    """Binary little-endian PLY: float x y z, uchar red green blue."""
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    rows = np.empty(len(xyz), dt)
    for i, k in enumerate("xyz"):
        rows[k] = xyz[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        rows[k] = rgb[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(xyz)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + rows.tobytes())


def rle_columns(mask):
    """COCO uncompressed RLE counts (column-major, first run = zeros)."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
    return np.diff(np.r_[0, change]).tolist()


def rle_string(counts):
    """pycocotools' rleToString (test-side encoder)."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def write_image(path, h, w, fmt="JPEG"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path, format=fmt)


# ---------------------------------------------------------------------- catalog / roots


def test_catalog_names():
    names = B.list_benchmarks()
    assert names == sorted(names)
    for n in ("partnet_mobility_dev", "partnet_mobility_dev_points", "kitti_sample", "nuscenes_sample",
              "partnete", "shapenetpart", "partobjaverse_tiny", "nuscenes_lidarseg", "semantickitti",
              "kitti_object", "partimagenet", "pascal_part"):
        assert n in names
    with pytest.raises(InputError, match="unknown benchmark"):
        B.get_benchmark("nope")


@pytest.mark.parametrize("name", B.list_benchmarks())
def test_missing_root_is_one_line_input_error(name, tmp_path):
    with pytest.raises(InputError) as info:
        B.get_benchmark(name, root=tmp_path / "absent")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{name}:") and "not found" in msg and "obtain it from" in msg


@pytest.mark.parametrize("name", B.list_benchmarks())
def test_empty_dataset_folder_is_input_error(name, tmp_path):
    cls = B._CATALOG[name][0]
    (tmp_path / cls.folder).mkdir()
    with pytest.raises(InputError) as info:
        B.get_benchmark(name, root=tmp_path).records()
    assert "\n" not in str(info.value)


def test_root_resolution_env_and_explicit(tmp_path, monkeypatch):
    data = tmp_path / "data" / "kitti_object" / "training"
    for sub in ("velodyne", "calib"):
        (data / sub).mkdir(parents=True)
    monkeypatch.setenv(B.DATA_ENV, str(tmp_path / "data"))
    assert B.default_data_root() == tmp_path / "data"
    assert B.get_benchmark("kitti_object").path == tmp_path / "data" / "kitti_object"
    # explicit root wins over the environment, and may be the dataset folder itself
    assert B.get_benchmark("kitti_object", root=tmp_path / "data" / "kitti_object").path == data.parent
    monkeypatch.setenv(B.DATA_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(InputError, match="CROSSDISTILL_DATA"):
        B.get_benchmark("kitti_object")


# -------------------------------------------------------------------- hierarchy helpers

NODES = [{"id": 0, "parent": -1}, {"id": 3, "parent": 0}, {"id": 4, "parent": 3},
         {"id": 5, "parent": 3}, {"id": 6, "parent": 0}, {"id": 7, "parent": 4}]


def test_labels_at_depth_walks_up_from_the_leaf():
    leaf = np.array([7, 5, 6, -1, 7], np.int32)
    assert B.node_depths(NODES) == {0: 0, 3: 1, 4: 2, 5: 2, 6: 1, 7: 3}
    assert B.labels_at_depth(NODES, leaf, 0).tolist() == [0, 0, 0, -1, 0]
    assert B.labels_at_depth(NODES, leaf, 1).tolist() == [3, 3, 6, -1, 3]
    assert B.labels_at_depth(NODES, leaf, 2).tolist() == [4, 5, 6, -1, 4]  # 6 is shallower: kept
    assert B.labels_at_depth(NODES, leaf, 9).tolist() == leaf.tolist()
    assert B.labels_at_depth(NODES, leaf, 1).dtype == np.int32
    with pytest.raises(InputError, match="not a node"):
        B.labels_at_depth(NODES, [42], 1)
    with pytest.raises(InputError, match="cycle"):
        B.node_depths([{"id": 1, "parent": 2}, {"id": 2, "parent": 1}])


# ------------------------------------------------------------------------------ PartNetE


def test_partnete_round_trip(tmp_path):
    root = tmp_path / "PartNetE"
    rng = np.random.default_rng(0)
    (root).mkdir()
    (root / "PartNetE_meta.json").write_text(json.dumps({"Chair": ["arm", "back", "leg", "seat"]}))
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (50, 3)).astype(np.uint8)
    sem = rng.integers(-1, 4, 50)
    ins = rng.integers(-1, 6, 50)
    obj = root / "data" / "test" / "Chair" / "179"
    write_ply_points(obj / "pc.ply", xyz, rgb)
    np.save(obj / "label.npy", {"semantic_seg": sem, "instance_seg": ins}, allow_pickle=True)
    obj2 = root / "data" / "test" / "Chair" / "0042"
    write_ply_points(obj2 / "pc.ply", xyz[:20], rgb[:20])
    np.save(obj2 / "label.npy", sem[:20].astype(np.int32))  # plain array: semantic only

    bench = B.get_benchmark("partnete", root=tmp_path)
    recs = bench.records()
    assert [r.id for r in recs] == ["Chair/0042", "Chair/179"]
    assert recs[1].category == "Chair" and recs[1].meta["part_names"] == ["arm", "back", "leg", "seat"]
    d = bench.load(recs[1])
    np.testing.assert_array_equal(d["shape"].vertices, xyz.astype(np.float64))
    np.testing.assert_array_equal(d["shape"].vertex_colors, rgb)
    np.testing.assert_array_equal(d["semantic"], sem)
    np.testing.assert_array_equal(d["instance"], ins)
    assert d["semantic"].dtype == np.int64 and d["n_parts"] == 4
    d2 = bench.load(recs[0])
    assert "instance" not in d2 and d2["semantic"].tolist() == sem[:20].tolist()

    np.save(obj2 / "label.npy", sem[:19])  # wrong length
    with pytest.raises(InputError, match="expected \\(20,\\)"):
        bench.load(recs[0])


# -------------------------------------------------------------------------- ShapeNetPart


def _shapenetpart(tmp_path):
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    root.mkdir()
    (root / "synsetoffset2category.txt").write_text("Airplane\t02691156\nMug\t03797390\n")
    rng = np.random.default_rng(1)
    shapes = {}
    for synset, sid, parts in (("03797390", "m1", [36, 37]), ("02691156", "a1", [0, 1, 2, 3]),
                               ("02691156", "a2", [0, 1, 2, 3])):
        xyz = rng.normal(size=(30, 3))
        nrm = rng.normal(size=(30, 3))
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        lab = rng.choice(parts, 30)
        (root / synset).mkdir(exist_ok=True)
        np.savetxt(root / synset / f"{sid}.txt", np.c_[xyz, nrm, lab], fmt="%.6f")
        shapes[f"{synset}/{sid}"] = (xyz, nrm, lab)
    split = root / "train_test_split"
    split.mkdir()
    (split / "shuffled_test_file_list.json").write_text(
        json.dumps(["shape_data/03797390/m1", "shape_data/02691156/a1"]))
    (split / "shuffled_train_file_list.json").write_text(json.dumps(["shape_data/02691156/a2"]))
    return root, shapes


def test_shapenetpart_round_trip_and_local_labels(tmp_path):
    root, shapes = _shapenetpart(tmp_path)
    bench = B.get_benchmark("shapenetpart", root=tmp_path)  # split="test"
    recs = bench.records()
    assert [(r.id, r.category) for r in recs] == [("02691156/a1", "Airplane"), ("03797390/m1", "Mug")]
    d = bench.load(recs[1])
    xyz, nrm, lab = shapes["03797390/m1"]
    np.testing.assert_allclose(d["shape"].vertices, xyz, atol=1e-6)
    np.testing.assert_allclose(d["shape"].vertex_normals, nrm, atol=1e-5)
    np.testing.assert_array_equal(d["labels"], lab)
    np.testing.assert_array_equal(d["local_labels"], lab - 36)  # Mug parts 36, 37 -> 0, 1
    assert d["n_parts"] == 2 and set(d["local_labels"].tolist()) <= {0, 1}
    assert [r.id for r in B.ShapeNetPart(root, split="train").records()] == ["02691156/a2"]
    assert len(B.ShapeNetPart(root, split="all").records()) == 3
    # a label outside the category's parts is malformed
    np.savetxt(root / "03797390" / "m1.txt", np.c_[xyz, nrm, np.full(30, 5)], fmt="%.6f")
    with pytest.raises(InputError, match="not in Mug"):
        bench.load(recs[1])


# ---------------------------------------------------------------------- PartObjaverse-Tiny


def test_partobjaverse_tiny_round_trip(tmp_path):
    root = tmp_path / "PartObjaverse-Tiny"
    (root / "PartObjaverse-Tiny_mesh").mkdir(parents=True)
    (root / "PartObjaverse-Tiny_semantic_gt").mkdir()
    (root / "PartObjaverse-Tiny_instance_gt").mkdir()
    (root / "PartObjaverse-Tiny_semantic.json").write_text(
        json.dumps({"Daily-Used": {"uidB": ["lid", "body"], "uidA": ["handle", "body"]}, "Food": {"uidC": ["x"]}}))
    box = trimesh.creation.box()
    n_faces = len(box.faces)
    for uid in ("uidA", "uidB", "uidC"):
        box.export(root / "PartObjaverse-Tiny_mesh" / f"{uid}.glb")
    sem = (np.arange(n_faces) % 2).astype(np.int64)
    ins = np.arange(n_faces) // 3
    np.save(root / "PartObjaverse-Tiny_semantic_gt" / "uidA.npy", sem)
    np.save(root / "PartObjaverse-Tiny_instance_gt" / "uidA.npy", ins)
    np.save(root / "PartObjaverse-Tiny_semantic_gt" / "uidB.npy", sem[:-1])  # wrong length
    bench = B.get_benchmark("partobjaverse_tiny", root=tmp_path)
    recs = bench.records()
    assert [(r.category, r.id) for r in recs] == [("Daily-Used", "uidA"), ("Daily-Used", "uidB"), ("Food", "uidC")]
    d = bench.load(recs[0])
    assert d["shape"].n_faces == n_faces and d["part_names"] == ["handle", "body"]
    np.testing.assert_array_equal(d["semantic"], sem)
    np.testing.assert_array_equal(d["instance"], ins)
    with pytest.raises(InputError, match=f"expected \\({n_faces},\\)"):
        bench.load(recs[1])
    with pytest.raises(InputError, match="not found"):
        bench.load(recs[2])


# ---------------------------------------------------------------------- nuScenes-lidarseg


def test_nuscenes_lidarseg_mapping(tmp_path):
    root = tmp_path / "nuscenes"
    (root / "v1.0-mini").mkdir(parents=True)
    raw = np.arange(32, dtype=np.uint8)
    pts = np.random.default_rng(2).normal(size=(32, 5)).astype(np.float32)
    fname = "samples/LIDAR_TOP/n008-2018-08-01-15-16-36-0400__LIDAR_TOP__1533151603547590.pcd.bin"
    (root / fname).parent.mkdir(parents=True)
    pts.tofile(root / fname)
    (root / "lidarseg" / "v1.0-mini").mkdir(parents=True)
    raw.tofile(root / "lidarseg" / "v1.0-mini" / "tok1_lidarseg.bin")
    (root / "v1.0-mini" / "sample_data.json").write_text(json.dumps(
        [{"token": "tok1", "sample_token": "s1", "filename": fname, "timestamp": 1}]))
    (root / "v1.0-mini" / "lidarseg.json").write_text(json.dumps(
        [{"token": "tok1", "sample_data_token": "tok1", "filename": "lidarseg/v1.0-mini/tok1_lidarseg.bin"}]))
    bench = B.get_benchmark("nuscenes_lidarseg", root=tmp_path)
    (rec,) = bench.records()
    assert rec.id == "tok1" and rec.category == "n008-2018-08-01-15-16-36-0400"
    d = bench.load(rec)
    np.testing.assert_array_equal(d["points"], pts)
    np.testing.assert_array_equal(d["raw"], raw)
    names32 = B.NUSCENES_LIDARSEG_CLASSES_32
    expected = {  # the lidarseg challenge's 32 -> 16 merge, by name
        "vehicle.car": "car", "vehicle.bus.bendy": "bus", "vehicle.bus.rigid": "bus",
        "human.pedestrian.adult": "pedestrian", "human.pedestrian.police_officer": "pedestrian",
        "human.pedestrian.construction_worker": "pedestrian", "movable_object.trafficcone": "traffic_cone",
        "flat.driveable_surface": "driveable_surface", "flat.other": "other_flat", "static.manmade": "manmade",
        "static.vegetation": "vegetation", "vehicle.construction": "construction_vehicle",
        "noise": None, "animal": None, "vehicle.ego": None, "static.other": None, "human.pedestrian.stroller": None,
        "vehicle.emergency.police": None, "static_object.bicycle_rack": None, "movable_object.debris": None,
    }
    for name, target in expected.items():
        got = d["labels"][names32.index(name)]
        assert (got == -1) if target is None else B.NUSCENES_LIDARSEG_CLASSES[got] == target, name
    assert d["labels"].min() == -1 and d["labels"].max() == 15 and len(set(d["labels"].tolist())) == 17
    (root / "lidarseg" / "v1.0-mini" / "tok1_lidarseg.bin").write_bytes(raw[:10].tobytes())
    with pytest.raises(InputError, match="10 labels for 32 points"):
        bench.load(rec)


# -------------------------------------------------------------------------- SemanticKITTI


def test_semantickitti_learning_map(tmp_path):
    root = tmp_path / "semantickitti" / "dataset"
    sem = np.array([0, 1, 10, 252, 52, 60, 259, 81, 30, 254, 99, 72], np.uint32)
    inst = np.arange(len(sem), dtype=np.uint32) * 7
    for seq in ("08", "00"):
        base = root / "sequences" / seq
        (base / "velodyne").mkdir(parents=True)
        (base / "labels").mkdir()
        pts = np.random.default_rng(3).normal(size=(len(sem), 4)).astype(np.float32)
        pts.tofile(base / "velodyne" / "000000.bin")
        ((inst << 16) | sem).astype(np.uint32).tofile(base / "labels" / "000000.label")
    bench = B.get_benchmark("semantickitti", root=tmp_path)  # accepts the release's dataset/ level
    (rec,) = bench.records()  # val = sequence 08 only
    assert rec.id == "08/000000" and rec.category == "08"
    d = bench.load(rec)
    np.testing.assert_array_equal(d["points"], pts)
    np.testing.assert_array_equal(d["raw"], sem)
    np.testing.assert_array_equal(d["instance"], inst)
    names = [B.SEMANTICKITTI_CLASSES[k] if k >= 0 else None for k in d["labels"]]
    assert names == [None, None, "car", "car", None, "road", "other-vehicle", "traffic-sign", "person",
                     "person", None, "terrain"]
    assert [r.id for r in B.SemanticKITTI(root, split="train").records()] == ["00/000000"]
    ((inst << 16) | sem)[:5].astype(np.uint32).tofile(root / "sequences" / "08" / "labels" / "000000.label")
    with pytest.raises(InputError, match="5 labels for 12 points"):
        bench.load(rec)


# ----------------------------------------------------------------------- KITTI object


def _kitti_fixture(tmp_path):
    """A frame whose LiDAR->camera transform is the axis swap cam = (-y, -z, x), R0 = I."""
    base = tmp_path / "kitti_object" / "training"
    for sub in ("velodyne", "calib", "label_2", "image_2"):
        (base / sub).mkdir(parents=True)
    tr = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]], float)
    p = np.array([[700, 0, 600, 0], [0, 700, 180, 0], [0, 0, 1, 0]], float)
    lines = [f"P{i}: " + " ".join(map(str, p.ravel())) for i in range(4)]
    lines += ["R0_rect: " + " ".join(map(str, np.eye(3).ravel())), "Tr_velo_to_cam: " + " ".join(map(str, tr.ravel())),
              "Tr_imu_to_velo: " + " ".join(map(str, tr.ravel()))]
    (base / "calib" / "000007.txt").write_text("\n".join(lines) + "\n")
    # Car: bottom centre (0, 1, 10) cam, h 1.5 w 1.8 l 4, ry 0 -> LiDAR x in [9.1, 10.9], y in [-2, 2], z in [-1, .5]
    # Pedestrian: bottom (5, 1, 20), h 1.8 w .6 l 1, ry pi/2
    #   -> LiDAR x in [19.5, 20.5], y in [-5.3, -4.7], z in [-1, .8]
    (base / "label_2" / "000007.txt").write_text(
        "Car 0.00 0 0.0 100 100 200 200 1.50 1.80 4.00 0.00 1.00 10.00 0.00\n"
        f"Pedestrian 0.00 0 0.0 300 100 320 200 1.80 0.60 1.00 5.00 1.00 20.00 {np.pi / 2:.6f}\n"
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n")
    pts = np.array([[10, 1.5, 0, .1], [10, 0, .6, .1], [11, 0, 0, .1], [10.8, -1.9, -.9, .1],
                    [20.4, -5, 0, .1], [20, -5.4, 0, .1], [0, 0, 0, .1]], np.float32)
    pts.tofile(base / "velodyne" / "000007.bin")
    write_image(base / "image_2" / "000007.png", 8, 12, fmt="PNG")
    return base, pts


def test_kitti_object_points_in_boxes(tmp_path):
    base, pts = _kitti_fixture(tmp_path)
    bench = B.get_benchmark("kitti_object", root=tmp_path)
    (rec,) = bench.records()
    d = bench.load(rec, image=True)
    np.testing.assert_array_equal(d["points"], pts)
    names = [B.KITTI_CLASSES[k] for k in d["labels"]]
    # the 6th point lies inside the pedestrian only if its rotation were ignored
    assert names == ["car", "background", "background", "car", "pedestrian", "background", "background"]
    assert d["box_index"].tolist() == [0, -1, -1, 0, 1, -1, -1]
    np.testing.assert_allclose(d["box_centers"], [[10, 0, -0.25], [20, -5, -0.1]], atol=1e-9)
    assert [b["type"] for b in d["boxes"]] == ["Car", "Pedestrian"]  # DontCare has no 3D box
    assert d["image"].shape == (8, 12, 3) and d["calib"]["P2"].shape == (3, 4)
    (base / "label_2" / "000007.txt").write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(InputError, match="line 1 has 7 fields"):
        bench.load(rec)


def test_points_in_boxes_first_box_wins_and_7dof():
    centers, axes = B.lidar_boxes_7dof([[0, 0, 0, 4, 2, 2, np.pi / 2], [0, 0, 0, 10, 10, 10, 0]])
    # first box rotated 90 deg: 4 m along y, 2 m along x
    idx = B.points_in_boxes([[0, 1.9, 0], [1.9, 0, 0], [4, 4, 4], [9, 9, 9]], centers, axes)
    assert idx.tolist() == [0, 1, 1, -1]
    labels, _ = B.box_point_labels([[0, 1.9, 0], [9, 9, 9]], centers, axes, [-1, 3])
    assert labels.tolist() == [-1, 0]


# --------------------------------------------------------------------- nuScenes sample


def test_nuscenes_sample_fixture(tmp_path):
    root = tmp_path / "nuscenes_sample"
    root.mkdir()
    pts = np.array([[5, 0, 0, 1, 0], [5, 1.5, 0, 1, 0], [0, 0, 0, 1, 0], [-3, -3, 0.2, 1, 0]], np.float32)
    pts.tofile(root / "log__LIDAR_TOP__1.pcd.bin")
    write_image(root / "log__CAM_FRONT__1.jpg", 6, 8)
    info = {"metainfo": {"categories": {n: i for i, n in enumerate(B.NUSCENES_DETECTION_CLASSES)}},
            "data_list": [{"token": "t0", "timestamp": 1.0, "ego2global": np.eye(4).tolist(),
                           "lidar_points": {"lidar_path": "log__LIDAR_TOP__1.pcd.bin", "num_pts_feats": 5,
                                            "lidar2ego": np.eye(4).tolist()},
                           "images": {"CAM_FRONT": {"img_path": "log__CAM_FRONT__1.jpg", "cam2img": np.eye(3).tolist(),
                                                    "lidar2cam": np.eye(4).tolist()}},
                           "instances": [{"bbox_3d": [5, 0, 0, 4, 2, 2, 0], "bbox_label_3d": 0},
                                         {"bbox_3d": [-3, -3, 0, 1, 1, 1, 0.3], "bbox_label_3d": 7}]}]}
    (root / "sample.json").write_text(json.dumps(info))
    bench = B.get_benchmark("nuscenes_sample", root=tmp_path)
    (rec,) = bench.records()
    assert rec.id == "t0" and rec.category == "log"
    d = bench.load(rec, images=True)
    assert [d["class_names"][k - 1] if k else "background" for k in d["labels"]] == [
        "car", "background", "background", "pedestrian"]
    assert d["cameras"]["CAM_FRONT"]["image"].shape == (6, 8, 3)
    assert d["boxes"].shape == (2, 7) and d["box_labels"].tolist() == [0, 7]


# ----------------------------------------------------------------------------- PartImageNet


def test_coco_rle_decoding():
    assert B.images2d.rle_counts_from_string("032") == [0, 3, 2]
    rng = np.random.default_rng(4)
    for _ in range(5):
        mask = rng.random((7, 9)) < 0.4
        counts = rle_columns(mask)
        np.testing.assert_array_equal(B.rle_decode(counts, 7, 9), mask)
        np.testing.assert_array_equal(B.rle_decode(rle_string(counts), 7, 9), mask)
    with pytest.raises(InputError, match="sum to"):
        B.rle_decode([1, 2], 3, 3)


def test_partimagenet_round_trip(tmp_path):
    root = tmp_path / "PartImageNet"
    h, w = 6, 8
    m_rle = np.zeros((h, w), bool)
    m_rle[4:6, 0:3] = True
    m_str = np.zeros((h, w), bool)
    m_str[0, 7] = m_str[5, 7] = True
    coco = {
        "images": [{"id": 11, "file_name": "n01440764_2.JPEG", "height": h, "width": w},
                   {"id": 10, "file_name": "n01440764_1.JPEG", "height": h, "width": w}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 0, "iscrowd": 0, "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]]},
            {"id": 2, "image_id": 10, "category_id": 3, "iscrowd": 0,
             "segmentation": {"counts": rle_columns(m_rle), "size": [h, w]}},
            {"id": 3, "image_id": 10, "category_id": 1, "iscrowd": 1,
             "segmentation": {"counts": rle_string(rle_columns(m_str)), "size": [h, w]}},
        ],
        "categories": [{"id": 0, "name": "Quadruped Head", "supercategory": "Quadruped"},
                       {"id": 1, "name": "Quadruped Body", "supercategory": "Quadruped"},
                       {"id": 3, "name": "Quadruped Tail", "supercategory": "Quadruped"}],
    }
    (root / "annotations" / "val").mkdir(parents=True)
    (root / "annotations" / "val" / "val.json").write_text(json.dumps(coco))
    write_image(root / "images" / "val" / "n01440764_1.JPEG", h, w)
    bench = B.get_benchmark("partimagenet", root=tmp_path)
    recs = bench.records()
    assert [(r.id, r.category) for r in recs] == [("10", "n01440764"), ("11", "n01440764")]
    d = bench.load(recs[0])
    assert d["image"].shape == (h, w, 3) and d["masks"].shape == (3, h, w)
    assert d["mask_categories"].tolist() == [0, 3, 1]
    poly = d["masks"][0]
    assert poly[2, 2] and poly[1, 1] and not poly[0, 0] and not poly[5, 6] and 6 <= poly.sum() <= 12
    np.testing.assert_array_equal(d["masks"][1], m_rle)
    np.testing.assert_array_equal(d["masks"][2], m_str)
    assert d["part_labels"][2, 2] == 0 and d["part_labels"][5, 1] == 3 and d["part_labels"][0, 7] == 1
    assert d["part_labels"][0, 0] == -1 and d["categories"][3] == "Quadruped Tail"
    assert bench.load(recs[1], image=False)["masks"].shape == (0, h, w)
    with pytest.raises(InputError, match="image not found"):
        bench.load(recs[1])


# ----------------------------------------------------------------------------- Pascal-Part


def test_pascal_part_round_trip(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "pascal_part"
    (root / "Annotations_Part").mkdir(parents=True)
    h, w = 5, 6
    cat = np.zeros((h, w), np.uint8)
    cat[1:4, 1:4] = 1
    head = np.zeros((h, w), np.uint8)
    head[1, 1:4] = 1
    person = np.zeros((h, w), np.uint8)
    person[:, 5] = 1
    part_dt = [("part_name", "O"), ("mask", "O")]
    cat_parts = np.zeros((1, 1), part_dt)
    cat_parts[0, 0] = ("head", head)
    obj_dt = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    objs = np.zeros((1, 2), obj_dt)
    objs[0, 0] = ("cat", np.array([[8]], np.uint8), cat, cat_parts)
    objs[0, 1] = ("person", np.array([[15]], np.uint8), person, np.zeros((0, 0)))
    anno = np.zeros((1, 1), [("imname", "O"), ("objects", "O")])
    anno[0, 0] = ("2008_000002", objs)
    savemat(root / "Annotations_Part" / "2008_000002.mat", {"anno": anno})
    write_image(root / "JPEGImages" / "2008_000002.jpg", h, w)
    bench = B.get_benchmark("pascal_part", root=tmp_path)
    (rec,) = bench.records()
    assert rec.id == "2008_000002"
    d = bench.load(rec)
    assert [o["class"] for o in d["objects"]] == ["cat", "person"] and d["objects"][0]["class_ind"] == 8
    np.testing.assert_array_equal(d["objects"][0]["mask"], cat > 0)
    assert d["objects"][1]["parts"] == [] and d["part_names"] == ["cat/head"]
    np.testing.assert_array_equal(d["part_instance"], np.where(head > 0, 0, -1))
    np.testing.assert_array_equal(d["object_labels"], np.where(cat > 0, 8, np.where(person > 0, 15, 0)))
    assert d["instance"][2, 2] == 0 and d["instance"][0, 5] == 1 and d["instance"][0, 0] == -1
    assert d["image"].shape == (h, w, 3)
    (root / "Annotations_Part" / "2008_000002.mat").write_bytes(b"not a mat file")
    with pytest.raises(InputError, match="not a Pascal-Part annotation"):
        bench.load(rec, image=False)


# ---------------------------------------------------------------------- shared real data


def test_partnet_mobility_dev_records_and_labels(shared_data):
    bench = B.get_benchmark("partnet_mobility_dev", root=shared_data)
    recs = bench.records()
    assert len(recs) == 133
    assert [r.id for r in recs] == sorted(r.id for r in recs)
    assert len({r.category for r in recs}) == 13
    rec = next(r for r in recs if r.id == "Laptop/10040")
    d = bench.load(rec)
    n_faces = len(trimesh.load(rec.paths["mesh"], force="mesh", process=False).faces)
    assert d["shape"].n_faces == n_faces == len(d["face_leaf"]) == len(d["face_link"]) == rec.meta["n_faces"]
    assert d["face_leaf"].dtype == np.int32 and d["face_link"].dtype == np.int32
    n_link = len(np.unique(d["face_link"][d["face_link"] >= 0]))
    n_leaf = len(np.unique(d["face_leaf"]))
    n_mid = len(np.unique(B.labels_at_depth(rec.meta["nodes"], d["face_leaf"], 1)))
    assert n_link < n_mid < n_leaf  # 2 < 4 < 11 for this laptop


def test_partnet_mobility_dev_points(shared_data):
    bench = B.get_benchmark("partnet_mobility_dev_points", root=shared_data)
    recs = bench.records()
    assert len(recs) == 133 and "nodes" in recs[0].meta
    d = bench.load(recs[0])
    n = d["shape"].n_vertices
    assert n == 15000 and d["shape"].faces is None
    assert d["point_leaf"].shape == d["point_link"].shape == d["face_id"].shape == (n,)


def test_kitti_sample_points_in_boxes(shared_data):
    if not (shared_data / "kitti_sample").is_dir():
        pytest.skip("../shared/data/kitti_sample absent")
    bench = B.get_benchmark("kitti_sample", root=shared_data)
    recs = bench.records()
    assert len(recs) == 4
    car = B.KITTI_CLASSES.index("car")
    n_car = 0
    for rec in recs:
        d = bench.load(rec)
        assert d["labels"].shape == (len(d["points"]),)
        n_car += int((d["labels"] == car).sum())
        velo_to_img = d["calib"]["P2"] @ d["calib"].velo_to_rect
        for b, obj in enumerate(d["boxes"]):
            inside = d["points"][d["box_index"] == b, :3]
            assert len(inside) > 0, (rec.id, obj["type"])
            # the box centre, mapped back into the image, lies in the labelled 2D box
            u, v, s = velo_to_img @ np.r_[d["box_centers"][b], 1.0]
            x0, y0, x1, y1 = obj["bbox"]
            assert x0 <= u / s <= x1 and y0 <= v / s <= y1
            # points in a box lie within its vertical extent around the centre
            half_h = obj["dims_hwl"][0] / 2
            assert np.all(np.abs(inside[:, 2] - d["box_centers"][b, 2]) <= half_h + 0.1)
    assert n_car > 100


def test_nuscenes_sample_points_in_boxes(shared_data):
    if not (shared_data / "nuscenes_sample" / "sample.json").is_file():
        pytest.skip("../shared/data/nuscenes_sample absent")
    bench = B.get_benchmark("nuscenes_sample", root=shared_data)
    (rec,) = bench.records()
    d = bench.load(rec)
    assert d["points"].shape[1] == 5 and d["labels"].shape == (len(d["points"]),)
    counts = np.bincount(d["box_index"][d["box_index"] >= 0], minlength=len(d["boxes"]))
    ref = np.array([i["num_lidar_pts"] for i in rec.meta["instances"]])
    big = ref > 20  # nuScenes' own per-box point counts agree with gravity-centre boxes
    assert big.any() and np.all(np.abs(counts[big] - ref[big]) <= 0.2 * ref[big])
    car = 1 + d["class_names"].index("car")
    assert (d["labels"] == car).sum() > 0
