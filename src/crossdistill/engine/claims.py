"""Per-item claims: at most one process works on an item of a shared output folder at a time.

A claim is an exclusive, non-blocking ``fcntl.flock`` on a lock file
``<out_root>/.crossdistill-claims/<key>.lock`` (``key`` a hash of the item's name). The lock,
not the file, is the claim: the kernel drops it when the process that holds it ends, however
it ends (``kill -9`` included), so a claim never outlives its holder and no timeout or pid
probing is needed. The file's content only says who holds or last held it (host, pid, start
time, item), for messages.

Protocol (:func:`try_claim` / :meth:`Claim.release`):

1. open (create) the lock file and try ``flock(LOCK_EX | LOCK_NB)``; refused: another live
   process holds the item, the caller skips it;
2. granted: check that the path still names the file that was locked (the previous holder
   may have unlinked it between our open and our lock); otherwise start again;
3. read what the file says of an earlier holder (non-empty: that holder died without
   releasing, its partial outputs are the caller's to clean), then write our own details;
4. release: unlink the file while still holding the lock, then close it (step 2 makes this
   safe), and remove the claims folder when it is left empty.

Where ``flock`` is missing (no ``fcntl``) or refused by the file system, claims degrade to
"always granted" with one warning: a single process is then still correct, concurrent ones
are not protected (use ``--shard`` to split the work instead). On NFS, Linux clients map
``flock`` to byte-range locks the server arbitrates (NLM for v3, leases for v4), so claims
hold across hosts where locking is enabled; a crashed client's locks are released only after
the server's lease / grace time, and a ``nolock`` mount makes them local to each host.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["CLAIMS_DIR", "Claim", "claim_path", "describe", "holder_of", "try_claim", "locked"]

#: Folder of lock files in an output root (present only while items are being worked on).
CLAIMS_DIR = ".crossdistill-claims"

_WARNED: set[str] = set()
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def claim_path(out_root: Path, name: str) -> Path:
    """The lock file of item ``name`` (its output sub-folder) under ``out_root``."""
    key = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return Path(out_root) / CLAIMS_DIR / f"{key}.lock"


def _me(name: str) -> dict:
    return {"item": name, "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _parse(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def holder_of(out_root: Path, name: str) -> dict | None:
    """What the lock file of ``name`` says of its (last) holder, or None (no file, empty or unreadable)."""
    try:
        return _parse(claim_path(out_root, name).read_text())
    except OSError:
        return None


def describe(holder: dict | None) -> str:
    """``pid 123 on host-a since 2026-...`` for messages (``another process`` when unknown)."""
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"


@dataclass
class Claim:
    """A granted claim on one item; release it (or use it as a context manager) when done.

    Attributes:
        path: the lock file.
        previous: what the lock file said of an earlier holder that ended without releasing
            (its partial outputs may remain), else None.
        locked: False when the file system gave no lock (claims degraded, see module docstring).
    """

    path: Path
    fd: int | None
    previous: dict | None = None
    locked: bool = True
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        """Unlink the lock file (still holding the lock), close it, drop an empty claims folder."""
        if self._released:
            return
        self._released = True
        with contextlib.suppress(OSError):
            self.path.unlink()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only when empty; another process recreates it as needed

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _open(path: Path) -> int:
    """Open (create) ``path``; its folder is (re)created when missing (another process may just have removed it)."""
    for _ in range(100):
        try:
            # FileExistsError: the folder existed at mkdir and was removed before its is_dir check
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except (FileNotFoundError, FileExistsError):
            continue
    raise OSError(errno.ENOENT, f"cannot create the claim file {path}")


def _warn_unlocked(path: Path, exc: OSError | None) -> None:
    key = str(path.parent)
    if key not in _WARNED:
        _WARNED.add(key)
        why = "no fcntl on this platform" if exc is None else (exc.strerror or type(exc).__name__)
        print(f"warning: {path.parent}: cannot lock files ({why}); concurrent runs on this folder are not "
              "kept apart (split them with --shard)", file=sys.stderr)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_fd(fd: int) -> str:
    chunks = []
    offset = 0
    while True:
        block = os.pread(fd, 1 << 16, offset)
        if not block:
            break
        chunks.append(block)
        offset += len(block)
    return b"".join(chunks).decode("utf-8", "replace")


def try_claim(out_root: Path, name: str) -> Claim | None:
    """Claim item ``name`` of ``out_root`` for this process; None when a live process holds it.

    Raises:
        OSError: the lock file cannot be created (e.g. the output folder is not writable).
    """
    path = claim_path(out_root, name)
    while True:
        fd = _open(path)
        if fcntl is None:
            _warn_unlocked(path, None)
            return _take(fd, path, name, locked=False)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _BUSY:
                os.close(fd)
                return None
            _warn_unlocked(path, exc)
            return _take(fd, path, name, locked=False)
        if _same_file(fd, path):
            return _take(fd, path, name, locked=True)
        os.close(fd)  # the holder we waited behind unlinked it: lock the file that is there now


def _take(fd: int, path: Path, name: str, locked: bool) -> Claim:
    previous = _parse(_read_fd(fd)) if locked else None
    data = json.dumps(_me(name)).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return Claim(path=path, fd=fd, previous=previous, locked=locked)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive, blocking ``flock`` on the folder ``folder`` itself while inside.

    For short read-modify-write steps shared by concurrent runs (``failures.json`` in an output
    root); nothing is written. Where folders cannot be locked (some network file systems) the
    step runs unprotected.
    """
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
