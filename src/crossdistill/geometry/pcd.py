"""A small reader for PCL's ``.pcd`` point-cloud format (v0.5 / v0.7).

Supports ``DATA ascii``, ``binary`` and ``binary_compressed`` (LZF, decoded here in
pure Python: fine for clouds up to a few million values, slow beyond that).

Recognised fields: ``x y z`` (required), ``normal_x normal_y normal_z`` (or
``nx ny nz``), packed ``rgb`` / ``rgba`` (a 4-byte field holding 0x00RRGGBB, stored
as float or unsigned int, as PCL writes it) or separate ``r g b`` fields. Other fields
are read and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossdistill.geometry.headers import check_lzf_sizes

__all__ = ["PcdData", "read_pcd", "lzf_decompress"]

_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4",
          ("U", 8): "u8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}


@dataclass(frozen=True)
class PcdData:
    """What :func:`read_pcd` returns.

    Attributes:
        points: (N, 3) float64.
        normals: (N, 3) float64 or None.
        colors: (N, 3) uint8 or None.
    """

    points: np.ndarray
    normals: np.ndarray | None
    colors: np.ndarray | None


def _parse_header(raw: bytes) -> tuple[dict[str, list[str]], int]:
    """Parse the text header; returns (fields by key, byte offset of the data)."""
    header: dict[str, list[str]] = {}
    offset = 0
    while True:
        end = raw.find(b"\n", offset)
        if end < 0:
            raise ValueError("header has no DATA line")
        try:
            line = raw[offset:end].decode("ascii").strip()
        except UnicodeDecodeError:
            raise ValueError("header is not ASCII text (not a PCD file?)") from None
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            return header, offset


def lzf_decompress(data: bytes, expected_size: int) -> bytes:
    """Decode an LZF block (the codec of PCD ``binary_compressed``)."""
    out = bytearray(expected_size)
    i = o = 0
    n = len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            length = ctrl + 1
            out[o:o + length] = data[i:i + length]
            i += length
            o += length
        else:  # back reference
            length = ctrl >> 5
            if length == 7:
                length += data[i]
                i += 1
            ref = o - ((ctrl & 0x1F) << 8) - data[i] - 1
            i += 1
            length += 2
            if ref < 0:
                raise ValueError("corrupt LZF stream")
            if ref + length <= o:  # non-overlapping: slice copy
                out[o:o + length] = out[ref:ref + length]
            else:  # overlapping run: byte by byte
                for k in range(length):
                    out[o + k] = out[ref + k]
            o += length
    if o != expected_size:
        raise ValueError(f"LZF block decoded to {o} bytes, header says {expected_size}")
    return bytes(out)


def _field_dtype(header: dict[str, list[str]]) -> tuple[list[str], list[np.dtype], list[int]]:
    names = header["FIELDS"]
    sizes = [int(s) for s in header.get("SIZE", ["4"] * len(names))]
    types = [t.upper() for t in header.get("TYPE", ["F"] * len(names))]
    counts = [int(c) for c in header.get("COUNT", ["1"] * len(names))]
    if not (len(names) == len(sizes) == len(types) == len(counts)):
        raise ValueError("FIELDS, SIZE, TYPE and COUNT disagree in length")
    dtypes = []
    for t, s in zip(types, sizes):
        if (t, s) not in _TYPES:
            raise ValueError(f"unsupported field type {t}{s}")
        dtypes.append(np.dtype("<" + _TYPES[(t, s)]))
    return names, dtypes, counts


def _columns(header: dict[str, list[str]], body: bytes, n_points: int) -> dict[str, np.ndarray]:
    """Decode the data section into one (N,) or (N, count) array per field."""
    names, dtypes, counts = _field_dtype(header)
    mode = header["DATA"][0].lower()
    if mode == "ascii":
        text = body.decode("ascii", errors="strict").split()
        width = sum(counts)
        if len(text) < n_points * width:
            raise ValueError(f"ascii data has {len(text)} values, expected {n_points * width}")
        values = np.array(text[: n_points * width], dtype=np.float64).reshape(n_points, width)
        cols, start = {}, 0
        for name, dt, c in zip(names, dtypes, counts):
            block = values[:, start:start + c]
            start += c
            if dt.kind == "f" and dt.itemsize == 4:
                block = block.astype(np.float32)
            elif dt.kind in "ui":
                block = block.astype(dt)
            cols[name] = block[:, 0] if c == 1 else block
        return cols
    if mode == "binary":
        rec = np.dtype([(f"f{i}", dt, (c,)) for i, (dt, c) in enumerate(zip(dtypes, counts))])
        if len(body) < rec.itemsize * n_points:
            raise ValueError(f"binary data is {len(body)} bytes, expected {rec.itemsize * n_points}")
        arr = np.frombuffer(body, dtype=rec, count=n_points)
        return {name: (arr[f"f{i}"][:, 0] if c == 1 else arr[f"f{i}"])
                for i, (name, c) in enumerate(zip(names, counts))}
    if mode == "binary_compressed":
        if len(body) < 8:
            raise ValueError("binary_compressed data is truncated")
        comp_size, raw_size = np.frombuffer(body[:8], dtype="<u4")
        expected = sum(dt.itemsize * c for dt, c in zip(dtypes, counts)) * n_points
        check_lzf_sizes(int(comp_size), int(raw_size), len(body) - 8, expected)
        raw = lzf_decompress(body[8:8 + int(comp_size)], int(raw_size))
        cols, start = {}, 0
        for name, dt, c in zip(names, dtypes, counts):  # field-major (structure of arrays)
            nbytes = dt.itemsize * c * n_points
            block = np.frombuffer(raw[start:start + nbytes], dtype=dt).reshape(n_points, c)
            start += nbytes
            cols[name] = block[:, 0] if c == 1 else block
        return cols
    raise ValueError(f"unknown DATA mode {mode!r}")


def _unpack_rgb(values: np.ndarray) -> np.ndarray:
    """(N,) packed 0x00RRGGBB as float32 bit pattern or integer -> (N, 3) uint8."""
    v = np.asarray(values)
    packed = v.astype(np.float32).view(np.uint32) if v.dtype.kind == "f" else v.astype(np.uint32)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)


def read_pcd(path: str | Path) -> PcdData:
    """Read a ``.pcd`` file. Raises ``ValueError`` on malformed content.

    Returns:
        :class:`PcdData` with (N, 3) points, optional (N, 3) normals and (N, 3) uint8 colours.
    """
    raw = Path(path).read_bytes()
    header, offset = _parse_header(raw)
    if "FIELDS" not in header:
        raise ValueError("header has no FIELDS line")
    if "POINTS" in header:
        n_points = int(header["POINTS"][0])
    else:
        n_points = int(header["WIDTH"][0]) * int(header.get("HEIGHT", ["1"])[0])
    if n_points < 0:
        raise ValueError(f"negative point count {n_points}")
    cols = _columns(header, raw[offset:], n_points)
    lower = {k.lower(): v for k, v in cols.items()}
    if not {"x", "y", "z"} <= lower.keys():
        raise ValueError(f"fields {header['FIELDS']} lack x y z")
    points = np.stack([lower["x"], lower["y"], lower["z"]], axis=1).astype(np.float64)
    normals = None
    for keys in (("normal_x", "normal_y", "normal_z"), ("nx", "ny", "nz")):
        if set(keys) <= lower.keys():
            normals = np.stack([lower[k] for k in keys], axis=1).astype(np.float64)
            break
    colors = None
    if "rgb" in lower or "rgba" in lower:
        colors = _unpack_rgb(lower.get("rgb", lower.get("rgba")))
    elif {"r", "g", "b"} <= lower.keys():
        from crossdistill.geometry.colors import to_uint8_rgb

        colors = to_uint8_rgb(np.stack([lower["r"], lower["g"], lower["b"]], axis=1))
    return PcdData(points=points, normals=normals, colors=colors)
