"""Finding a command's input files: one unique output name per input, output trees skipped.

A folder input is searched recursively. Two rules keep a batch honest:

* **Unique names.** An input's output name is its path relative to the folder without
  its suffix (``chairs/a.glb`` -> ``chairs/a``). When that name would be shared by
  another input (``twin.glb`` and ``twin.obj``; ``Twin.glb`` and ``twin.ply`` on a
  case-insensitive file system) or would be the folder of another input's output
  (``a.glb`` beside a folder ``a/`` holding ``b.glb``), the inputs involved keep their
  suffix in the name (``twin.glb``, ``twin.obj``, ``a.glb``). Names are decided from the
  sorted list of files, so they are the same on every run.
* **Output trees are not inputs.** A directory holding :data:`OUTPUT_ROOT_MARK` (written
  into every output folder of a batch command), :data:`ITEM_STAMP` (written into every
  item folder), or the completion files of an older crossdistill output, and any path
  given in ``exclude``, is not searched: an output folder inside the input folder is
  never read back as input.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("twin.glb", "twin.obj", "solo.ply"):
    ...     _ = (root / n).write_bytes(b"x")
    >>> [name for name, _ in find_input_files(root, (".glb", ".obj", ".ply"), "shape")]
    ['solo', 'twin.glb', 'twin.obj']
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from crossdistill.errors import InputError

__all__ = ["OUTPUT_ROOT_MARK", "ITEM_STAMP", "find_input_files", "unique_names", "is_output_tree"]

#: File in the root of every batch command's output folder.
OUTPUT_ROOT_MARK = ".crossdistill-output"
#: File in every item folder of a batch run (which input and settings the folder belongs to).
ITEM_STAMP = ".crossdistill-item.json"

# Completion files of outputs written before the marks existed: a directory holding all the
# files of one group is an output folder.
_LEGACY_OUTPUT_SIGNS: tuple[tuple[str, ...], ...] = (
    ("segment.json", "hierarchy.json"),  # segment object
    ("predict.json", "labels.npy"),  # predict object
    ("parts.json", "parts.npy", "part_classes.npy"),  # discover image
    ("discover.json", "ranking.json"),  # discover root
    ("distill.json", "student.pt"),  # distill root
)


def is_output_tree(directory: Path) -> bool:
    """True when ``directory`` is (the root of) something crossdistill wrote."""
    try:
        names = set(os.listdir(directory))
    except OSError:
        return False
    if OUTPUT_ROOT_MARK in names or ITEM_STAMP in names:
        return True
    return any(all(n in names for n in group) for group in _LEGACY_OUTPUT_SIGNS)


def _walk(root: Path, suffixes: Sequence[str], exclude: Sequence[Path]) -> list[Path]:
    """Files under ``root`` with one of ``suffixes``, output trees and ``exclude`` pruned."""
    wanted = {s.lower() for s in suffixes}
    skip = {p.resolve() for p in exclude}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            sub = here / d
            if sub.resolve() in skip or is_output_tree(sub):
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            p = here / f
            if p.suffix.lower() in wanted and p.is_file() and f not in (OUTPUT_ROOT_MARK, ITEM_STAMP):
                found.append(p)
    return sorted(found)


def unique_names(root: Path, files: Iterable[Path]) -> list[str]:
    """One output name per file (module docstring), in the order of ``files``.

    Names use ``/`` as separator. Comparison is case-insensitive so that outputs stay
    apart on case-insensitive file systems too.
    """
    files = list(files)
    rels = [Path(p).relative_to(root) for p in files]
    names = [r.with_suffix("").as_posix() for r in rels]
    for _ in range(3):  # suffixed names can only clash again in contrived trees; then an index decides
        clash = _clashing(names)
        if not clash:
            return names
        names = [rels[i].as_posix() if i in clash else n for i, n in enumerate(names)]
    clash = _clashing(names)
    counts: dict[str, int] = defaultdict(int)
    out = []
    for i, n in enumerate(names):
        if i in clash:
            counts[n.casefold()] += 1
            n = f"{n}~{counts[n.casefold()]}"
        out.append(n)
    return out


def _clashing(names: Sequence[str]) -> set[int]:
    """Indices of names equal to another (case-insensitively) or that are a folder of another."""
    keys = [n.casefold() for n in names]
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        by_key[k].append(i)
    clash = {i for idx in by_key.values() if len(idx) > 1 for i in idx}
    prefixes = {"/".join(k.split("/")[:j]) for k in keys for j in range(1, k.count("/") + 1)}
    clash |= {i for i, k in enumerate(keys) if k in prefixes}
    return clash


def find_input_files(root: Path, suffixes: Sequence[str], what: str,
                     exclude: Sequence[Path] = ()) -> list[tuple[str, Path]]:
    """(output name, path) of ``root`` itself or of every matching file under it.

    Args:
        root: a file (taken whatever its suffix; the reader judges it) or a folder.
        suffixes: file suffixes to collect from a folder (case-insensitive).
        what: what the files are, for the error message ("mesh or point-cloud files").
        exclude: folders not to search (the command's own output folder).

    Raises:
        InputError: ``root`` is missing, or a folder without a matching file.
    """
    root = Path(root)
    if root.is_file():
        return [(root.stem, root)]
    if not root.exists():
        raise InputError(f"input not found: {root}")
    if not root.is_dir():
        raise InputError(f"input is neither a file nor a folder: {root}")
    files = _walk(root, suffixes, exclude)
    if not files:
        raise InputError(f"no {what} ({', '.join(suffixes)}) under {root}")
    return list(zip(unique_names(root, files), files))
