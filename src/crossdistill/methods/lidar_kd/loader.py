"""Streaming training data: frames from a source, targets from the cache, augmented, packed in batches.

:class:`DistillFrames` is a ``torch.utils.data.Dataset`` over frame ids: item ``i`` loads one
scan (:class:`~crossdistill.methods.lidar_kd.datasets.FrameSource`) and its cached targets
(:class:`~crossdistill.methods.lidar_kd.cache.TargetCache`), keeps the points within
``max_range`` and the ``context`` region around the seen points, and augments the positions.
It holds only ids, so memory does not grow with the number of frames, and DataLoader workers
read frames in parallel.

:class:`Augment`: a rotation about z, flips of x and y, a uniform scale and a clipped Gaussian
jitter, drawn per item from ``(seed, epoch, index)`` (the same under any worker count). They
move points only; no point is added or dropped, so every target stays on its point.
Point features are computed after augmentation (:func:`point_features`).

:func:`collate_scans` packs several scans into one voxel batch (the packed form the sparse
U-Net takes: one voxel grid with a cloud index per voxel), with the neighbour rulebooks built
in the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from crossdistill.methods.lidar_kd.student import ScanInput, StudentConfig, prepare_batch

__all__ = ["Augment", "DistillFrames", "TrainBatch", "collate_scans", "point_features", "make_loader", "LoaderBatches"]


@dataclass(frozen=True)
class Augment:
    """Random rigid-ish transforms of a scan (all off: ``Augment.none()``).

    Attributes:
        rotate: radians, the rotation about z is uniform in [-rotate, rotate] (pi: any heading).
        flip: probability of mirroring x, and (independently) of mirroring y.
        scale: (low, high) of a uniform scale factor.
        jitter: metres, std of a Gaussian displacement per point (clipped at 3 std).
    """

    rotate: float = float(np.pi)
    flip: float = 0.5
    scale: tuple[float, float] = (0.95, 1.05)
    jitter: float = 0.01

    @classmethod
    def none(cls) -> "Augment":
        return cls(0.0, 0.0, (1.0, 1.0), 0.0)

    def apply(self, xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, 3) float32 transformed copy of (N, 3) ``xyz``."""
        a = rng.uniform(-self.rotate, self.rotate)
        c, s = np.cos(a), np.sin(a)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        flip = np.where(rng.random(2) < self.flip, -1.0, 1.0)
        R = R * np.array([flip[0], flip[1], 1.0])[None, :]  # mirror before rotating
        out = xyz.astype(np.float64) @ R.T * rng.uniform(*self.scale)
        if self.jitter > 0:
            out += np.clip(rng.normal(0, self.jitter, out.shape), -3 * self.jitter, 3 * self.jitter)
        return out.astype(np.float32)


def point_features(xyz: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """(N, 4) float32 x / 50, y / 50, z / 3 and intensity in [0, 1] (as :meth:`LidarFrame.point_features`)."""
    return np.c_[xyz[:, 0] / 50.0, xyz[:, 1] / 50.0, xyz[:, 2] / 3.0, intensity].astype(np.float32)


class DistillFrames(torch.utils.data.Dataset):
    """Frames with their cached targets, cropped and augmented (see the module docstring).

    Args:
        source: a frame source.
        targets: anything with ``get(source_name, frame_id) -> CachedTargets`` (a TargetCache).
        ids: the frame ids (the training frames).
        max_range: metres (horizontal); farther points are dropped.
        context: metres around the seen points kept (:func:`~crossdistill.methods.lidar_kd.distill.context_region`);
            0 keeps every point.
        augment: the augmentation, None for none.
        seed: with :attr:`epoch` and the item index, the augmentation draw.

    An item is a dict: ``xyz`` (N', 3) float32, ``features`` (N', 4) float32, ``seen`` (S,) int64
    rows of the kept points a camera sees, ``f2`` (S, C) / ``z2`` (S, K) float16 targets, ``name``.
    """

    def __init__(self, source, targets, ids, max_range: float = 50.0, context: float = 4.0,
                 augment: Augment | None = None, seed: int = 0) -> None:
        self.source, self.targets, self.ids = source, targets, list(ids)
        self.max_range, self.context, self.augment, self.seed = max_range, context, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from crossdistill.methods.lidar_kd.distill import context_region

        fid = self.ids[i]
        frame = self.source.load(fid)
        tg = self.targets.get(self.source.name, fid)
        if tg.n_points != len(frame.points):
            raise ValueError(f"frame {fid}: {tg.n_points} cached targets for {len(frame.points)} points (stale cache?)")
        p = frame.points
        seen_mask = np.zeros(len(p), bool)
        seen_mask[tg.index] = True
        keep = np.hypot(p[:, 0], p[:, 1]) <= self.max_range
        if self.context > 0:
            keep &= context_region(p, seen_mask, self.context)
        kept = np.nonzero(keep)[0]
        # rows of the stored targets whose point is kept, and their row among the kept points
        rows = np.nonzero(keep[tg.index])[0]
        new_row = np.cumsum(keep) - 1
        xyz = p[kept, :3].astype(np.float32)
        if self.augment is not None:
            xyz = self.augment.apply(xyz, np.random.default_rng([self.seed, self.epoch, i]))
        inten = np.clip(p[kept, 3] / frame.intensity_scale, 0, 1) if p.shape[1] > 3 else np.zeros(len(kept))
        return {"name": fid, "xyz": xyz, "features": point_features(xyz, inten),
                "seen": new_row[tg.index[rows]].astype(np.int64), "f2": tg.features[rows], "z2": tg.logits[rows]}


@dataclass
class TrainBatch:
    """Several scans packed for one step.

    Attributes:
        scan: the packed voxel batch (:class:`ScanInput`; its point rows are the scans' points, concatenated).
        seen: (S,) int64 point rows with a target.
        f2: (S, C) float32 teacher features; z2: (S, K) float32 teacher logits.
        offsets: (B + 1,) int64 first point row of each scan (the last is the total).
        names: the frame ids.
    """

    scan: ScanInput
    seen: torch.Tensor
    f2: torch.Tensor
    z2: torch.Tensor
    offsets: torch.Tensor
    names: list[str]

    def to(self, device: str | torch.device) -> "TrainBatch":
        return TrainBatch(self.scan.to(device), self.seen.to(device), self.f2.to(device), self.z2.to(device),
                          self.offsets, self.names)


def collate_scans(items: list[dict[str, Any]], student: StudentConfig) -> TrainBatch:
    """Pack items of :class:`DistillFrames` into one :class:`TrainBatch` (rulebooks built here, in the worker)."""
    sizes = [len(it["xyz"]) for it in items]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    scan = prepare_batch([it["features"] for it in items], [it["xyz"] for it in items], student)
    for level in scan.pyramid.levels:
        level.rulebook()
    seen = np.concatenate([it["seen"] + o for it, o in zip(items, offsets)])
    f2 = torch.as_tensor(np.concatenate([it["f2"] for it in items]).astype(np.float32))
    z2 = torch.as_tensor(np.concatenate([it["z2"] for it in items]).astype(np.float32))
    return TrainBatch(scan, torch.as_tensor(seen), f2, z2, torch.as_tensor(offsets), [it["name"] for it in items])


def make_loader(dataset: DistillFrames, student: StudentConfig, batch_size: int = 2, workers: int = 0,
                seed: int = 0) -> torch.utils.data.DataLoader:
    """A shuffling DataLoader of :class:`TrainBatch` (seeded order; ``workers`` processes read frames)."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
        collate_fn=partial(collate_scans, student=student), generator=torch.Generator().manual_seed(seed),
        persistent_workers=False, prefetch_factor=2 if workers else None)


class LoaderBatches:
    """The training engine's data source (``crossdistill.engine.training.StepData``) over :class:`DistillFrames`.

    Each epoch's order is torch's ``DistributedSampler`` permutation (seed + epoch, shared out
    between ranks under torchrun, the last incomplete batch dropped, as
    :class:`crossdistill.engine.data.SampledBatches` does); the batches are read by a DataLoader
    with ``workers`` processes and packed by :func:`collate_scans`. ``dataset.epoch`` follows the
    epoch, so the augmentation differs between epochs. ``batch_size`` is the global batch
    (all ranks), at most the number of frames.
    """

    def __init__(self, dataset: DistillFrames, student: StudentConfig, batch_size: int = 2, workers: int = 0,
                 seed: int = 0) -> None:
        self.dataset, self.student, self.workers, self.seed = dataset, student, workers, seed
        self.batch_size = max(1, min(batch_size, len(dataset)))

    @property
    def per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def batches(self, start: int, world):
        from crossdistill.errors import InputError

        if self.batch_size % world.size:
            raise InputError(f"the global batch ({self.batch_size} scans) must be a multiple of the number of "
                             f"processes ({world.size})")
        local = self.batch_size // world.size
        sampler = torch.utils.data.DistributedSampler(self.dataset, num_replicas=world.size, rank=world.rank,
                                                      shuffle=True, seed=self.seed, drop_last=True)
        epoch, j = divmod(start, self.per_epoch)
        while True:
            sampler.set_epoch(epoch)
            self.dataset.epoch = epoch
            order = list(sampler)
            blocks = [order[k * local:(k + 1) * local] for k in range(j, self.per_epoch)]
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=blocks, num_workers=self.workers,
                collate_fn=partial(collate_scans, student=self.student), persistent_workers=False,
                prefetch_factor=2 if self.workers else None)
            yield from loader
            epoch, j = epoch + 1, 0
