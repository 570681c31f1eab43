"""What a file really holds, judged from its first bytes, before a parser is trusted with it.

:func:`check_content` is called with the file's suffix before it is parsed: a file whose
content is plainly not of that format (a PNG renamed ``.obj``, random bytes in an
``.stl``, a binary blob in a text format) fails with one line that says what is wrong,
instead of whatever the parser happens to raise deep inside (``No module named
'charset_normalizer'``, ``incorrect header``).

Example:
    >>> what_is(b"\\x89PNG\\r\\n\\x1a\\n....")
    'a PNG image'
"""

from __future__ import annotations

import struct
from pathlib import Path

from crossdistill.errors import InputError

__all__ = ["what_is", "check_content"]

# (leading bytes, what they mean); longest first where prefixes overlap.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (e.g. .npz)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"LASF", "a LAS/LAZ point cloud"),
    (b"glTF", "a binary glTF (.glb)"),
    (b"ply\n", "a PLY file"),
    (b"ply\r\n", "a PLY file"),
    (b"\x80\x04", "a Python pickle"),
    (b"\x80\x05", "a Python pickle"),
    (b"\x7fELF", "an executable"),
)

_TEXT_FORMATS = {".obj": "OBJ", ".off": "OFF", ".gltf": "glTF (JSON)"}


def what_is(head: bytes) -> str | None:
    """A short description of a file from its first bytes, or ``None`` when no known signature matches."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            if magic == b"BM" and len(head) >= 6 and struct.unpack_from("<I", head, 2)[0] < 26:
                continue  # "BM" starting a text file is not a bitmap
            return what
    return None


def _is_text(head: bytes) -> bool:
    """True when ``head`` looks like text: no NUL byte and at most 10% control characters."""
    if b"\x00" in head:
        return False
    if not head:
        return True
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
    return control <= 0.1 * len(head)


def _stl_ok(path: Path, head: bytes, size: int) -> bool:
    """ASCII STL ('solid' + text), or binary STL whose size matches its triangle count."""
    if head.lstrip().lower().startswith(b"solid") and _is_text(head[:512]):
        return True
    if size >= 84:
        count = struct.unpack_from("<I", head, 80)[0] if len(head) >= 84 else -1
        return size == 84 + 50 * count
    return False


def check_content(path: Path, suffix: str) -> None:
    """Raise a one-line :class:`InputError` when ``path``'s bytes plainly are not a ``suffix`` file.

    Only what can be decided from the first 4 KB is judged (a signature of another format,
    binary bytes in a text format, a binary STL whose size contradicts its header); anything
    subtler is left to the parser.
    """
    suffix = suffix.lower()
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4096)
    found = what_is(head)
    name = suffix.lstrip(".").upper()
    expected = {".glb": "a binary glTF (.glb)", ".ply": "a PLY file", ".npy": "a NumPy .npy array",
                ".npz": "a zip archive (e.g. .npz)", ".las": "a LAS/LAZ point cloud", ".laz": "a LAS/LAZ point cloud"}
    if suffix in expected:
        if found != expected[suffix]:
            why = f"it holds {found} (wrong extension?)" if found else "no signature of the format at its start (corrupt?)"
            raise InputError(f"{path}: not a valid {name} file: {why}")
        return
    if found is not None:
        raise InputError(f"{path}: not a valid {name} file: it holds {found} (wrong extension?)")
    if suffix in _TEXT_FORMATS and not _is_text(head):
        raise InputError(f"{path}: not a valid {_TEXT_FORMATS[suffix]} file: that is a text format and this file "
                         "holds binary data (corrupt, or wrong extension?)")
    if suffix == ".stl" and not _stl_ok(path, head, size):
        raise InputError(f"{path}: not a valid STL file: neither ASCII ('solid ...') nor a binary STL whose size "
                         "matches its triangle count (truncated or corrupt)")
