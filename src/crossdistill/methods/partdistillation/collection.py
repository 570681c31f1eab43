"""Image collections for PartDistillation: read, run the instance teacher, crop; write results.

An image's object class is the folder it sits in, relative to the collection root (the
image-level label PartDistillation reads from ImageNet's class folders); images at the
root take the teacher's class names instead. Per image the outputs are

    <name>/parts.npy         (H, W) int32 class-agnostic part id, -1 background
    <name>/part_classes.npy  (H, W) int32 index into the model's vocabulary, -1 background
    <name>/overlay.png       the image | its parts | its class-specific parts
    <name>/parts.json        names, scores and instances of the parts; written last (marks it done)

at the image's own resolution (after ``max_side`` shrinking, recorded in parts.json).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from crossdistill.errors import InputError
from crossdistill.io_utils import save_image, save_npy, write_json
from crossdistill.methods.partdistillation.crops import InstanceCrop, crop_instances
from crossdistill.methods.partdistillation.pipeline import ImageParts
from crossdistill.render.images import IMAGE_SUFFIXES, read_rgb, views_from_images
from crossdistill.teachers.base import InstanceSet
from crossdistill.viz.palette import overlay_labels

__all__ = ["ImageEntry", "find_images", "load_entries", "write_image_parts", "MARKER"]

MARKER = "parts.json"


@dataclass
class ImageEntry:
    """One image of a collection with what the teacher made of it.

    Attributes:
        name: output name (path relative to the root, without suffix).
        path: the file.
        image: (H, W, 3) uint8 RGB.
        instances: the teacher's instances.
        crops: the instances as decoder crops.
    """

    name: str
    path: Path
    image: np.ndarray
    instances: InstanceSet
    crops: list[InstanceCrop]


def find_images(root: Path, exclude: tuple[Path, ...] = ()) -> list[tuple[str, Path, str]]:
    """(output name, path, object class) of every image under ``root`` (or ``root`` itself).

    Output names are unique per image (``x.png`` and ``x.jpg`` keep their suffix) and output
    trees (and ``exclude``) are skipped: :mod:`crossdistill.engine.inputs`.
    """
    from crossdistill.engine.inputs import find_input_files

    found = find_input_files(root, IMAGE_SUFFIXES, "images", exclude)
    if root.is_file():
        return [(name, p, "") for name, p in found]
    out = []
    for name, p in found:
        rel = p.relative_to(root)
        out.append((name, p, rel.parent.as_posix() if rel.parent != Path(".") else ""))
    return out


def load_entries(items: Sequence[tuple[str, Path, str]], teacher, grid: int, max_side: int | None = 512,
                 class_names: dict[int, str] | None = None, progress: bool = True, report: bool = True
                 ) -> tuple[list[ImageEntry], dict[str, str]]:
    """Read every image and run the teacher; failures are isolated and returned ({name: reason}),
    each also printed as one line on stderr when ``report``."""
    entries, failures = [], {}
    for name, path, cls in tqdm(items, desc="teacher", disable=not progress or len(items) < 2, unit="img"):
        try:
            rgb, alpha = read_rgb(path, max_side)
            views = views_from_images([rgb], [alpha])
            inst = teacher.instances(views)[0]
            crops = crop_instances([inst], rgb.shape[:2], grid, classes=[cls] if cls else None,
                                   class_names=class_names)
        except (InputError, ValueError, OSError, RuntimeError, MemoryError) as exc:  # one bad image fails alone
            first = str(exc).splitlines()[0] if str(exc) else ""
            failures[name] = first if isinstance(exc, InputError) else f"{type(exc).__name__}: {first}"
            if report:
                print(f"error: {name}: {failures[name]}", file=sys.stderr)
            continue
        entries.append(ImageEntry(name, path, rgb, inst, crops))
    return entries, failures


def write_image_parts(item_dir: Path, entry: ImageEntry, parts: ImageParts, vocabulary: Sequence[str],
                      meta: dict) -> None:
    """Write one image's outputs (module docstring); parts.json last, with ``meta`` merged in."""
    save_npy(item_dir / "parts.npy", parts.parts.astype(np.int32))
    save_npy(item_dir / "part_classes.npy", parts.part_classes.astype(np.int32))
    panel = np.concatenate([entry.image, overlay_labels(entry.image, parts.parts),
                            overlay_labels(entry.image, parts.part_classes)], 1)
    save_image(item_dir / "overlay.png", panel)
    present = np.unique(parts.part_classes[parts.part_classes >= 0])
    write_json(item_dir / MARKER, {
        **meta, "input": str(entry.path), "size": list(entry.image.shape[:2]),
        "n_instances": len(entry.instances), "n_parts": int(len(parts.part_scores)),
        "parts": [{"id": i, "instance": int(parts.part_instance[i]), "score": round(float(parts.part_scores[i]), 4),
                   "name": parts.part_names[i], "pixels": int((parts.parts == i).sum())}
                  for i in range(len(parts.part_scores))],
        "classes_present": {int(c): vocabulary[int(c)] for c in present},
    })
