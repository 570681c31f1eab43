"""Teacher targets on disk: computed once per (teacher, frame), float16, sharded, resumable, shared by runs.

Layout::

    <root>/<teacher key>/meta.json                 the teacher fingerprint and settings the key stands for
    <root>/<teacher key>/<ab>/<frame key>.npz      one frame: index (S,) int32 of the points a camera sees,
                                                   features (S, C) / logits (S, K) float16, n_points, norm_sum

The teacher key hashes the teacher's fingerprint (``teacher_id``: weights, classes, settings)
and the projection settings, so a different teacher never reads another's targets; the frame
key hashes the source's name (layout and folder) and the frame id, and its first two hex
digits name the shard folder (256 shards keep folders small at SemanticKITTI's 43k scans).
Only the points some camera sees are stored (a sixth of a KITTI scan), in float16: the cache
is the memory of the distillation, read back frame by frame by the data loader.

Every file is written atomically (temp then rename), so a killed :meth:`TargetCache.fill`
leaves whole frames only, and the next call computes just the frames still missing: that is
the resume. Runs with the same teacher share the folder.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from crossdistill.errors import InputError
from crossdistill.io_utils import save_npz, write_json
from crossdistill.methods.lidar_kd.targets import PointTargets, point_targets

__all__ = ["CachedTargets", "TargetCache", "FORMAT"]

FORMAT = "crossdistill.lidar_targets/1"
_F16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class CachedTargets:
    """The stored targets of one frame.

    Attributes:
        n_points: N, the frame's point count.
        index: (S,) int64 the points a camera sees (ascending).
        features: (S, C) float16 teacher features at them (empty (S, 0) when not stored).
        logits: (S, K) float16 teacher logits at them (empty (S, 0) when not stored).
        norm_sum: sum over the S points of the float32 feature norms (for the UDAKD readout).
    """

    n_points: int
    index: np.ndarray
    features: np.ndarray
    logits: np.ndarray
    norm_sum: float

    def dense(self) -> PointTargets:
        """The float32 (N, ...) :class:`PointTargets` (zero where unseen)."""
        seen = np.zeros(self.n_points, bool)
        seen[self.index] = True
        f = np.zeros((self.n_points, self.features.shape[1]), np.float32)
        z = np.zeros((self.n_points, self.logits.shape[1]), np.float32)
        f[self.index], z[self.index] = self.features, self.logits
        return PointTargets(seen, f, z)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class TargetCache:
    """The targets of one teacher (see the module docstring).

    Args:
        root: the cache folder (shared by runs and teachers).
        teacher_id: the teacher's fingerprint.
        occlusion_px: the projection's depth-test neighbourhood (part of the key).
        store: what to keep: "features", "logits" or both (UDAKD needs the features, FSKD both).
    """

    def __init__(self, root: str | Path, teacher_id: str, occlusion_px: int = 2,
                 store: Sequence[str] = ("features", "logits")) -> None:
        store = tuple(sorted(set(store)))
        if not store or set(store) - {"features", "logits"}:
            raise InputError(f"the target cache stores 'features' and/or 'logits', got {store}")
        self.teacher_id, self.occlusion_px, self.store = teacher_id, int(occlusion_px), store
        meta = {"format": FORMAT, "teacher_id": teacher_id, "occlusion_px": self.occlusion_px, "store": list(store)}
        self.dir = Path(root) / _hash(json.dumps(meta, sort_keys=True))[:16]
        if not (self.dir / "meta.json").is_file():
            write_json(self.dir / "meta.json", meta)

    def path(self, source_name: str, frame_id: str) -> Path:
        key = _hash(source_name, frame_id)[:32]
        return self.dir / key[:2] / f"{key}.npz"

    def has(self, source_name: str, frame_id: str) -> bool:
        return self.path(source_name, frame_id).is_file()

    def put(self, source_name: str, frame_id: str, targets: PointTargets) -> Path:
        """Store one frame's targets (only its seen points, float16) atomically."""
        idx = np.nonzero(targets.seen)[0]
        f = targets.features[idx]
        arrays = {"index": idx.astype(np.int32), "n_points": np.int64(len(targets.seen)),
                  "norm_sum": np.float64(np.linalg.norm(f, axis=1).sum()) if len(idx) else np.float64(0.0)}
        for name in self.store:
            a = getattr(targets, name)[idx]
            arrays[name] = np.clip(a, -_F16_MAX, _F16_MAX).astype(np.float16)
        return save_npz(self.path(source_name, frame_id), arrays, compressed=False)

    def get(self, source_name: str, frame_id: str) -> CachedTargets:
        """The stored targets of one frame; a one-line InputError when missing or unreadable."""
        path = self.path(source_name, frame_id)
        try:
            with np.load(path, allow_pickle=False) as z:
                idx = z["index"].astype(np.int64)
                empty = np.zeros((len(idx), 0), np.float16)
                return CachedTargets(int(z["n_points"]), idx, z["features"] if "features" in z else empty,
                                     z["logits"] if "logits" in z else empty, float(z["norm_sum"]))
        except FileNotFoundError:
            raise InputError(f"no cached targets for frame {frame_id} (teacher {self.teacher_id})") from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise InputError(f"cached targets of frame {frame_id} are unreadable ({type(exc).__name__}): "
                             f"delete {path}") from None

    def fill(self, source, teacher, ids: Sequence[str] | None = None, progress: bool = True) -> dict[str, int]:
        """Compute and store the targets of every frame of ``source`` (or ``ids``) not cached yet.

        ``teacher.segment(images)`` gives one SemanticMap per camera image. Frames are loaded one
        at a time. Returns {"computed": ..., "reused": ...}.
        """
        ids = list(source.ids if ids is None else ids)
        todo = [i for i in ids if not self.has(source.name, i)]
        for fid in tqdm(todo, desc="teacher targets", disable=not progress or not todo, leave=False):
            frame = source.load(fid)
            maps = teacher.segment([c.image for c in frame.images])
            self.put(source.name, fid, point_targets(frame, maps, self.occlusion_px))
        return {"computed": len(todo), "reused": len(ids) - len(todo)}

    def seen_count(self, source_name: str, frame_id: str) -> int:
        """How many points of the frame have targets (reads only the stored index)."""
        try:
            with np.load(self.path(source_name, frame_id), allow_pickle=False) as z:
                return int(z["index"].shape[0])
        except FileNotFoundError:
            raise InputError(f"no cached targets for frame {frame_id} (teacher {self.teacher_id})") from None

    def mean_feature_norm(self, source_name: str, ids: Sequence[str]) -> float:
        """Mean teacher feature norm over the seen points of ``ids`` (reads two scalars per frame)."""
        total, count = 0.0, 0
        for fid in ids:
            with np.load(self.path(source_name, fid), allow_pickle=False) as z:
                total += float(z["norm_sum"])
                count += int(z["index"].shape[0])
        return total / max(count, 1)
