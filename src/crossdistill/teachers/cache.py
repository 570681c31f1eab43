"""Disk cache of teacher outputs, so a re-run costs no teacher time.

Entries are npz files at ``<root>/<teacher slug>/<content hash>-<rig hash>[-<extra>].npz``:

* the *content hash* covers the rendered RGB and face-id buffers (it stands for the shape
  and how it was rendered),
* the *rig hash* covers the cameras (intrinsics, extrinsics, image size),
* the teacher directory is named after ``teacher.teacher_id`` (backend, model, settings),
* text teachers add a hash of the part names.

Writes are atomic (temporary file in the same directory, then ``os.replace``), so an
interrupted run never leaves a half-written entry. Boolean masks are bit-packed.

Example:
    >>> cache = TeacherCache("/tmp/cd-cache")            # doctest: +SKIP
    >>> teacher = cached(SamMaskTeacher.from_pretrained(), cache)  # doctest: +SKIP
    >>> teacher.masks(views)   # computes and stores     # doctest: +SKIP
    >>> teacher.masks(views)   # loads, no model call    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from crossdistill.types import Views
from crossdistill.teachers.base import FeatureMaps, InstanceSet, MaskSet, PartPredictions

__all__ = ["TeacherCache", "cached", "default_cache_dir", "hash_array", "views_key"]

_BITS, _SHAPE = "__bits", "__shape"


def default_cache_dir() -> Path:
    """``$CROSSDISTILL_CACHE`` or ``~/.cache/crossdistill``."""
    return Path(os.environ.get("CROSSDISTILL_CACHE") or "~/.cache/crossdistill").expanduser()


def hash_array(*arrays: Any, digest_size: int = 16) -> str:
    """Hex digest of arrays' dtype, shape and bytes (also accepts str/int/float/None).

    Example:
        >>> hash_array(np.zeros(3)) == hash_array(np.zeros(3))
        True
        >>> hash_array(np.zeros(3)) == hash_array(np.zeros(3, np.float32))
        False
    """
    h = hashlib.blake2b(digest_size=digest_size)
    for a in arrays:
        if a is None or isinstance(a, (str, int, float, bool)):
            h.update(repr(a).encode())
            continue
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def views_key(views: Views) -> str:
    """``<content>-<rig>``: hash of the rgb + face-id buffers, hash of the camera rig."""
    content = hash_array(views.rgb, views.face_id, digest_size=10)
    cams = views.cameras
    rig = hash_array(cams.K, cams.world_to_cam, int(cams.width), int(cams.height), digest_size=6)
    return f"{content}-{rig}"


def _slug(teacher_id: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", teacher_id).strip("_")[:80]
    return f"{readable}-{hash_array(teacher_id, digest_size=4)}"


def _pack(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, a in arrays.items():
        a = np.asarray(a)
        if a.dtype == bool:
            out[k + _BITS] = np.packbits(a.ravel())
            out[k + _SHAPE] = np.asarray(a.shape, np.int64)
        else:
            out[k] = a
    return out


def _unpack(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, a in arrays.items():
        if k.endswith(_SHAPE):
            continue
        if k.endswith(_BITS):
            name = k[: -len(_BITS)]
            shape = tuple(int(s) for s in arrays[name + _SHAPE])
            out[name] = np.unpackbits(a, count=int(np.prod(shape))).astype(bool).reshape(shape)
        else:
            out[k] = a
    return out


class TeacherCache:
    """npz store of teacher outputs keyed by (views content, camera rig, teacher id).

    Args:
        root: cache directory; default :func:`default_cache_dir` (``$CROSSDISTILL_CACHE``
            or ``~/.cache/crossdistill``), entries under ``<root>/teachers``.

    Attributes:
        hits, misses: counters of :meth:`load` calls that found / did not find an entry.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = (Path(root) if root is not None else default_cache_dir()).expanduser() / "teachers"
        self.hits = 0
        self.misses = 0

    def path(self, teacher_id: str, key: str) -> Path:
        return self.root / _slug(teacher_id) / f"{key}.npz"

    def load(self, teacher_id: str, key: str) -> dict[str, np.ndarray] | None:
        """The stored arrays, or ``None`` (also for an unreadable entry, which is recomputed)."""
        p = self.path(teacher_id, key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = _unpack({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError, EOFError):
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def save(self, teacher_id: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Write atomically (temporary file + ``os.replace``); returns the entry path."""
        p = self.path(teacher_id, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=p.stem + ".", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **_pack(arrays))
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p


# --------------------------------------------------------------------------- encoding


def _encode_list(items: Sequence[Any]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"n": np.asarray(len(items), np.int64)}
    for i, item in enumerate(items):
        arrays.update({f"{i}.{k}": v for k, v in item.to_arrays().items()})
    return arrays


def _decode_list(cls: Any, arrays: dict[str, np.ndarray], views: Views) -> list[Any]:
    out = []
    for i in range(int(arrays["n"])):
        prefix = f"{i}."
        sub = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        out.append(cls.from_arrays(sub, views))
    return out


# --------------------------------------------------------------------------- wrapper


class _CachedBase:
    """Delegates to ``inner``; the mixins below add the cached teacher methods."""

    def __init__(self, inner: Any, cache: TeacherCache) -> None:
        self.inner = inner
        self.cache = cache
        self.teacher_id: str = inner.teacher_id
        self.is_offline_default: bool = bool(getattr(inner, "is_offline_default", False))

    def __getattr__(self, name: str) -> Any:  # other attributes of the wrapped teacher
        return getattr(self.__dict__["inner"], name)

    def __repr__(self) -> str:
        return f"cached({self.inner!r}, {self.cache.root})"

    def _key(self, method: str, views: Views, *extra: Any) -> str:
        key = f"{method}-{views_key(views)}"
        return key + (f"-{hash_array(*extra, digest_size=6)}" if extra else "")


class _CachedFeatures:
    def features(self, views: Views) -> FeatureMaps:
        key = self._key("features", views)
        hit = self.cache.load(self.teacher_id, key)
        if hit is not None:
            return FeatureMaps.from_arrays(hit, views)
        result = self.inner.features(views)
        self.cache.save(self.teacher_id, key, result.to_arrays())
        return result


class _CachedMasks:
    def masks(self, views: Views) -> list[MaskSet]:
        key = self._key("masks", views)
        hit = self.cache.load(self.teacher_id, key)
        if hit is not None:
            return _decode_list(MaskSet, hit, views)
        result = self.inner.masks(views)
        self.cache.save(self.teacher_id, key, _encode_list(result))
        return result


class _CachedPredict:
    def predict(self, views: Views, part_names: Sequence[str]) -> list[PartPredictions]:
        key = self._key("predict", views, "\x1f".join(part_names))
        hit = self.cache.load(self.teacher_id, key)
        if hit is not None:
            return _decode_list(PartPredictions, hit, views)
        result = self.inner.predict(views, part_names)
        self.cache.save(self.teacher_id, key, _encode_list(result))
        return result


class _CachedInstances:
    def instances(self, views: Views) -> list[InstanceSet]:
        key = self._key("instances", views)
        hit = self.cache.load(self.teacher_id, key)
        if hit is not None:
            return _decode_list(InstanceSet, hit, views)
        result = self.inner.instances(views)
        self.cache.save(self.teacher_id, key, _encode_list(result))
        return result


_MIXINS = {"features": _CachedFeatures, "masks": _CachedMasks, "predict": _CachedPredict, "instances": _CachedInstances}


@lru_cache(maxsize=None)
def _wrapper_class(methods: tuple[str, ...]) -> type:
    bases = tuple(_MIXINS[m] for m in methods) + (_CachedBase,)
    return type("CachedTeacher", bases, {"__doc__": f"Cached teacher ({', '.join(methods)})."})


def cached(teacher: Any, cache: TeacherCache | str | os.PathLike | None = None) -> Any:
    """Wrap a teacher so each of its teacher methods reads/writes ``cache`` first.

    The wrapper exposes exactly the teacher methods the wrapped object has (so it still
    satisfies the same protocols), the same ``teacher_id`` and ``is_offline_default``, and
    forwards every other attribute.

    Args:
        teacher: any object with ``teacher_id`` and one or more of ``features``, ``masks``,
            ``predict``, ``instances``.
        cache: a :class:`TeacherCache`, a directory, or ``None`` for the default directory.
    """
    if isinstance(teacher, _CachedBase):
        return teacher
    if not isinstance(cache, TeacherCache):
        cache = TeacherCache(cache)
    methods = tuple(m for m in _MIXINS if callable(getattr(teacher, m, None)))
    if not methods:
        raise TypeError(f"{type(teacher).__name__} has none of the teacher methods {sorted(_MIXINS)}")
    return _wrapper_class(methods)(teacher, cache)
