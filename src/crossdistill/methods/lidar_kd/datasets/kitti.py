"""KITTI layouts as lazy frame sources: the object benchmark and SemanticKITTI (with camera 2).

SemanticKITTI (the ``dataset/`` folder of the release, or its parent)::

    sequences/<NN>/velodyne/<frame>.bin   float32 (N, 4) x y z remission
    sequences/<NN>/labels/<frame>.label   uint32 (N,): semantic id = lower 16 bits
    sequences/<NN>/calib.txt              P0..P3 (3x4), Tr (3x4: Velodyne -> rectified camera 0)
    sequences/<NN>/image_2/<frame>.png    left colour camera (KITTI odometry colour images)

Point labels follow the standard ``learning_map``
(:data:`crossdistill.eval.benchmarks.lidarseg.SEMANTICKITTI_LEARNING_MAP`); in a frame,
label ``k + 1`` is :data:`SEMANTICKITTI_CLASSES` ``[k]``, 0 is "unlabeled" (never a
ground-truth value: unlabeled / outlier points are -1, ignored) so that prediction classes
with no counterpart score as errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks._base import read_image
from crossdistill.methods.lidar_kd.datasets import FrameSource
from crossdistill.methods.lidar_kd.frames import CameraImage, LidarFrame, check_frame
from crossdistill.render.lidar import kitti_camera

__all__ = ["KittiObjectSource", "SemanticKittiSource", "read_odometry_calib", "SEMANTICKITTI_FRAME_CLASSES"]


class KittiObjectSource(FrameSource):
    """KITTI object-layout folder (``training/{velodyne,image_2,calib,label_2}``), lazily."""

    def __init__(self, root: str | Path) -> None:
        from crossdistill.eval.benchmarks.boxes import KittiObject

        self.root = Path(root)
        self._bench = KittiObject(self.root)
        self._records = {r.id: r for r in self._bench.records()}
        self.ids = list(self._records)
        self.name = f"kitti:{self.root.resolve()}"
        if not self.ids:
            raise InputError(f"{root}: no KITTI frames")

    def load(self, frame_id: str) -> LidarFrame:
        from crossdistill.methods.lidar_kd.frames import _kitti_frame

        return check_frame(_kitti_frame(self._bench, self._records[frame_id]))


def read_odometry_calib(path: str | Path) -> dict[str, np.ndarray]:
    """``P0``..``P3`` and ``Tr`` (3, 4) float64 of a KITTI odometry ``calib.txt``; one-line InputError if not."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"semantickitti: {path}: cannot read calibration ({type(exc).__name__})") from None
    out = {}
    for line in text.splitlines():
        key, _, vals = line.partition(":")
        if key.strip() in ("P0", "P1", "P2", "P3", "Tr"):
            try:
                out[key.strip()] = np.array(vals.split(), np.float64).reshape(3, 4)
            except ValueError:
                raise InputError(f"semantickitti: {path}: {key.strip()} is not 12 numbers") from None
    missing = [k for k in ("P2", "Tr") if k not in out]
    if missing:
        raise InputError(f"semantickitti: {path}: calibration lacks {missing}")
    return out


def _frame_classes() -> tuple[str, ...]:
    from crossdistill.eval.benchmarks.lidarseg import SEMANTICKITTI_CLASSES

    return ("unlabeled", *SEMANTICKITTI_CLASSES)


#: class names of a SemanticKITTI frame's labels (0 "unlabeled" never occurs as ground truth)
SEMANTICKITTI_FRAME_CLASSES: tuple[str, ...] = _frame_classes()


class SemanticKittiSource(FrameSource):
    """SemanticKITTI scans with camera 2 (see the module docstring), lazily.

    Args:
        root: the release's ``dataset/`` folder or its parent.
        sequences: the sequences to read (default: every ``sequences/NN`` that has ``velodyne/``).
    Frame ids are ``"<NN>/<frame>"``; :attr:`groups` gives each frame's sequence (for
    :func:`~crossdistill.methods.lidar_kd.datasets.split_ids`).
    """

    def __init__(self, root: str | Path, sequences: tuple[str, ...] | None = None) -> None:
        from crossdistill.eval.benchmarks.lidarseg import SemanticKITTI

        root = Path(root)
        if not (root / "sequences").is_dir() and (root / "dataset" / "sequences").is_dir():
            root = root / "dataset"
        if sequences is None:
            sequences = tuple(sorted(p.name for p in (root / "sequences").glob("*") if (p / "velodyne").is_dir()))
        self.root = root
        self._bench = SemanticKITTI(root, split=tuple(sequences))
        self._records = {r.id: r for r in self._bench.records()}
        self.ids = list(self._records)
        self.groups = [self._records[i].category for i in self.ids]
        self.name = f"semantickitti:{root.resolve()}"
        if not self.ids:
            raise InputError(f"{root}: no SemanticKITTI scans (sequences/NN/velodyne/*.bin)")
        self._calib: dict[str, dict[str, np.ndarray]] = {}

    def _camera_calib(self, seq: str) -> dict[str, np.ndarray]:
        if seq not in self._calib:
            c = read_odometry_calib(self.root / "sequences" / seq / "calib.txt")
            # odometry calibration is already rectified: R0_rect is the identity
            self._calib[seq] = {"P2": c["P2"], "R0_rect": np.eye(3), "Tr_velo_to_cam": c["Tr"]}
        return self._calib[seq]

    def load(self, frame_id: str) -> LidarFrame:
        rec = self._records[frame_id]
        d = self._bench.load(rec)
        seq = rec.category
        image_path = self.root / "sequences" / seq / "image_2" / f"{rec.paths['points'].stem}.png"
        if not image_path.is_file():
            raise InputError(f"frame {frame_id}: no camera image {image_path}")
        image = read_image(image_path, self._bench)
        H, W = image.shape[:2]
        cam = CameraImage(image, kitti_camera(self._camera_calib(seq), W, H))
        labels = None
        if "labels" in d:
            labels = np.where(d["labels"] >= 0, d["labels"] + 1, -1).astype(np.int64)
        return check_frame(LidarFrame(frame_id, d["points"], 1.0, (cam,), labels, SEMANTICKITTI_FRAME_CLASSES,
                                      "semantickitti"))
