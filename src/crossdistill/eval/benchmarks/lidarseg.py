"""LiDAR semantic segmentation: nuScenes-lidarseg and SemanticKITTI (not on this machine).

Both loaders return class labels in crossdistill's convention: ``0..C-1`` for the
evaluated classes and ``-1`` for ignored points, ready for
:func:`crossdistill.eval.metrics.confusion_matrix` (``ignore_index=-1``). The dataset's
own ids are returned too (``raw``) and the published mapping tables are module constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossdistill.eval.benchmarks._base import Benchmark, Record, dense_map, lookup, read_raw, read_json

__all__ = [
    "NUSCENES_LIDARSEG_CLASSES_32", "NUSCENES_LIDARSEG_MAP", "NUSCENES_LIDARSEG_CLASSES",
    "SEMANTICKITTI_LEARNING_MAP", "SEMANTICKITTI_CLASSES", "SEMANTICKITTI_SPLITS",
    "NuScenesLidarSeg", "SemanticKITTI",
]

# --------------------------------------------------------------------- nuScenes-lidarseg
#: The 32 nuScenes-lidarseg classes, index = value stored in ``<token>_lidarseg.bin``.
NUSCENES_LIDARSEG_CLASSES_32: tuple[str, ...] = (
    "noise", "animal", "human.pedestrian.adult", "human.pedestrian.child",
    "human.pedestrian.construction_worker", "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer", "human.pedestrian.stroller", "human.pedestrian.wheelchair",
    "movable_object.barrier", "movable_object.debris", "movable_object.pushable_pullable",
    "movable_object.trafficcone", "static_object.bicycle_rack", "vehicle.bicycle",
    "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.car", "vehicle.construction",
    "vehicle.emergency.ambulance", "vehicle.emergency.police", "vehicle.motorcycle",
    "vehicle.trailer", "vehicle.truck", "flat.driveable_surface", "flat.other", "flat.sidewalk",
    "flat.terrain", "static.manmade", "static.other", "static.vegetation", "vehicle.ego",
)

#: (32,) int64: lidarseg challenge mapping, 32 classes -> 0 (ignore) .. 16 (vegetation).
NUSCENES_LIDARSEG_MAP: np.ndarray = dense_map({
    0: 0, 1: 0, 5: 0, 7: 0, 8: 0, 10: 0, 11: 0, 13: 0, 19: 0, 20: 0, 29: 0, 31: 0,
    9: 1, 14: 2, 15: 3, 16: 3, 17: 4, 18: 5, 21: 6, 2: 7, 3: 7, 4: 7, 6: 7,
    12: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 30: 16,
}, 32, default=0)

#: The 16 evaluated classes; ``labels`` value ``k`` is ``NUSCENES_LIDARSEG_CLASSES[k]``
#: (challenge id ``k + 1``).
NUSCENES_LIDARSEG_CLASSES: tuple[str, ...] = (
    "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
    "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk",
    "terrain", "manmade", "vegetation",
)


class NuScenesLidarSeg(Benchmark):
    """nuScenes-lidarseg keyframes (``LIDAR_TOP`` sweeps with per-point labels).

    Layout (a nuScenes ``dataroot`` with the lidarseg extension unpacked into it)::

        <version>/sample_data.json        [{token, filename, ...}] (devkit tables)
        <version>/lidarseg.json           [{token, sample_data_token, filename}]
        samples/LIDAR_TOP/<name>.pcd.bin  float32 (N, 5) x y z intensity ring
        lidarseg/<version>/<token>_lidarseg.bin   uint8 (N,) class in 0..31

    ``version`` is ``v1.0-mini`` (default), ``v1.0-trainval`` or ``v1.0-test`` (no labels).
    Records: one per ``lidarseg.json`` entry, sorted by point-cloud file name (log then
    time); ``id`` = sample_data token, ``category`` = log name (file-name prefix).
    Restrict to scenes with ``scene_tokens`` (needs ``sample.json``: sample -> scene).
    The official train / val scene lists live in the nuscenes-devkit
    (``create_splits_scenes``) and are not bundled.

    :meth:`load` returns ``points`` (N, 5) float32; ``raw`` (N,) uint8 32-class ids
    (:data:`NUSCENES_LIDARSEG_CLASSES_32`); ``labels`` (N,) int64 in 0..15
    (:data:`NUSCENES_LIDARSEG_CLASSES`), -1 for the challenge's ignored classes.
    """

    name = "nuscenes_lidarseg"
    folder = "nuscenes"
    layout = "<version>/{sample_data,lidarseg}.json, samples/LIDAR_TOP/*.pcd.bin, lidarseg/<version>/*_lidarseg.bin"
    source = "www.nuscenes.org (nuScenes full dataset + nuScenes-lidarseg, non-commercial terms)"

    def __init__(self, path, version: str = "v1.0-mini", scene_tokens: set[str] | None = None) -> None:
        self.version = version
        self.scene_tokens = None if scene_tokens is None else set(scene_tokens)
        super().__init__(path)

    def _check(self) -> None:
        for rel in (f"{self.version}/lidarseg.json", f"{self.version}/sample_data.json"):
            if not (self.path / rel).is_file():
                raise self.missing(f"{self.path / rel} not found")

    def _scan(self) -> list[Record]:
        tables = self.path / self.version
        sd = {s["token"]: s for s in read_json(tables / "sample_data.json", self)}
        keep = None
        if self.scene_tokens is not None:
            samples = read_json(tables / "sample.json", self)
            keep = {s["token"] for s in samples if s.get("scene_token") in self.scene_tokens}
        recs = []
        for entry in read_json(tables / "lidarseg.json", self):
            token = entry.get("sample_data_token", entry.get("token"))
            if token not in sd:
                raise self._bad(tables / "lidarseg.json", f"sample_data_token {token} not in sample_data.json")
            s = sd[token]
            if keep is not None and s.get("sample_token") not in keep:
                continue
            pcd = self.path / s["filename"]
            paths = {"points": pcd, "labels": self.path / entry["filename"]}
            recs.append(Record(self.name, token, Path(s["filename"]).name.split("__")[0], paths,
                               {"sample_token": s.get("sample_token"), "timestamp": s.get("timestamp")}))
        return sorted(recs, key=lambda r: (r.paths["points"].name, r.id))

    def load(self, record: Record) -> dict[str, Any]:
        points = read_raw(record.paths["points"], 5, self)
        try:
            raw = np.fromfile(record.paths["labels"], dtype=np.uint8)
        except OSError as exc:
            raise self._bad(record.paths["labels"], f"cannot read ({type(exc).__name__})") from exc
        if raw.shape[0] != points.shape[0]:
            raise self._bad(record.paths["labels"], f"{raw.size} labels for {len(points)} points")
        if raw.size and raw.max() >= 32:
            raise self._bad(record.paths["labels"], f"class id {int(raw.max())} outside 0..31")
        return {"points": points, "raw": raw, "labels": NUSCENES_LIDARSEG_MAP[raw] - 1}


# ------------------------------------------------------------------------ SemanticKITTI
#: (260,) int64: SemanticKITTI ``learning_map`` (semantic-kitti.yaml), raw id -> 0..19,
#: 0 = unlabeled / ignored; ids absent from the yaml map to 0.
SEMANTICKITTI_LEARNING_MAP: np.ndarray = dense_map({
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8,
    40: 9, 44: 10, 48: 11, 49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17,
    80: 18, 81: 19, 99: 0, 252: 1, 253: 7, 254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5,
}, 260, default=0)

#: The 19 evaluated classes; ``labels`` value ``k`` is learning id ``k + 1``.
SEMANTICKITTI_CLASSES: tuple[str, ...] = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist",
    "motorcyclist", "road", "parking", "sidewalk", "other-ground", "building", "fence",
    "vegetation", "trunk", "terrain", "pole", "traffic-sign",
)

#: Standard sequence splits (labels exist for 00-10 only).
SEMANTICKITTI_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("00", "01", "02", "03", "04", "05", "06", "07", "09", "10"),
    "val": ("08",),
    "test": tuple(f"{i:02d}" for i in range(11, 22)),
}


class SemanticKITTI(Benchmark):
    """SemanticKITTI scans with point-wise labels.

    Layout (``dataset/`` of the release; the catalog also accepts its parent)::

        sequences/<seq>/velodyne/<frame>.bin   float32 (N, 4) x y z remission
        sequences/<seq>/labels/<frame>.label   uint32 (N,): semantic = label & 0xFFFF,
                                               instance = label >> 16

    ``split``: ``"train"``, ``"val"`` (default, sequence 08), ``"test"`` (no labels) or a
    tuple of sequence names. Records: ``id`` ``"<seq>/<frame>"``, ``category`` = sequence.

    :meth:`load` returns ``points`` (N, 4) float32; ``raw`` (N,) uint16 semantic ids;
    ``instance`` (N,) uint16; ``labels`` (N,) int64 in 0..18 (:data:`SEMANTICKITTI_CLASSES`)
    via :data:`SEMANTICKITTI_LEARNING_MAP` minus one, -1 for unlabeled / ignored (learning
    id 0; the 255 of other codebases). Without a label file (test split) ``raw``,
    ``instance`` and ``labels`` are absent.
    """

    name = "semantickitti"
    folder = "semantickitti"
    layout = "sequences/<seq>/velodyne/<frame>.bin + sequences/<seq>/labels/<frame>.label"
    source = "www.semantic-kitti.org (labels) + the KITTI odometry benchmark (scans), CC BY-NC-SA 3.0"

    def __init__(self, path, split: str | tuple[str, ...] = "val") -> None:
        if isinstance(split, str):
            if split not in SEMANTICKITTI_SPLITS:
                raise self.missing(f"unknown split {split!r} (train, val, test or a tuple of sequences)")
            split = SEMANTICKITTI_SPLITS[split]
        self.sequences = tuple(split)
        path = Path(path).expanduser()
        if not (path / "sequences").is_dir() and (path / "dataset" / "sequences").is_dir():
            path = path / "dataset"
        super().__init__(path)

    def _check(self) -> None:
        if not (self.path / "sequences").is_dir() and not (self.path / "dataset" / "sequences").is_dir():
            raise self.missing(f"{self.path / 'sequences'} not found")

    def _scan(self) -> list[Record]:
        recs = []
        for seq in self.sequences:
            base = self.path / "sequences" / seq
            for velo in sorted((base / "velodyne").glob("*.bin")):
                paths = {"points": velo, "labels": base / "labels" / f"{velo.stem}.label"}
                recs.append(Record(self.name, f"{seq}/{velo.stem}", seq, paths, {"sequence": seq}))
        return recs

    def load(self, record: Record) -> dict[str, Any]:
        points = read_raw(record.paths["points"], 4, self)
        out: dict[str, Any] = {"points": points}
        lab_path = record.paths["labels"]
        if not lab_path.is_file():
            return out
        label = read_raw(lab_path, 1, self, dtype=np.uint32).reshape(-1)
        if label.shape[0] != points.shape[0]:
            raise self._bad(lab_path, f"{label.size} labels for {len(points)} points")
        raw = (label & 0xFFFF).astype(np.uint16)
        out.update(raw=raw, instance=(label >> 16).astype(np.uint16),
                   labels=lookup(SEMANTICKITTI_LEARNING_MAP, raw, default=0) - 1)
        return out
