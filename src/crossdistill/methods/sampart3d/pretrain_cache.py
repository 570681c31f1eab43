"""SAMPart3D stage 1 at collection scale: renders and teacher targets computed once into shards, streamed.

:func:`build_cache` runs :func:`~crossdistill.methods.sampart3d.pretrain.prepare_shape`
(sample, render, 2D teacher, back-projection) on every shape of a collection, ``shard_size``
shapes per task, and writes each task's result as one **npz shard**. :class:`ShapeCache`
reads the finished cache and :class:`CacheStream` streams it to the training loop
(:func:`crossdistill.engine.training.fit`) holding at most ``window`` shards in memory, so
memory does not grow with the collection.

Why npz shards (not webdataset or zarr): a shard is one file written atomically (temp file +
rename, :func:`crossdistill.io_utils.save_npz`), so *a shard file that exists is complete* --
that is the whole resume protocol, with no index to repair after a kill; NumPy reads it with
no new dependency; a shard is read whole, which is what a shuffle window wants (webdataset's
strength, sequential tar streaming from object stores, is not needed on a shared folder, and
zarr's chunked random access is not needed when a shard is the unit of reading).

Layout of a cache folder::

    cache.json            settings + the ordered input list (written first; a rerun with
                          other settings or inputs is refused)
    shard-00000.npz       shapes [0, shard_size): inputs (K, N, 9) float32, knn (K, N, k') int32,
                          target (K, N, C) float16, seen (K, N) bool, names (K,) str, and
                          per-channel sums over seen points (sum, sumsq: (C,) float64, count)
    ...
    manifest.json         written last: shard counts, channel count, mean / std of the
                          targets, failures (shape -> reason). Its presence means complete.

Tasks run as Ray tasks when ``ray`` is installed (``[scale]`` extra) and more than one
worker is asked for, else in spawned worker processes, else in this process. Shape ``i`` of
the collection is always prepared with seed ``seed + i``, so a shard's content does not
depend on which worker made it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from crossdistill.engine.distributed import World
from crossdistill.errors import InputError
from crossdistill.io_utils import save_npz, write_json

__all__ = ["TeacherSpec", "build_cache", "ShapeCache", "CacheStream", "collate_shapes", "shard_path"]

_FORMAT = "crossdistill-pretrain-cache-v1"


@dataclass(frozen=True)
class TeacherSpec:
    """A picklable recipe of the feature teacher, built once in every worker.

    Attributes:
        name: ``offline`` (render features, no weights) or ``dinov2``.
        weights: local DINOv2 folder (None: the Hugging Face cache).
        device: torch device of the teacher.
    """

    name: str = "offline"
    weights: str | None = None
    device: str = "cpu"

    def build(self):
        if self.name == "offline":
            from crossdistill.teachers.offline_features import RenderFeatureTeacher

            return RenderFeatureTeacher()
        from crossdistill.teachers.cache import cached
        from crossdistill.teachers.registry import load_teacher

        return cached(load_teacher(self.name, self.weights, device=self.device))


def shard_path(root: Path, index: int) -> Path:
    return Path(root) / f"shard-{index:05d}.npz"


def _settings(config, shard_size: int, teacher: TeacherSpec) -> dict[str, Any]:
    """What decides a cache's content (training-only settings left out)."""
    c = asdict(config)
    return {"n_points": c["n_points"], "n_views": c["n_views"], "image_size": c["image_size"], "k": c["k"],
            "seed": c["seed"], "shard_size": int(shard_size), "teacher": teacher.name,
            "teacher_weights": teacher.weights}


_worker_teacher: dict[TeacherSpec, Any] = {}


def _make_shard(root: str, index: int, items: Sequence[tuple[str, str]], first: int, config, teacher: TeacherSpec,
                threads: int | None = None) -> dict[str, Any]:
    """Prepare shapes ``items`` (global indices from ``first``) and write shard ``index``; returns its summary.

    Runs in a worker (process or Ray task) or in the caller; one shape's bad input is recorded
    as a failure and the others go on.
    """
    from crossdistill.geometry.io import load_shape
    from crossdistill.methods.sampart3d.pretrain import prepare_shape

    if threads is not None:
        torch.set_num_threads(threads)
    if teacher not in _worker_teacher:
        _worker_teacher[teacher] = teacher.build()
    t = _worker_teacher[teacher]
    done, failures = [], {}
    for j, (name, path) in enumerate(items):
        try:
            done.append(prepare_shape(load_shape(path), t, config, seed=config.seed + first + j))
        except InputError as exc:
            failures[name] = str(exc)
    C = done[0].target.shape[1] if done else 0
    N, kk = config.n_points, (done[0].knn.shape[1] if done else 0)
    seen_t = [s.target[s.seen].astype(np.float64) for s in done]
    arrays = {
        "inputs": np.stack([s.inputs for s in done]) if done else np.zeros((0, N, 9), np.float32),
        "knn": np.stack([s.knn for s in done]).astype(np.int32) if done else np.zeros((0, N, kk), np.int32),
        "target": np.stack([s.target for s in done]).astype(np.float16) if done else np.zeros((0, N, 0), np.float16),
        "seen": np.stack([s.seen for s in done]) if done else np.zeros((0, N), bool),
        "names": np.asarray([s.name for s in done], dtype=str),
        "sum": sum((x.sum(0) for x in seen_t), np.zeros(C)),
        "sumsq": sum(((x ** 2).sum(0) for x in seen_t), np.zeros(C)),
        "count": np.asarray(sum(len(x) for x in seen_t)),
        "failures": np.asarray(json.dumps(failures)),
        "teacher_id": np.asarray(getattr(t, "teacher_id", type(t).__name__)),
    }
    save_npz(shard_path(Path(root), index), arrays, compressed=False)
    return {"index": index, "count": len(done), "failures": failures}


def build_cache(files: Sequence[tuple[str, Path]], root: str | Path, config, teacher: TeacherSpec = TeacherSpec(),
                shard_size: int = 64, workers: int = 1, executor: str = "auto", progress: bool = True
                ) -> "ShapeCache":
    """Prepare every shape of ``files`` into npz shards under ``root`` (resumable); see the module docstring.

    Args:
        files: (name, path) of each shape, in a fixed order.
        root: the cache folder (created).
        config: :class:`~crossdistill.methods.sampart3d.pretrain.PretrainConfig` (points, views,
            render size, k, seed are used).
        teacher: the feature teacher's recipe.
        shard_size: shapes per shard (and per task).
        workers: parallel tasks.
        executor: ``ray``, ``processes`` or ``auto`` (Ray when installed and ``workers`` > 1).
        progress: a bar over shards.

    Returns:
        the finished :class:`ShapeCache`.

    Raises:
        InputError: ``root`` holds a cache of other settings or inputs; no shape could be used.
    """
    root = Path(root)
    if shard_size < 1 or workers < 1:
        raise InputError("need shard_size >= 1 and workers >= 1")
    settings = _settings(config, shard_size, teacher)
    names = [[n, str(p)] for n, p in files]
    head = {"format": _FORMAT, "settings": settings, "inputs": names}
    if (root / "cache.json").is_file():
        old = json.loads((root / "cache.json").read_text())
        if old.get("settings") != settings or old.get("inputs") != names:
            raise InputError(f"{root}: holds a pretraining cache of other settings or shapes; "
                             "use another --cache folder or remove it")
        if (root / "manifest.json").is_file():
            return ShapeCache(root)
    else:
        write_json(root / "cache.json", head)
    n_shards = math.ceil(len(files) / shard_size)
    todo = [i for i in range(n_shards) if not shard_path(root, i).is_file()]
    jobs = [(str(root), i, [(n, str(p)) for n, p in files[i * shard_size:(i + 1) * shard_size]], i * shard_size,
             config, teacher) for i in todo]
    bar = tqdm(total=n_shards, initial=n_shards - len(todo), desc="render + teacher (shards)", disable=not progress)
    kind = _executor(executor, workers)
    try:
        if kind == "local" or not jobs:
            for job in jobs:
                _make_shard(*job)
                bar.update(1)
        elif kind == "ray":
            _run_ray(jobs, workers, bar)
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(workers, mp_context=__import__("multiprocessing").get_context("spawn")) as pool:
                for fut in as_completed([pool.submit(_make_shard, *job, threads) for job in jobs]):
                    fut.result()
                    bar.update(1)
    finally:
        bar.close()
    return _finish(root, n_shards)


def _executor(executor: str, workers: int) -> str:
    if executor not in ("auto", "ray", "processes"):
        raise InputError(f"executor must be auto, ray or processes (got {executor!r})")
    if workers == 1 and executor != "ray":
        return "local"
    if executor in ("auto", "ray"):
        try:
            import ray  # noqa: F401
            return "ray"
        except ImportError:
            if executor == "ray":
                raise InputError("Ray tasks need ray: pip install 'crossdistill[scale]'") from None
    return "processes"


def _run_ray(jobs: list[tuple], workers: int, bar) -> None:
    """Each shard as one Ray task on a local instance of ``workers`` CPUs (or the cluster ``ray.init`` finds)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        task = ray.remote(num_cpus=1)(_make_shard)
        pending = [task.remote(*job, 1) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ray.get(ready)
            bar.update(len(ready))
    finally:
        if started:
            ray.shutdown()


def _finish(root: Path, n_shards: int) -> "ShapeCache":
    """Sum the shards' statistics into ``manifest.json`` (the completion marker)."""
    shards, failures, teacher_ids = [], {}, set()
    total = total_sq = None
    count = 0
    C = 0
    for i in range(n_shards):
        with np.load(shard_path(root, i)) as z:
            k = int(z["seen"].shape[0])
            shards.append({"file": shard_path(root, i).name, "count": k})
            failures.update(json.loads(str(z["failures"])))
            if k:
                C = int(z["target"].shape[2])
                teacher_ids.add(str(z["teacher_id"]))
                total = z["sum"] if total is None else total + z["sum"]
                total_sq = z["sumsq"] if total_sq is None else total_sq + z["sumsq"]
                count += int(z["count"])
    n = sum(s["count"] for s in shards)
    if n == 0 or count == 0:
        raise InputError(f"none of the shapes could be used for pretraining ({len(failures)} failed)")
    if len(teacher_ids) != 1:
        raise InputError(f"{root}: shards made by different teachers {sorted(teacher_ids)}")
    mean = total / count
    std = np.maximum(np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0)), 1e-4)
    write_json(root / "manifest.json", {"format": _FORMAT, "shards": shards, "count": n, "channels": C,
                                        "mean": mean.tolist(), "std": std.tolist(), "teacher_id": teacher_ids.pop(),
                                        "failures": failures})
    return ShapeCache(root)


class ShapeCache:
    """A finished cache folder (see the module docstring); reads only ``manifest.json`` until streamed.

    Attributes:
        root: the folder.
        counts: shapes per shard.
        channels: C, target channels.
        mean, std: (C,) float32 per-channel statistics of the targets over seen points.
        teacher_id: the teacher that made the targets.
        failures: shape name -> why it was left out.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.is_file():
            raise InputError(f"{self.root}: not a finished pretraining cache (no manifest.json)")
        doc = json.loads(path.read_text())
        if doc.get("format") != _FORMAT:
            raise InputError(f"{path}: not a {_FORMAT} manifest")
        self.files = [self.root / s["file"] for s in doc["shards"]]
        self.counts = [int(s["count"]) for s in doc["shards"]]
        self.channels = int(doc["channels"])
        self.mean = np.asarray(doc["mean"], np.float32)
        self.std = np.asarray(doc["std"], np.float32)
        self.teacher_id = str(doc["teacher_id"])
        self.failures = dict(doc["failures"])

    def __len__(self) -> int:
        return sum(self.counts)

    def names(self) -> list[str]:
        """Every cached shape's name, in shard order (reads each shard's name list)."""
        out: list[str] = []
        for f in self.files:
            with np.load(f) as z:
                out += [str(n) for n in z["names"]]
        return out

    def load_shard(self, i: int) -> dict[str, np.ndarray]:
        """The arrays of shard ``i`` (inputs, knn, target, seen)."""
        with np.load(self.files[i]) as z:
            return {k: z[k] for k in ("inputs", "knn", "target", "seen")}


def collate_shapes(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], mean: np.ndarray,
                   std: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Stack (inputs, knn, target, seen) of B shapes into tensors with standardised targets.

    Returns:
        inputs (B, N, 9) float32, knn (B, N, k') int64, target (B, N, C) float32 (0 where unseen),
        seen (B, N) bool.
    """
    inputs = np.stack([r[0] for r in rows])
    knn = np.stack([r[1] for r in rows]).astype(np.int64)
    target = (np.stack([r[2] for r in rows]).astype(np.float32) - mean) / std
    seen = np.stack([r[3] for r in rows])
    target[~seen] = 0.0  # unseen points carry no target (and no loss)
    return tuple(torch.from_numpy(a) for a in (inputs, knn, target, seen))


class CacheStream:
    """A :class:`~crossdistill.engine.training.StepData` streaming a :class:`ShapeCache`.

    Epoch ``e``'s order: the shards permuted (seed, e), taken ``window`` at a time, the shapes
    of each window permuted (seed, e, window index); global micro-batch ``j`` is the ``j``-th
    block of ``batch_size`` shapes of that order (an epoch keeps whole blocks only), and rank
    ``r`` of ``W`` takes the ``r``-th of its ``W`` equal parts. Only the current window's shards
    (two windows where a batch straddles them) are in memory; starting at ``start`` skips the
    windows before it without reading them.

    Args:
        cache: the cache.
        batch_size: shapes per global micro-batch (a multiple of the number of ranks).
        seed: seeds the order.
        window: shards shuffled together.
    """

    def __init__(self, cache: ShapeCache, batch_size: int, seed: int = 0, window: int = 2) -> None:
        if batch_size < 1 or batch_size > len(cache):
            raise InputError(f"a batch of {batch_size} shapes needs at least that many cached shapes ({len(cache)})")
        self.cache, self.batch_size, self.seed, self.window = cache, batch_size, seed, max(1, window)
        self.shards_loaded = 0  # how many shard reads this stream made (tests and benchmarks)

    @property
    def per_epoch(self) -> int:
        return len(self.cache) // self.batch_size

    def _windows(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.cache.files))
        return [[int(i) for i in order[a:a + self.window]] for a in range(0, len(order), self.window)]

    def _positions(self, epoch: int, start_pos: int) -> Iterator[tuple[int, int, int]]:
        """(window, shard, row) of epoch positions ``start_pos, ...`` (windows before it not read)."""
        pos = 0
        for w, shards in enumerate(self._windows(epoch)):
            size = sum(self.cache.counts[s] for s in shards)
            if pos + size <= start_pos:
                pos += size
                continue
            pairs = [(s, r) for s in shards for r in range(self.cache.counts[s])]
            perm = np.random.default_rng([self.seed, epoch, w]).permutation(len(pairs))
            for p in perm[max(0, start_pos - pos):]:
                yield (w, *pairs[int(p)])
            pos += size

    def batches(self, start: int, world: World) -> Iterator[tuple[torch.Tensor, ...]]:
        """Rank ``world.rank``'s share of global micro-batches ``start, start + 1, ...`` (endless), as
        :func:`collate_shapes` tensors."""
        B, W = self.batch_size, world.size
        if B % W:
            raise InputError(f"the global batch ({B}) must be a multiple of the number of processes ({W})")
        local = B // W
        epoch, j = divmod(start, self.per_epoch)
        while True:
            loaded: dict[int, tuple[int, dict[str, np.ndarray]]] = {}  # shard -> (window, arrays)
            it = self._positions(epoch, j * B)
            for _ in range(j, self.per_epoch):
                block = [next(it) for _ in range(B)]
                last_window = block[-1][0]
                mine = block[world.rank * local:(world.rank + 1) * local]
                for w, s, _ in mine:
                    if s not in loaded:
                        loaded[s] = (w, self.cache.load_shard(s))
                        self.shards_loaded += 1
                rows = [tuple(loaded[s][1][k][r] for k in ("inputs", "knn", "target", "seen")) for _, s, r in mine]
                for s in [s for s, (w, _) in loaded.items() if w < last_window]:
                    del loaded[s]  # the order never returns to an earlier window
                yield collate_shapes(rows, self.cache.mean, self.cache.std)
            epoch, j = epoch + 1, 0
