"""Lazy LiDAR frame sources: a list of frame ids and one :class:`LidarFrame` per id on demand.

A :class:`FrameSource` holds only the index of a dataset (paths and calibration, never
scans or images), so training and evaluation stream frames with memory independent of the
number of frames, and a source pickles cheaply into DataLoader workers. Layouts:

* :class:`~.kitti.KittiObjectSource`: KITTI object benchmark (``training/``), points-in-box labels;
* :class:`~.kitti.SemanticKittiSource`: SemanticKITTI (``sequences/NN/``), point labels, camera 2;
* :class:`~.nuscenes.NuScenesSampleSource`: an mmdetection3d ``sample.json``, points-in-box labels;
* :class:`~.nuscenes.NuScenesLidarsegSource`: nuScenes tables + lidarseg, six cameras.

:func:`open_source` recognises the layout of a folder; :func:`split_ids` splits frame ids
into training and test frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError
from crossdistill.methods.lidar_kd.frames import LidarFrame

__all__ = ["FrameSource", "open_source", "split_ids", "LAYOUTS"]

#: layout name -> what marks it
LAYOUTS = {"kitti": "training/velodyne", "semantickitti": "sequences/NN/velodyne",
           "nuscenes": "sample.json (mmdetection3d)", "nuscenes_lidarseg": "v1.0-*/lidarseg.json"}


class FrameSource:
    """Base class: ``ids`` (frame ids in a fixed order) and :meth:`load` (one frame).

    Attributes:
        name: what the source is (layout and folder), part of the target cache's frame key.
        ids: frame ids.
    """

    name: str = ""
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, frame_id: str) -> LidarFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def frames(self, ids: Sequence[str] | None = None) -> Iterator[LidarFrame]:
        """Frames one at a time (``ids`` default: all)."""
        for fid in self.ids if ids is None else ids:
            yield self.load(fid)

    def select(self, ids: Sequence[str]) -> list[str]:
        """``ids`` checked against the source (a one-line InputError names the unknown ones)."""
        known = set(self.ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(f"{self.name}: unknown frame ids {unknown[:5]}" + (" ..." if len(unknown) > 5 else ""))
        return list(ids)


def open_source(path: str | Path, layout: str = "auto") -> FrameSource:
    """The :class:`FrameSource` of a folder; ``layout`` one of :data:`LAYOUTS` or "auto" (recognised)."""
    from crossdistill.methods.lidar_kd.datasets.kitti import KittiObjectSource, SemanticKittiSource
    from crossdistill.methods.lidar_kd.datasets.nuscenes import NuScenesLidarsegSource, NuScenesSampleSource

    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if layout == "auto":
        if (path / "sample.json").is_file():
            layout = "nuscenes"
        elif (path / "sequences").is_dir() or (path / "dataset" / "sequences").is_dir():
            layout = "semantickitti"
        elif any(path.glob("v1.0-*/lidarseg.json")):
            layout = "nuscenes_lidarseg"
        elif (path / "training").is_dir():
            layout = "kitti"
        else:
            raise InputError(f"{path}: not a LiDAR dataset folder (looked for {', '.join(LAYOUTS.values())})")
    builders = {"kitti": KittiObjectSource, "semantickitti": SemanticKittiSource, "nuscenes": NuScenesSampleSource,
                "nuscenes_lidarseg": NuScenesLidarsegSource}
    if layout not in builders:
        raise InputError(f"unknown LiDAR layout {layout!r}: one of {sorted(builders)}")
    return builders[layout](path)


def split_ids(ids: Sequence[str], test_fraction: float = 0.5, seed: int = 0, groups: Sequence[str] | None = None
              ) -> tuple[list[str], list[str]]:
    """(training ids, test ids): a seeded split, each side non-empty when there are two ids or more.

    With ``groups`` (one per id, e.g. the sequence or scene), whole groups go to one side so
    no test frame has a training neighbour from the same drive; with one group only, frames
    are split in time order (the last ``test_fraction`` are the test frames).
    """
    ids = list(ids)
    if not 0 < test_fraction < 1:
        raise InputError(f"test fraction must be in (0, 1), got {test_fraction}")
    if len(ids) < 2:
        raise InputError(f"a train/test split needs two frames or more, got {len(ids)}")
    rng = np.random.default_rng(seed)
    if groups is not None and len(set(groups)) > 1:
        names = sorted(set(groups))
        order = [names[i] for i in rng.permutation(len(names))]
        n_test = min(max(1, round(test_fraction * len(names))), len(names) - 1)
        test_groups = set(order[:n_test])
        train = [i for i, g in zip(ids, groups) if g not in test_groups]
        test = [i for i, g in zip(ids, groups) if g in test_groups]
        return train, test
    n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - 1)
    return ids[: len(ids) - n_test], ids[len(ids) - n_test:]
