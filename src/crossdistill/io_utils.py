"""Atomic file writes: the one home for "write to a temp file, then rename".

Every output of crossdistill goes through :func:`atomic_write` so that an interrupted
run never leaves a half-written file behind: data is written to a hidden temporary
file in the destination directory and moved into place with :func:`os.replace`
(atomic on POSIX and Windows when source and target share a file system). On any
exception the temporary file is removed and the target is left untouched.

The temporary name ends with the target's full name, so libraries that pick a format
from the suffix (``np.save``, ``PIL.Image.save``, ``trimesh.Trimesh.export``) behave
exactly as they would on the final path and never append a second suffix.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = write_text(out, "hi")
    >>> out.read_text()
    'hi'
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write",
    "write_bytes",
    "write_text",
    "write_json",
    "save_npy",
    "save_npz",
    "save_image",
    "export_trimesh",
]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    Args:
        path: final destination.
        make_parents: create missing parent directories.

    Yields:
        A fresh temporary path in the same directory (it does not exist yet). Write
        the complete file there; when the ``with`` block ends without an exception it
        replaces ``path`` atomically. If the block raises, or writes nothing, the
        temporary file is removed and ``path`` is not touched (an exception is
        re-raised; writing nothing raises ``FileNotFoundError``).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
        >>> with atomic_write(out) as tmp:
        ...     _ = tmp.write_bytes(b"abc")
        >>> out.read_bytes()
        b'abc'
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{target.name}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_write: nothing was written for {target}")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``; returns the path."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``path``; returns the path."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write ``obj`` as JSON (numpy arrays / scalars and paths allowed)."""
    text = json.dumps(obj, indent=indent, default=_json_default)
    return write_text(path, text + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Atomically ``np.save`` one array (``allow_pickle=False``)."""
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
    return Path(path)


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], compressed: bool = True) -> Path:
    """Atomically write a ``.npz`` archive of named arrays."""
    saver = np.savez_compressed if compressed else np.savez
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            saver(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    return Path(path)


def save_image(path: str | os.PathLike, image: Any, **save_kwargs: Any) -> Path:
    """Atomically save a PIL image or an (H, W) / (H, W, 3|4) uint8 array.

    The format follows the suffix of ``path`` (as ``PIL.Image.save`` does).
    """
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    with atomic_write(path) as tmp:
        image.save(tmp, format=fmt, **save_kwargs)
    return Path(path)


def export_trimesh(path: str | os.PathLike, geometry: Any, **export_kwargs: Any) -> Path:
    """Atomically export a trimesh ``Trimesh`` / ``Scene`` / ``PointCloud``.

    The file type follows the suffix of ``path``. Formats that write side files
    (OBJ materials and textures) write those next to the temporary file, non-atomically.
    """
    file_type = Path(path).suffix.lstrip(".").lower()
    with atomic_write(path) as tmp:
        geometry.export(str(tmp), file_type=file_type, **export_kwargs)
    return Path(path)
