"""Named evaluation benchmarks, detectron2-catalog style.

>>> from crossdistill.eval.benchmarks import get_benchmark, list_benchmarks
>>> bench = get_benchmark("partnet_mobility_dev")  # doctest: +SKIP
>>> rec = bench.records()[0]; sample = bench.load(rec)  # doctest: +SKIP
>>> sample["shape"].n_faces == len(sample["face_leaf"])  # doctest: +SKIP
True

``get_benchmark(name, root=None, **options)`` looks for the dataset folder
``<root>/<folder>`` (folder per benchmark below); ``root`` defaults to
``$CROSSDISTILL_DATA``, else ``<repo>/../shared/data``. When ``<root>/<folder>`` does not
exist, ``root`` itself is tried as the dataset folder, so ``root`` may also point straight
at a dataset. Every loader class can be constructed with its dataset folder directly.
Missing or malformed data raises :class:`crossdistill.errors.InputError` with one line
saying what is missing and where the data is obtained; nothing is ever downloaded.

=============================  ==================================================  =========================
name                           folder under the data root                          on this machine
=============================  ==================================================  =========================
partnet_mobility_dev           partnet_mobility_dev                                yes (133 meshes)
partnet_mobility_dev_points    partnet_mobility_dev_points                         yes (133 point clouds)
kitti_sample                   kitti_sample                                        yes (4 frames)
nuscenes_sample                nuscenes_sample                                     yes (1 sample)
kitti_object                   kitti_object                                        no
partnete                       PartNetE                                            no
shapenetpart                   shapenetcore_partanno_segmentation_benchmark_v0_normal  no
partobjaverse_tiny             PartObjaverse-Tiny                                  no
nuscenes_lidarseg              nuscenes                                            no
semantickitti                  semantickitti                                       no
partimagenet                   PartImageNet                                        no
pascal_part                    pascal_part                                         no
=============================  ==================================================  =========================
"""

from __future__ import annotations

import os
from typing import Any

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks._base import (
    DATA_ENV,
    Benchmark,
    Record,
    default_data_root,
    resolve_data_root,
)
from crossdistill.eval.benchmarks.boxes import (
    KITTI_CLASSES,
    NUSCENES_DETECTION_CLASSES,
    KittiCalib,
    KittiObject,
    KittiSample,
    NuScenesSample,
    box_point_labels,
    kitti_boxes_to_lidar,
    lidar_boxes_7dof,
    points_in_boxes,
    read_kitti_calib,
    read_kitti_labels,
)
from crossdistill.eval.benchmarks.images2d import PartImageNet, PascalPart, coco_segmentation_mask, rle_decode
from crossdistill.eval.benchmarks.lidarseg import (
    NUSCENES_LIDARSEG_CLASSES,
    NUSCENES_LIDARSEG_CLASSES_32,
    NUSCENES_LIDARSEG_MAP,
    SEMANTICKITTI_CLASSES,
    SEMANTICKITTI_LEARNING_MAP,
    SEMANTICKITTI_SPLITS,
    NuScenesLidarSeg,
    SemanticKITTI,
)
from crossdistill.eval.benchmarks.partnet_mobility import (
    PartNetMobilityDev,
    PartNetMobilityDevPoints,
    labels_at_depth,
    node_depths,
)
from crossdistill.eval.benchmarks.parts3d import SHAPENETPART_PARTS, PartNetE, PartObjaverseTiny, ShapeNetPart

__all__ = [
    "Benchmark", "Record", "DATA_ENV", "default_data_root", "resolve_data_root",
    "list_benchmarks", "get_benchmark", "register_benchmark",
    "PartNetMobilityDev", "PartNetMobilityDevPoints", "labels_at_depth", "node_depths",
    "PartNetE", "ShapeNetPart", "SHAPENETPART_PARTS", "PartObjaverseTiny",
    "NuScenesLidarSeg", "NUSCENES_LIDARSEG_CLASSES_32", "NUSCENES_LIDARSEG_MAP", "NUSCENES_LIDARSEG_CLASSES",
    "SemanticKITTI", "SEMANTICKITTI_LEARNING_MAP", "SEMANTICKITTI_CLASSES", "SEMANTICKITTI_SPLITS",
    "KittiObject", "KittiSample", "KittiCalib", "KITTI_CLASSES", "read_kitti_calib", "read_kitti_labels",
    "kitti_boxes_to_lidar", "NuScenesSample", "NUSCENES_DETECTION_CLASSES",
    "points_in_boxes", "box_point_labels", "lidar_boxes_7dof",
    "PartImageNet", "PascalPart", "coco_segmentation_mask", "rle_decode",
]

_CATALOG: dict[str, tuple[type[Benchmark], dict[str, Any]]] = {}


def register_benchmark(name: str, cls: type[Benchmark], **defaults: Any) -> None:
    """Add ``name`` to the catalog: ``get_benchmark(name)`` builds ``cls(folder, **defaults)``.

    Raises :class:`InputError` if the name is taken.
    """
    if name in _CATALOG:
        raise InputError(f"benchmark {name!r} is already registered")
    _CATALOG[name] = (cls, dict(defaults))


for _cls in (PartNetMobilityDev, PartNetMobilityDevPoints, KittiSample, NuScenesSample, KittiObject, PartNetE,
             ShapeNetPart, PartObjaverseTiny, NuScenesLidarSeg, SemanticKITTI, PartImageNet, PascalPart):
    register_benchmark(_cls.name, _cls)


def list_benchmarks() -> list[str]:
    """Sorted catalog names.

    Example:
        >>> "partnet_mobility_dev" in list_benchmarks()
        True
    """
    return sorted(_CATALOG)


def get_benchmark(name: str, root: str | os.PathLike | None = None, **options: Any) -> Benchmark:
    """The benchmark ``name`` found under the data root.

    Args:
        name: one of :func:`list_benchmarks`.
        root: the data root (folder holding one folder per dataset) or the dataset folder
            itself; ``None``: ``$CROSSDISTILL_DATA``, else ``<repo>/../shared/data``.
        options: passed to the loader class (e.g. ``split="val"``, ``version="v1.0-mini"``).

    Raises:
        InputError: unknown name, or data absent / malformed (one line).
    """
    if name not in _CATALOG:
        raise InputError(f"unknown benchmark {name!r}; known: {', '.join(list_benchmarks())}")
    cls, defaults = _CATALOG[name]
    data_root = resolve_data_root(root)
    kwargs = {**defaults, **options}
    candidate = data_root / cls.folder
    if candidate.is_dir():
        return cls(candidate, **kwargs)
    if data_root.is_dir():
        try:
            return cls(data_root, **kwargs)
        except InputError:
            pass
    hint = "pass root= or set " + DATA_ENV if root is None else "check root="
    raise cls.missing(f"{candidate} not found ({hint})")
