"""Output folders that belong to one run: checked before any work, claimed per item, cleaned on failure.

* :func:`check_output_dir` runs before any computation: ``-o`` must be a folder (or not
  exist yet) under a writable folder; otherwise one-line :class:`InputError` (exit 2).
* :func:`claim_item` decides, for one item folder of a batch run, whether it is finished
  for *this* input content and *these* settings (its completion marker records both
  hashes), and otherwise empties it so that no file of an earlier run with other settings
  or another input survives (a stale ``scale_*`` folder would be scored by ``eval``). The
  folder is renamed away in one step, then deleted, so no mix of old and new files is
  ever visible. A folder crossdistill did not write is never deleted: the item fails.
  Callers hold the item's claim (:mod:`crossdistill.engine.claims`) while they call it and
  until the item is sealed or discarded, so a folder another live process is writing is
  never taken for stale.
* :func:`seal_item` records the input hash in the item's completion marker after the
  job wrote it; :func:`discard_item` removes a failed item's partial outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path

from crossdistill.engine.inputs import ITEM_STAMP, OUTPUT_ROOT_MARK
from crossdistill.errors import InputError
from crossdistill.io_utils import write_json

__all__ = ["check_output_dir", "check_output_file", "check_output_option", "file_sha256", "claim_item", "seal_item", "discard_item", "mark_output_root",
           "is_finished", "runtime_info"]


def check_output_dir(path: str | os.PathLike, flag: str = "-o") -> Path:
    """Fail early, with one line, when ``path`` cannot be an output folder; returns it.

    ``path`` may exist (a folder) or not; its nearest existing ancestor must be a folder
    in which a file can be created (tried for real, so read-only mounts and permissions
    are judged as the writes will be, for root too). Nothing is left behind.

    Raises:
        InputError: ``path`` is a file, lies under a file, or is not writable.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out}: exists and is not a folder")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{flag} {out}: {probe} is a file, not a folder")
    test = probe / f".tmp-write-test-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(test, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(test)
    except OSError as exc:
        raise InputError(f"{flag} {out}: cannot write in {probe} ({exc.strerror or type(exc).__name__})") from None
    return out


def check_output_file(path: str | os.PathLike, flag: str = "-o") -> Path:
    """:func:`check_output_dir` for an output *file*: not a folder, its folder writable."""
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{flag} {out}: is a folder, expected a file name")
    check_output_dir(out.parent if str(out.parent) else Path("."), flag)
    return out


#: sub-commands whose ``-o`` names a file (every other ``-o`` is an output folder).
FILE_OUTPUTS = ("pretrain",)


def check_output_option(command: str | None, output: str | os.PathLike | None) -> None:
    """Check a command's ``-o`` before it runs (:func:`check_output_dir` / :func:`check_output_file`)."""
    if output is None or command is None:
        return
    if command in FILE_OUTPUTS:
        check_output_file(output)
    else:
        check_output_dir(output)


def file_sha256(path: Path | None) -> str:
    """Hex SHA-256 of a file's bytes (``"demo"`` for the built-in demo, ``path=None``)."""
    if path is None:
        return "demo"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(marker: Path, digest: str, input_sha256: str | None = None) -> bool:
    """True when ``marker`` records ``digest`` as settings hash (and ``input_sha256``, when given)."""
    meta = _read_json(marker)
    if meta is None or meta.get("settings_hash") != digest:
        return False
    return input_sha256 is None or meta.get("input_sha256") == input_sha256


def mark_output_root(out_root: Path) -> None:
    """Write :data:`OUTPUT_ROOT_MARK` into the output root (so input scans skip it)."""
    mark = out_root / OUTPUT_ROOT_MARK
    if not mark.exists():
        write_json(mark, {"written_by": "crossdistill", "note": "output folder; never read as input"})


def _ours(item_dir: Path, marker: Path) -> bool:
    """True when everything in ``item_dir`` was written by crossdistill."""
    if (item_dir / ITEM_STAMP).exists():
        return True
    meta = _read_json(marker)
    if meta is not None and "settings_hash" in meta:
        return True
    return all(p.name.startswith(".tmp-") for p in item_dir.iterdir())


def _remove_tree(folder: Path) -> None:
    """Rename ``folder`` away in one step, then delete it (a crash leaves only a hidden ``.stale-*``)."""
    trash = folder.with_name(f".stale-{folder.name}-{os.getpid()}-{secrets.token_hex(4)}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def claim_item(item_dir: Path, marker: Path, digest: str, input_sha256: str, input_path: Path | None) -> bool:
    """Prepare ``item_dir`` for one item; True when it is already finished (nothing to do).

    Not finished: stale outputs (another input, other settings, an interrupted run) are
    removed, the folder is created with a stamp naming this run's input and settings.

    Raises:
        InputError: the folder holds files crossdistill did not write (they are left alone).
    """
    for leftover in item_dir.parent.glob(f".stale-{item_dir.name}-*") if item_dir.parent.is_dir() else ():
        shutil.rmtree(leftover, ignore_errors=True)  # a removal cut short by a crash
    if is_finished(marker, digest, input_sha256):
        return True
    if item_dir.is_symlink() or (item_dir.exists() and not item_dir.is_dir()):
        raise InputError(f"{item_dir}: exists and is not an output folder of crossdistill; remove it "
                         "or choose another -o")
    if item_dir.is_dir() and any(item_dir.iterdir()):
        if not _ours(item_dir, marker):
            raise InputError(f"{item_dir}: holds files crossdistill did not write; remove them or choose another -o")
        _remove_tree(item_dir)
    item_dir.mkdir(parents=True, exist_ok=True)
    write_json(item_dir / ITEM_STAMP, {"settings_hash": digest, "input_sha256": input_sha256,
                                       "input": "demo" if input_path is None else str(input_path)})
    return False


def runtime_info() -> dict:
    """What besides the settings and the seed decides the exact numbers: torch's thread counts and versions.

    Results are byte-identical for the same input, settings, seed, thread count and build; another
    thread count may change float reductions and so labels at fine scales (``docs/reliability.md``).
    """
    import platform
    import sys

    info: dict = {"python": platform.python_version(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    torch = sys.modules.get("torch")
    if torch is not None:
        info |= {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                 "torch_interop_threads": torch.get_num_interop_threads()}
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        info["numpy"] = numpy.__version__
    return info


def seal_item(marker: Path, input_sha256: str) -> None:
    """Record the input hash and :func:`runtime_info` in a completion marker the job just wrote (atomic rewrite)."""
    meta = _read_json(marker)
    if meta is None:
        raise RuntimeError(f"{marker}: the job finished without writing its completion marker")
    meta["input_sha256"] = input_sha256
    meta["runtime"] = runtime_info()
    write_json(marker, meta)


def discard_item(item_dir: Path, out_root: Path) -> None:
    """Remove a failed item's folder, and the folders above it up to ``out_root`` left empty."""
    if item_dir.is_dir() and (item_dir / ITEM_STAMP).exists():
        with contextlib.suppress(OSError):
            _remove_tree(item_dir)
    parent = item_dir.parent
    with contextlib.suppress(OSError, ValueError):
        while parent != out_root and parent.is_relative_to(out_root) and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
