"""Header sanity checks run before a reader allocates anything.

Binary formats state their sizes in a header (LAS point count and record length, NumPy
array shape, a compressed block's raw size). A corrupt or hostile file can claim billions
of points in a few hundred bytes, and a reader that trusts it allocates gigabytes before it
notices the data is not there. Each check here compares what the header claims with what
the file can hold and raises a one-line :class:`~crossdistill.errors.InputError` naming
the file and the contradiction; nothing is allocated beyond the header itself.

:data:`MAX_ARRAY_BYTES` caps any single array a point-cloud file may declare.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError

__all__ = ["MAX_ARRAY_BYTES", "check_las_header", "check_npy_header", "check_npz_members", "check_lzf_sizes"]

#: Largest array one input file may declare (4 GiB: about 170 M float64 points).
MAX_ARRAY_BYTES = 4 * 2**30
#: Most a zip member may expand (legitimate float arrays compress far less; a bomb of zeros ~1000x).
MAX_ZIP_RATIO = 200
#: Most an LZF block can expand (a back reference of at most 264 bytes costs 3 bytes).
MAX_LZF_RATIO = 90

# Bytes of one point record per LAS point data format (formats 0-10), without extra bytes.
_LAS_RECORD_MIN = (20, 28, 26, 34, 57, 63, 30, 36, 38, 59, 67)
_LAS_HEADER_MIN = 227  # LAS 1.0-1.2 public header block


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{int(n)} bytes"


def check_las_header(path: Path) -> int:
    """Check a LAS/LAZ public header against the file; returns the number of points.

    Checked: signature, version 1.0-1.4, header size and point-data offset inside the file,
    point data format 0-10 with a record at least as long as the format needs, finite non-zero
    scale factors, and the points fitting in the file (uncompressed LAS) or a compression
    ratio of at most :data:`MAX_ZIP_RATIO` (LAZ) and :data:`MAX_ARRAY_BYTES` decoded.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(375)
    bad = f"{path}: not a valid LAS/LAZ file"
    if len(head) < _LAS_HEADER_MIN or head[:4] != b"LASF":
        raise InputError(f"{bad} (header shorter than {_LAS_HEADER_MIN} bytes or no LASF signature)")
    major, minor = head[24], head[25]
    if major != 1 or minor > 4:
        raise InputError(f"{bad} (version {major}.{minor}; LAS 1.0-1.4 expected)")
    header_size, offset, n_vlr, fmt, rec_len, legacy = struct.unpack_from("<HIIBHI", head, 94)
    if not _LAS_HEADER_MIN <= header_size <= min(offset, size) or offset > size:
        raise InputError(f"{bad} (header size {header_size} / point data offset {offset} do not fit "
                         f"a {size}-byte file)")
    if n_vlr * 54 > offset - header_size:
        raise InputError(f"{bad} ({n_vlr} variable-length records do not fit before the point data)")
    compressed = bool(fmt & 0x80) or path.suffix.lower() == ".laz"
    fmt &= 0x3F
    if fmt >= len(_LAS_RECORD_MIN) or rec_len < _LAS_RECORD_MIN[fmt]:
        raise InputError(f"{bad} (point format {fmt} with {rec_len}-byte records)")
    scale = struct.unpack_from("<3d", head, 131)
    if not all(np.isfinite(s) and s != 0 for s in scale):
        raise InputError(f"{bad} (scale factors {scale} must be finite and non-zero)")
    count = legacy
    if minor >= 4 and len(head) >= 255 and header_size >= 375:
        count = struct.unpack_from("<Q", head, 247)[0] or legacy
    claimed = count * rec_len
    room = size - offset
    if not compressed and claimed > room:
        raise InputError(f"{path}: LAS header claims {count} points of {rec_len} bytes ({_gib(claimed)}) but "
                         f"the file holds {_gib(room)} of point data (truncated or corrupt)")
    if compressed and (claimed > MAX_ZIP_RATIO * max(room, 1) or claimed > MAX_ARRAY_BYTES):
        raise InputError(f"{path}: LAZ header claims {count} points ({_gib(claimed)}) from {_gib(room)} of "
                         "compressed data (corrupt, or too large to read)")
    if count * 3 * 8 > MAX_ARRAY_BYTES:
        raise InputError(f"{path}: {count} points is more than one input may hold "
                         f"({_gib(MAX_ARRAY_BYTES)} of coordinates)")
    return int(count)


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) of the .npy stream ``fh`` (positioned at its start)."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fh, max_header_size=10_000)
    else:
        shape, _, dtype = fmt.read_array_header_2_0(fh, max_header_size=10_000)
    return tuple(int(s) for s in shape), dtype, fh.tell()


def _array_bytes(where: str, shape: tuple[int, ...], dtype: np.dtype) -> int:
    if dtype.hasobject:
        raise InputError(f"{where}: holds Python objects (a pickle); it is never unpickled: save a numeric array")
    n = int(np.prod(shape, dtype=object)) * dtype.itemsize if shape else dtype.itemsize
    if n > MAX_ARRAY_BYTES:
        raise InputError(f"{where}: array of shape {shape} {dtype} is {_gib(n)}, more than one input may hold "
                         f"({_gib(MAX_ARRAY_BYTES)})")
    return n


def check_npy_header(path: Path) -> None:
    """Check a .npy header: numeric, at most :data:`MAX_ARRAY_BYTES`, and its data present in the file."""
    try:
        with open(path, "rb") as fh:
            shape, dtype, start = _npy_header(fh)
    except (ValueError, SyntaxError, struct.error, EOFError) as exc:
        raise InputError(f"{path}: not a valid .npy file (bad header: {str(exc).splitlines()[0][:80]})") from None
    need = _array_bytes(str(path), shape, dtype)
    have = path.stat().st_size - start
    if need > have:
        raise InputError(f"{path}: header says {shape} {dtype} ({_gib(need)}) but the file holds {_gib(have)} "
                         "(truncated or corrupt)")


def check_npz_members(path: Path) -> None:
    """Check every .npy member of an .npz: numeric, declared sizes consistent, no zip bomb."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                where = f"{path}[{info.filename}]"
                if info.file_size > MAX_ARRAY_BYTES or info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
                    raise InputError(f"{where}: expands to {_gib(info.file_size)} from {_gib(info.compress_size)} "
                                     "(a zip bomb, or too large to read)")
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    shape, dtype, start = _npy_header(fh)
                need = _array_bytes(where, shape, dtype)
                if need > info.file_size - start:
                    raise InputError(f"{where}: header says {shape} {dtype} ({_gib(need)}) but the member holds "
                                     f"{_gib(info.file_size - start)} (truncated or corrupt)")
    except (zipfile.BadZipFile, ValueError, SyntaxError, struct.error, EOFError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a valid .npz archive ({str(exc).splitlines()[0][:80]})") from None


def check_lzf_sizes(comp_size: int, raw_size: int, available: int, expected_raw: int) -> None:
    """Check a PCD ``binary_compressed`` block's sizes before decoding (raises ``ValueError``)."""
    if comp_size > available:
        raise ValueError(f"compressed block of {comp_size} bytes, only {available} in the file (truncated)")
    if raw_size != expected_raw:
        raise ValueError(f"compressed block decodes to {raw_size} bytes, the fields need {expected_raw}")
    if raw_size > MAX_LZF_RATIO * max(comp_size, 1) + 64 or raw_size > MAX_ARRAY_BYTES:
        raise ValueError(f"compressed block claims {raw_size} bytes from {comp_size} (corrupt)")
