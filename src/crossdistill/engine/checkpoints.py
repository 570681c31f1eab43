"""Checkpoints: torch files of tensors and plain values, tagged with a format name, written atomically.

Every saved model of the package (PartDistill students, few-shot teachers, point backbones,
per-object grouping fields) goes through :func:`save_checkpoint` / :func:`load_checkpoint`:

* the file is a ``torch.save`` of a dict with a ``"format"`` key naming what it holds;
* it is written to a temporary file and renamed (:func:`crossdistill.io_utils.write_bytes`),
  so an interrupted save never leaves half a checkpoint;
* it is read with ``weights_only=True`` (no code runs on load), and anything wrong with it
  (missing, unreadable, another format, weights that do not fit) is one
  :class:`~crossdistill.errors.InputError` line.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from crossdistill.errors import InputError
from crossdistill.io_utils import write_bytes

T = TypeVar("T")


def save_checkpoint(path: str | Path, fmt: str, payload: dict[str, Any]) -> Path:
    """Write ``{"format": fmt, **payload}`` to ``path`` atomically.

    Args:
        path: destination file.
        fmt: format name, checked by :func:`load_checkpoint`.
        payload: tensors and plain Python values (dicts, lists, str, numbers, None).
    """
    buf = io.BytesIO()
    torch.save({"format": fmt, **payload}, buf)
    return write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, fmt: str, what: str, build: Callable[[dict], T],
                    device: str | torch.device = "cpu") -> T:
    """Read a checkpoint written by :func:`save_checkpoint` and turn it into an object.

    Args:
        path: the file.
        fmt: the format name it must carry.
        what: what it is, for messages ("student checkpoint").
        build: makes the object from the loaded dict (errors there count as a bad file).
        device: ``map_location`` of the tensors.

    Raises:
        InputError: missing file, unreadable file, another format, or ``build`` failed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles before failing; the error says it all
            warnings.simplefilter("ignore")
            doc = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a bad input
        raise InputError(f"{path}: cannot read {what}: not a readable torch checkpoint ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise InputError(f"{path}: cannot read {what}: not a {fmt} file")
    try:
        return build(doc)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a checkpoint whose contents do not fit is a bad input
        raise InputError(f"{path}: cannot read {what}: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: Exception, limit: int = 160) -> str:
    """The first line of an exception's message, at most ``limit`` characters (errors are one line)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else "")[:limit]
