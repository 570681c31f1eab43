"""Records, the :class:`Benchmark` base class and data-root resolution.

A benchmark is a folder on disk in a public layout. :meth:`Benchmark.records` lists it
as small :class:`Record` objects (ids, category, paths, light metadata; no arrays), in
a sorted deterministic order; :meth:`Benchmark.load` reads one record's arrays. Nothing
is ever downloaded or written: every loader only reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from crossdistill.errors import InputError

__all__ = ["Record", "Benchmark", "DATA_ENV", "default_data_root", "resolve_data_root"]

#: Environment variable naming the data root (the folder that holds one folder per dataset).
DATA_ENV = "CROSSDISTILL_DATA"

# src/crossdistill/eval/benchmarks/_base.py -> parents[4] is the repository root
_REPO_ROOT = Path(__file__).resolve().parents[4]


@dataclass(frozen=True)
class Record:
    """One item of a benchmark: an object, a LiDAR frame or an image. No arrays.

    Attributes:
        benchmark: catalog name of the benchmark it came from.
        id: unique within the benchmark (e.g. ``"Box/100141"``, ``"08/000123"``).
        category: object category, sequence / log name, or ImageNet synset.
        paths: role -> file path (e.g. ``{"mesh": ..., "labels": ...}``).
        meta: small metadata (JSON-like): hierarchy nodes, part names, split, ...
    """

    benchmark: str
    id: str
    category: str
    paths: dict[str, Path] = field(default_factory=dict, hash=False)
    meta: dict[str, Any] = field(default_factory=dict, hash=False)


def default_data_root() -> Path:
    """``$CROSSDISTILL_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return (_REPO_ROOT / ".." / "shared" / "data").resolve()


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` when given, else :func:`default_data_root`."""
    return Path(root).expanduser() if root is not None else default_data_root()


class Benchmark:
    """A dataset folder in a public on-disk layout.

    Subclasses set the class attributes and implement :meth:`_scan`, :meth:`load` and
    (optionally) :meth:`_check`. Construct with the dataset folder itself, e.g.
    ``SemanticKITTI("/data/SemanticKITTI/dataset")``, or through
    :func:`crossdistill.eval.benchmarks.get_benchmark` with a data root.

    Attributes:
        name: catalog name.
        folder: folder name under a data root where the catalog looks for it.
        layout: the expected layout in a few words (used in error messages).
        source: where the data is obtained (text only, never fetched).
        path: the dataset folder.
    """

    name: ClassVar[str] = ""
    folder: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    source: ClassVar[str] = ""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise self.missing(f"{self.path} is not a folder")
        self._check()
        self._records: list[Record] | None = None

    # -- subclass hooks ------------------------------------------------------------
    def _check(self) -> None:
        """Raise :meth:`missing` when the folder does not have the expected layout."""

    def _scan(self) -> list[Record]:
        raise NotImplementedError

    def load(self, record: Record) -> dict[str, Any]:
        """Arrays of one record (see the subclass docstring for keys, shapes, dtypes)."""
        raise NotImplementedError

    # -- public --------------------------------------------------------------------
    def records(self) -> list[Record]:
        """All records, sorted, computed once. Raises :class:`InputError` if there are none."""
        if self._records is None:
            recs = self._scan()
            if not recs:
                raise self.missing(f"no items found under {self.path}")
            self._records = recs
        return list(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.records())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @classmethod
    def missing(cls, what: str) -> InputError:
        """One-line :class:`InputError`: what is wrong, the layout, where to get the data."""
        text = f"{cls.name}: {what}; expected {cls.layout}"
        if cls.source:
            text += f"; obtain it from {cls.source}"
        return InputError(" ".join(text.split()))

    def _bad(self, path: Path, why: str) -> InputError:
        """One-line :class:`InputError` for a malformed file of this benchmark."""
        return InputError(" ".join(f"{self.name}: {path}: {why}".split()))


# ------------------------------------------------------------------------ file helpers
def read_json(path: Path, bench: Benchmark | type[Benchmark]) -> Any:
    """Parsed JSON, or a one-line :class:`InputError` naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise bench.missing(f"{path} not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{bench.name}: {path}: cannot read JSON ({type(exc).__name__})") from exc


def read_raw(path: Path, columns: int, bench: Benchmark, dtype=np.float32) -> np.ndarray:
    """(N, columns) array of ``dtype`` from a raw little-endian binary file (scans, label files).

    The file must hold whole records (a file cut mid-record is refused, not silently shortened)
    and, for float data, only finite values.
    """
    dt = np.dtype(dtype).newbyteorder("<")
    try:
        size = Path(path).stat().st_size
        if size % (columns * dt.itemsize):
            raise bench._bad(path, f"{size} bytes is not a whole number of {columns * dt.itemsize}-byte records "
                                   "(cut mid-record?)")
        raw = np.fromfile(path, dtype=dt)
    except OSError as exc:
        raise bench._bad(path, f"cannot read ({type(exc).__name__})") from exc
    if raw.size == 0 or raw.size % columns:
        raise bench._bad(path, f"{raw.size} values is not a positive multiple of {columns}")
    if dt.kind == "f":
        bad = ~np.isfinite(raw.reshape(-1, columns)).all(axis=1)
        if bad.any():
            raise bench._bad(path, f"{int(bad.sum())} of {len(bad)} records hold NaN or infinite values")
    return raw.reshape(-1, columns).astype(dtype, copy=False)


def read_image(path: Path, bench: Benchmark) -> np.ndarray:
    """(H, W, 3) uint8 RGB image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise bench._bad(path, "image not found") from None
    except OSError as exc:
        raise bench._bad(path, f"cannot read image ({type(exc).__name__})") from exc


def lookup(table: np.ndarray, values: np.ndarray, default: int = -1) -> np.ndarray:
    """``table[values]`` as int64 with out-of-range values mapped to ``default``."""
    values = np.asarray(values).astype(np.int64)
    out = np.full(values.shape, default, np.int64)
    ok = (values >= 0) & (values < len(table))
    out[ok] = table[values[ok]]
    return out


def dense_map(mapping: dict[int, int], size: int, default: int = -1) -> np.ndarray:
    """(size,) int64 lookup table from a ``{key: value}`` dict (missing keys -> default)."""
    table = np.full(size, default, np.int64)
    for k, v in mapping.items():
        table[k] = v
    table.setflags(write=False)
    return table
