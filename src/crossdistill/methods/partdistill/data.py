"""Shapes of one category with semantic part labels: the shared-data layout and the user's.

Two places labels come from:

* the PartNet-Mobility layout of ``../shared/data/partnet_mobility_dev`` (``face_link``
  indexes the object's ``links``, each with a semantic ``label`` such as "door"):
  :func:`link_part_names` and :func:`link_face_labels` turn it into per-face indices
  into one category-wide list of names;
* a user's folder of few-shot examples (:func:`load_labelled_folder`): next to every
  mesh ``<stem>.<ext>`` a ``<stem>.labels.npy`` (or ``.npz`` with ``face_labels``) of
  (F,) ints indexing the ``--parts`` names (-1 unlabelled), or a ``<stem>.labels.json``
  ``{"part_names": [...], "face_labels": [...]}`` whose names are matched to ``--parts``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError
from crossdistill.geometry.io import load_shape
from crossdistill.types import Shape

__all__ = ["MESH_SUFFIXES", "link_part_names", "link_face_labels", "list_shape_files", "load_labelled_folder",
           "parse_part_names"]

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")


def parse_part_names(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"screen, keyboard"`` or a list -> ("screen", "keyboard"); InputError if empty or repeated."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    if not names:
        raise InputError("no part names given (e.g. --parts \"screen,keyboard\")")
    lower = [n.lower() for n in names]
    if len(set(lower)) != len(lower):
        raise InputError(f"part names repeat: {names}")
    return tuple(names)


def link_part_names(records: Iterable) -> tuple[str, ...]:
    """Sorted semantic link labels over records of one category (``record.meta["links"]``)."""
    names = sorted({str(link["label"]) for r in records for link in r.meta.get("links", [])})
    if not names:
        raise InputError("no link labels in these records")
    return tuple(names)


def link_face_labels(meta: dict, face_link: np.ndarray, part_names: Sequence[str]) -> np.ndarray:
    """(F,) int64 index into ``part_names`` of every face's link label, -1 for unknown links/labels."""
    index = {n: i for i, n in enumerate(part_names)}
    table = np.array([index.get(str(link["label"]), -1) for link in meta.get("links", [])] + [-1], np.int64)
    fl = np.asarray(face_link, np.int64)
    return np.where(fl >= 0, table[np.clip(fl, 0, len(table) - 1)], -1)


def list_shape_files(folder: str | Path) -> list[Path]:
    """Mesh / point-cloud files directly in ``folder`` or one level below, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in [*folder.glob("*"), *folder.glob("*/*")]
                   if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no shapes ({', '.join(MESH_SUFFIXES)}) found")
    return files


def _labels_for(mesh: Path, part_names: Sequence[str], n_faces: int) -> np.ndarray:
    stem = mesh.with_suffix("")
    npy, npz, js = Path(f"{stem}.labels.npy"), Path(f"{stem}.labels.npz"), Path(f"{stem}.labels.json")
    try:
        if npy.is_file():
            labels = np.load(npy, allow_pickle=False)
        elif npz.is_file():
            with np.load(npz, allow_pickle=False) as z:
                if "face_labels" not in z.files:
                    raise InputError(f"{npz}: needs an array 'face_labels' (has {sorted(z.files)})")
                labels = z["face_labels"]
        elif js.is_file():
            blob = json.loads(js.read_text())
            names = [str(n).lower() for n in blob["part_names"]]
            index = {n.lower(): i for i, n in enumerate(part_names)}
            table = np.array([index.get(n, -1) for n in names] + [-1], np.int64)
            raw = np.asarray(blob["face_labels"], np.int64)
            labels = np.where((raw >= 0) & (raw < len(names)), table[np.clip(raw, 0, len(names))], -1)
        else:
            raise InputError(f"{mesh}: no labels file ({npy.name}, {npz.name} or {js.name})")
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{mesh}: cannot read its labels ({type(exc).__name__}: {exc})") from None
    labels = np.asarray(labels)
    if labels.shape != (n_faces,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{mesh}: labels must be ({n_faces},) integers, got {labels.shape} {labels.dtype}")
    if labels.max(initial=-1) >= len(part_names):
        raise InputError(f"{mesh}: label {int(labels.max())} but only {len(part_names)} part names")
    return labels.astype(np.int64)


def load_labelled_folder(folder: str | Path, part_names: Sequence[str]) -> list[tuple[Shape, np.ndarray]]:
    """Every mesh of ``folder`` with its (F,) int64 face labels into ``part_names``."""
    out = []
    for mesh in list_shape_files(folder):
        shape = load_shape(mesh)
        if not shape.is_mesh:
            raise InputError(f"{mesh}: few-shot examples must be meshes with per-face labels")
        out.append((shape, _labels_for(mesh, part_names, shape.n_faces)))
    return out
