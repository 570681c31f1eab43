"""2D part benchmarks (not on this machine): PartImageNet (COCO-style JSON) and
Pascal-Part (per-image MATLAB ``.mat`` files). Masks are decoded without pycocotools:
polygons are rasterised with Pillow (boundary pixels can differ from pycocotools' by
one pixel), RLE (list or compressed string counts) is decoded exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks._base import Benchmark, Record, read_image, read_json

__all__ = ["rle_decode", "rle_counts_from_string", "polygons_to_mask", "coco_segmentation_mask",
           "PartImageNet", "PascalPart"]


# ----------------------------------------------------------------------- COCO masks
def rle_counts_from_string(s: str) -> list[int]:
    """Run lengths of a COCO compressed RLE string (pycocotools' ``rleFrString``).

    Each count is LEB128-like: 5 bits per character (offset 48), bit 0x20 = more
    characters follow, bit 0x10 of the last = negative; counts after the third are
    stored as differences to the count two before.

    Example:
        >>> rle_counts_from_string("032")
        [0, 3, 2]
    """
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise InputError("truncated COCO RLE string")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(counts: list[int] | str, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask from COCO RLE (column-major runs, starting with a run of 0s)."""
    runs = rle_counts_from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    runs_arr = np.asarray(runs, np.int64)
    if np.any(runs_arr < 0) or runs_arr.sum() != height * width:
        raise InputError(f"RLE counts sum to {int(runs_arr.sum())}, expected {height * width}")
    values = np.arange(len(runs_arr)) % 2 == 1
    flat = np.repeat(values, runs_arr)
    return flat.reshape(width, height).T.copy()


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """(H, W) bool union of COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` (pixel coords)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        xy = np.asarray(poly, np.float64).reshape(-1, 2)
        if len(xy) >= 3:
            draw.polygon([tuple(v) for v in xy.tolist()], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def coco_segmentation_mask(seg: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a COCO ``segmentation`` (polygon list, or RLE dict)."""
    if isinstance(seg, list):
        return polygons_to_mask(seg, height, width)
    if isinstance(seg, dict) and "counts" in seg:
        h, w = seg.get("size", (height, width))
        if (int(h), int(w)) != (height, width):
            raise InputError(f"RLE size {(h, w)} differs from the image size {(height, width)}")
        return rle_decode(seg["counts"], height, width)
    raise InputError(f"unsupported COCO segmentation of type {type(seg).__name__}")


# --------------------------------------------------------------------------- PartImageNet
class PartImageNet(Benchmark):
    """PartImageNet (He et al. 2022): 158 ImageNet classes, 11 super-categories, 40 parts.

    Layout (the release's ``PartImageNet/`` folder; COCO-style annotations)::

        annotations/<split>/<split>.json   {"images": [{id, file_name, width, height}],
                                            "annotations": [{id, image_id, category_id,
                                            segmentation (polygons or RLE), bbox, area,
                                            iscrowd}], "categories": [{id, name, supercategory}]}
        images/<split>/<file_name>         e.g. n01440764_10029.JPEG

    ``split``: ``"train"``, ``"val"`` (default) or ``"test"``. Also accepted:
    ``annotations/<split>.json`` and images under ``images/<split>/<synset>/``.
    Assumption: ``file_name`` starts with the WordNet synset (``<synset>_<n>.JPEG``).

    Records: ``id`` = image id, ``category`` = synset; ``meta``: ``file_name``,
    ``height``, ``width``, ``annotations`` (that image's), ``categories`` {id: name}.
    :meth:`load` returns ``image`` (H, W, 3) uint8 (``load(record, image=False)`` skips
    it); ``masks`` (M, H, W) bool, one per annotation; ``mask_categories`` (M,) int64;
    ``part_labels`` (H, W) int64 category id per pixel, -1 background (later
    annotations overwrite earlier ones where they overlap); ``categories`` {id: name}.
    """

    name = "partimagenet"
    folder = "PartImageNet"
    layout = "annotations/<split>/<split>.json + images/<split>/<file_name>"
    source = "github.com/TACJu/PartImageNet (download links in its README)"

    def __init__(self, path, split: str = "val") -> None:
        self.split = split
        super().__init__(path)

    def _annotation_file(self) -> Path:
        nested = self.path / "annotations" / self.split / f"{self.split}.json"
        return nested if nested.is_file() else self.path / "annotations" / f"{self.split}.json"

    def _check(self) -> None:
        if not self._annotation_file().is_file():
            raise self.missing(f"{self.path / 'annotations' / self.split / f'{self.split}.json'} not found")

    def _scan(self) -> list[Record]:
        path = self._annotation_file()
        coco = read_json(path, self)
        if not isinstance(coco, dict) or not {"images", "annotations"} <= set(coco):
            raise self._bad(path, "not a COCO annotation file (needs images and annotations)")
        cats = {int(c["id"]): str(c["name"]) for c in coco.get("categories", [])}
        by_image: dict[int, list[dict]] = {}
        for ann in coco["annotations"]:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        recs = []
        for img in sorted(coco["images"], key=lambda im: (str(im["file_name"]), int(im["id"]))):
            name = str(img["file_name"])
            synset = Path(name).name.split("_")[0]
            image = self.path / "images" / self.split / name
            if not image.is_file() and (self.path / "images" / self.split / synset / name).is_file():
                image = self.path / "images" / self.split / synset / name
            meta = {"file_name": name, "height": int(img["height"]), "width": int(img["width"]),
                    "annotations": by_image.get(int(img["id"]), []), "categories": cats, "image_id": int(img["id"])}
            recs.append(Record(self.name, str(img["id"]), synset, {"image": image}, meta))
        return recs

    def load(self, record: Record, image: bool = True) -> dict[str, Any]:
        h, w = record.meta["height"], record.meta["width"]
        masks, cats = [], []
        for ann in record.meta["annotations"]:
            try:
                masks.append(coco_segmentation_mask(ann["segmentation"], h, w))
            except (InputError, KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{self.name}: image {record.id} annotation {ann.get('id')}: {exc}") from None
            cats.append(int(ann["category_id"]))
        mask_arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        part = np.full((h, w), -1, np.int64)
        for m, c in zip(mask_arr, cats):
            part[m] = c
        out: dict[str, Any] = {"masks": mask_arr, "mask_categories": np.asarray(cats, np.int64),
                               "part_labels": part, "categories": dict(record.meta["categories"])}
        if image:
            img = read_image(record.paths["image"], self)
            if img.shape[:2] != (h, w):
                raise self._bad(record.paths["image"], f"size {img.shape[:2]} differs from annotation {(h, w)}")
            out["image"] = img
        return out


# ----------------------------------------------------------------------------- Pascal-Part
def _mat_str(x: Any) -> str:
    arr = np.asarray(x).ravel()
    return str(arr[0]) if arr.size else ""


def _mat_int(x: Any) -> int:
    arr = np.asarray(x).ravel()
    return int(arr[0]) if arr.size else -1


class PascalPart(Benchmark):
    """Pascal-Part (Chen et al. 2014): object and part masks for PASCAL VOC 2010 images.

    Layout::

        Annotations_Part/<image id>.mat   MATLAB struct ``anno`` (read with scipy.io.loadmat)
        JPEGImages/<image id>.jpg         VOC2010 images (also VOCdevkit/VOC2010/JPEGImages)

    ``anno`` fields (``loadmat(path)["anno"][0, 0]``): ``imname`` (str); ``objects``
    (1, K) struct array with ``class`` (str, e.g. ``"cat"``), ``class_ind`` (1..20, VOC
    class index), ``mask`` (H, W) uint8 object mask, ``parts`` (1, P) struct array with
    ``part_name`` (str, e.g. ``"head"``, ``"lfleg"``, ``"wheel_1"``) and ``mask`` (H, W)
    uint8; ``parts`` is empty for objects without part annotation.

    Records: ``id`` = image id, ``category`` = ``""`` (an image holds several classes;
    see ``objects`` after loading); sorted by id. :meth:`load` returns ``objects``: list
    of {``class``, ``class_ind``, ``mask`` (H, W) bool, ``parts``: [{``name``, ``mask``}]};
    ``object_labels`` (H, W) int64 VOC class index, 0 background; ``instance`` (H, W)
    int64 object index, -1 none; ``part_instance`` (H, W) int64 index into
    ``part_names`` (one entry ``"<class>/<part>"`` per annotated part mask, objects in
    order), -1 none; later masks overwrite earlier ones where they overlap; ``image``
    (H, W, 3) uint8 unless ``load(record, image=False)``.
    """

    name = "pascal_part"
    folder = "pascal_part"
    layout = "Annotations_Part/<id>.mat + JPEGImages/<id>.jpg"
    source = "www.stat.ucla.edu/~xianjie.chen/pascal_part_dataset (annotations) + PASCAL VOC 2010 (images)"

    def _check(self) -> None:
        if not (self.path / "Annotations_Part").is_dir():
            raise self.missing(f"{self.path / 'Annotations_Part'} not found")

    def _image_dir(self) -> Path:
        for rel in ("JPEGImages", "VOCdevkit/VOC2010/JPEGImages"):
            if (self.path / rel).is_dir():
                return self.path / rel
        return self.path / "JPEGImages"

    def _scan(self) -> list[Record]:
        images = self._image_dir()
        return [Record(self.name, mat.stem, "", {"annotation": mat, "image": images / f"{mat.stem}.jpg"}, {})
                for mat in sorted((self.path / "Annotations_Part").glob("*.mat"))]

    def _read(self, path: Path) -> list[dict[str, Any]]:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        try:
            anno = loadmat(path)["anno"][0, 0]
            raw_objects = anno["objects"]
        except FileNotFoundError:
            raise self._bad(path, "annotation not found") from None
        except (MatReadError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._bad(path, f"not a Pascal-Part annotation ({type(exc).__name__})") from exc
        objects = []
        for k, obj in enumerate(np.asarray(raw_objects).ravel()):
            try:
                parts = []
                raw_parts = obj["parts"]
                if np.asarray(raw_parts).size and np.asarray(raw_parts).dtype.names:
                    for part in np.asarray(raw_parts).ravel():
                        parts.append({"name": _mat_str(part["part_name"]), "mask": np.asarray(part["mask"]) > 0})
                objects.append({"class": _mat_str(obj["class"]), "class_ind": _mat_int(obj["class_ind"]),
                                "mask": np.asarray(obj["mask"]) > 0, "parts": parts})
            except (KeyError, ValueError, IndexError, TypeError) as exc:
                raise self._bad(path, f"object {k}: missing struct field ({type(exc).__name__}: {exc})") from exc
        return objects

    def load(self, record: Record, image: bool = True) -> dict[str, Any]:
        path = record.paths["annotation"]
        objects = self._read(path)
        img = read_image(record.paths["image"], self) if image else None
        shapes = {o["mask"].shape for o in objects} | {p["mask"].shape for o in objects for p in o["parts"]}
        if img is not None:
            shapes.add(img.shape[:2])
        if len(shapes) > 1:
            raise self._bad(path, f"mask / image sizes differ: {sorted(shapes)}")
        if not shapes:
            raise self._bad(path, "no objects and no image: size unknown")
        hw = shapes.pop()
        object_labels = np.zeros(hw, np.int64)
        instance = np.full(hw, -1, np.int64)
        part_instance = np.full(hw, -1, np.int64)
        part_names: list[str] = []
        for k, o in enumerate(objects):
            object_labels[o["mask"]] = o["class_ind"]
            instance[o["mask"]] = k
            for p in o["parts"]:
                part_instance[p["mask"]] = len(part_names)
                part_names.append(f"{o['class']}/{p['name']}")
        out: dict[str, Any] = {"objects": objects, "object_labels": object_labels, "instance": instance,
                               "part_instance": part_instance, "part_names": part_names}
        if img is not None:
            out["image"] = img
        return out
