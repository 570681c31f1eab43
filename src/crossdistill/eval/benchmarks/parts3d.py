"""Public 3D part-segmentation benchmarks (not on this machine): PartNetE, ShapeNetPart,
PartObjaverse-Tiny. Each loader reads the release's own layout, documented per class;
where the layout could not be checked against a copy of the data, the docstring says
what is assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossdistill.eval.benchmarks._base import Benchmark, Record, read_json
from crossdistill.types import Shape

__all__ = ["PartNetE", "SHAPENETPART_PARTS", "ShapeNetPart", "PartObjaverseTiny"]


def _load_shape(path: Path):
    from crossdistill.geometry.io import load_shape

    return load_shape(path)


# ----------------------------------------------------------------------------- PartNetE
class PartNetE(Benchmark):
    """PartNetE (PartNet-Ensembled), the PartSLIP benchmark: 45 categories of
    PartNet-Mobility objects as coloured point clouds with semantic and instance labels.

    Layout (the PartSLIP release, unzipped as its scripts expect)::

        PartNetE_meta.json                      {Category: [part name, ...]} (label k = name k)
        data/<split>/<Category>/<id>/pc.ply     points: x y z + colour (read with trimesh)
        data/<split>/<Category>/<id>/label.npy  pickled dict: "semantic_seg" (N,) int, -1 = no
                                                part; "instance_seg" (N,) int, -1 = none

    ``split`` is ``"test"`` (default) or ``"few_shot"``; a folder ``<split>/`` directly
    under the dataset folder (no ``data/``) is accepted too. ``label.npy`` is read with
    ``allow_pickle=True`` because the release stores a dict (as PartSLIP's evaluation
    scripts read it: ``np.load(..., allow_pickle=True).item()["semantic_seg"]``); only
    load releases you trust. A plain (N,) integer array is read as ``semantic_seg`` alone.
    Assumption: ``pc.ply`` holds exactly the labelled points in label order.

    Records: ``id`` ``"<Category>/<id>"``, ``category``; ``meta``: ``part_names`` (the
    category's list from the meta file, ``[]`` when the file is absent), ``split``.
    :meth:`load` returns ``shape`` (point-cloud :class:`~crossdistill.types.Shape`, N
    points, colours when present); ``semantic`` (N,) int64 in -1..K-1; ``instance`` (N,)
    int64 (absent when the file has no ``instance_seg``); ``n_parts`` K (or -1 unknown).
    """

    name = "partnete"
    folder = "PartNetE"
    layout = "PartNetE_meta.json + data/<split>/<Category>/<id>/{pc.ply,label.npy}"
    source = "PartSLIP's release (huggingface.co/datasets/minghua/PartSLIP: data/test.zip, PartNetE_meta.json)"

    def __init__(self, path, split: str = "test") -> None:
        self.split = split
        super().__init__(path)

    def _base(self) -> Path:
        nested = self.path / "data" / self.split
        return nested if nested.is_dir() else self.path / self.split

    def _check(self) -> None:
        if not self._base().is_dir():
            raise self.missing(f"{self.path / 'data' / self.split} not found")

    def _scan(self) -> list[Record]:
        meta_path = self.path / "PartNetE_meta.json"
        part_names = read_json(meta_path, self) if meta_path.is_file() else {}
        recs = []
        for ply in sorted(self._base().glob("*/*/pc.ply")):
            obj, cat = ply.parent, ply.parent.parent.name
            meta = {"part_names": list(part_names.get(cat, [])), "split": self.split}
            recs.append(Record(self.name, f"{cat}/{obj.name}", cat, {"points": ply, "labels": obj / "label.npy"}, meta))
        return recs

    def load(self, record: Record) -> dict[str, Any]:
        shape = _load_shape(record.paths["points"])
        path = record.paths["labels"]
        try:
            try:
                data: Any = np.load(path)
            except ValueError:  # object array: the release's pickled dict
                data = np.load(path, allow_pickle=True)
                data = data.item() if data.dtype == object and data.shape == () else data
        except FileNotFoundError:
            raise self._bad(path, "label file not found") from None
        except (OSError, ValueError) as exc:
            raise self._bad(path, f"cannot read labels ({type(exc).__name__})") from exc
        if isinstance(data, dict):
            if "semantic_seg" not in data:
                raise self._bad(path, f"dict has no 'semantic_seg' (keys {sorted(data)})")
            labels = {"semantic": data["semantic_seg"], "instance": data.get("instance_seg")}
        else:
            labels = {"semantic": data, "instance": None}
        out: dict[str, Any] = {"shape": shape}
        for key, arr in labels.items():
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.shape != (shape.n_vertices,) or arr.dtype.kind not in "iuf":
                expected = f"expected ({shape.n_vertices},) int"
                raise self._bad(path, f"{key} has shape {arr.shape} dtype {arr.dtype}, {expected}")
            out[key] = arr.astype(np.int64)
        names = record.meta.get("part_names") or []
        out["n_parts"] = len(names) if names else -1
        return out


# ------------------------------------------------------------------------- ShapeNetPart
#: ShapeNetPart global part ids per category (50 parts over 16 categories).
SHAPENETPART_PARTS: dict[str, tuple[int, ...]] = {
    "Airplane": (0, 1, 2, 3), "Bag": (4, 5), "Cap": (6, 7), "Car": (8, 9, 10, 11),
    "Chair": (12, 13, 14, 15), "Earphone": (16, 17, 18), "Guitar": (19, 20, 21), "Knife": (22, 23),
    "Lamp": (24, 25, 26, 27), "Laptop": (28, 29), "Motorbike": (30, 31, 32, 33, 34, 35),
    "Mug": (36, 37), "Pistol": (38, 39, 40), "Rocket": (41, 42, 43), "Skateboard": (44, 45, 46),
    "Table": (47, 48, 49),
}


class ShapeNetPart(Benchmark):
    """ShapeNetPart (``shapenetcore_partanno_segmentation_benchmark_v0_normal``).

    Layout::

        synsetoffset2category.txt      lines "<Category> <synset>" (e.g. "Airplane 02691156")
        <synset>/<id>.txt              rows "x y z nx ny nz part" (part: global id 0..49,
                                       written as a float)
        train_test_split/shuffled_{train,val,test}_file_list.json
                                       ["shape_data/<synset>/<id>", ...]

    ``split``: ``"train"``, ``"val"``, ``"test"`` (default) or ``"all"`` (every file of
    the synset folders). Records: ``id`` ``"<synset>/<id>"``, ``category`` the name;
    ``meta``: ``synset``, ``parts`` (the category's global ids, :data:`SHAPENETPART_PARTS`).

    :meth:`load` returns ``shape`` (point cloud, N points, unit normals); ``labels`` (N,)
    int64 global part id; ``local_labels`` (N,) int64 ``labels - first id of the
    category`` in 0..K-1 (for :func:`~crossdistill.eval.metrics.shapenetpart_miou`);
    ``n_parts`` K.
    """

    name = "shapenetpart"
    folder = "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    layout = "synsetoffset2category.txt + <synset>/<id>.txt + train_test_split/shuffled_<split>_file_list.json"
    source = "the ShapeNetPart benchmark (Yi et al. 2016; shapenetcore_partanno_segmentation_benchmark_v0_normal.zip)"

    def __init__(self, path, split: str = "test") -> None:
        if split not in ("train", "val", "test", "all"):
            raise self.missing(f"unknown split {split!r} (train, val, test or all)")
        self.split = split
        super().__init__(path)

    def _check(self) -> None:
        if not (self.path / "synsetoffset2category.txt").is_file():
            raise self.missing(f"{self.path / 'synsetoffset2category.txt'} not found")

    def _categories(self) -> dict[str, str]:
        """synset -> category name."""
        path = self.path / "synsetoffset2category.txt"
        out = {}
        for i, line in enumerate(path.read_text().splitlines()):
            f = line.split()
            if not f:
                continue
            if len(f) != 2:
                raise self._bad(path, f"line {i + 1}: expected '<Category> <synset>'")
            out[f[1]] = f[0]
        return out

    def _scan(self) -> list[Record]:
        cats = self._categories()
        if self.split == "all":
            items = [(s, p.stem) for s in cats for p in sorted((self.path / s).glob("*.txt"))]
        else:
            split_path = self.path / "train_test_split" / f"shuffled_{self.split}_file_list.json"
            items = []
            for entry in read_json(split_path, self):
                parts = str(entry).strip("/").split("/")
                if len(parts) < 2:
                    raise self._bad(split_path, f"entry {entry!r} is not 'shape_data/<synset>/<id>'")
                items.append((parts[-2], parts[-1]))
        recs = []
        for synset, sid in sorted(set(items)):
            if synset not in cats:
                raise self._bad(self.path / "synsetoffset2category.txt", f"synset {synset} not listed")
            name = cats[synset]
            meta = {"synset": synset, "parts": list(SHAPENETPART_PARTS.get(name, ()))}
            recs.append(Record(self.name, f"{synset}/{sid}", name, {"points": self.path / synset / f"{sid}.txt"}, meta))
        return recs

    def load(self, record: Record) -> dict[str, Any]:
        path = record.paths["points"]
        try:
            data = np.loadtxt(path, dtype=np.float64, ndmin=2)
        except FileNotFoundError:
            raise self._bad(path, "file not found") from None
        except (OSError, ValueError) as exc:
            raise self._bad(path, f"cannot parse rows 'x y z nx ny nz part' ({type(exc).__name__})") from exc
        if data.shape[1] != 7 or len(data) == 0:
            raise self._bad(path, f"expected rows of 7 numbers, got shape {data.shape}")
        labels = data[:, 6].round().astype(np.int64)
        parts = record.meta["parts"]
        if parts and not np.isin(labels, parts).all():
            bad = sorted(set(labels.tolist()) - set(parts))[:5]
            raise self._bad(path, f"part ids {bad} not in {record.category}'s {parts}")
        normals = data[:, 3:6]
        norm = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)
        shape = Shape(vertices=data[:, :3].copy(), vertex_normals=normals, source=str(path))
        first = min(parts) if parts else 0
        return {"shape": shape, "labels": labels, "local_labels": labels - first,
                "n_parts": len(parts) if parts else int(labels.max()) + 1}


# ------------------------------------------------------------------- PartObjaverse-Tiny
class PartObjaverseTiny(Benchmark):
    """PartObjaverse-Tiny (SAMPart3D): 200 Objaverse meshes, 8 categories, face labels.

    Layout (the release's four files, zips extracted in place)::

        PartObjaverse-Tiny_semantic.json              {Category: {uid: [part name, ...]}}
        PartObjaverse-Tiny_mesh/<uid>.glb             the mesh
        PartObjaverse-Tiny_semantic_gt/<uid>.npy      (F,) int semantic label per face,
                                                      index into the uid's name list
        PartObjaverse-Tiny_instance_gt/<uid>.npy      (F,) int instance id per face

    Assumptions (the release documents the files, not the array details): one label per
    face of the scene flattened with trimesh (``trimesh.load(path, force="mesh")``, i.e.
    ``Scene.to_mesh()``, the order :func:`crossdistill.geometry.io.load_shape` keeps);
    any negative value means unlabelled. The face counts are checked on load.

    Records: ``id`` = uid, ``category``; ``meta``: ``part_names``. Sorted by category, uid.
    :meth:`load` returns ``shape`` (mesh, F faces); ``semantic`` (F,) int64; ``instance``
    (F,) int64 (absent when the instance file is missing); ``part_names``.
    """

    name = "partobjaverse_tiny"
    folder = "PartObjaverse-Tiny"
    layout = "PartObjaverse-Tiny_semantic.json + PartObjaverse-Tiny_{mesh,semantic_gt,instance_gt}/<uid>.*"
    source = "huggingface.co/datasets/yhyang-myron/PartObjaverse-Tiny (CC BY-NC 4.0)"

    def _check(self) -> None:
        for rel in ("PartObjaverse-Tiny_semantic.json", "PartObjaverse-Tiny_mesh"):
            if not (self.path / rel).exists():
                raise self.missing(f"{self.path / rel} not found")

    def _scan(self) -> list[Record]:
        table = read_json(self.path / "PartObjaverse-Tiny_semantic.json", self)
        if not isinstance(table, dict):
            raise self._bad(self.path / "PartObjaverse-Tiny_semantic.json", "expected {category: {uid: [names]}}")
        recs = []
        for cat in sorted(table):
            for uid in sorted(table[cat]):
                paths = {"mesh": self.path / "PartObjaverse-Tiny_mesh" / f"{uid}.glb",
                         "semantic": self.path / "PartObjaverse-Tiny_semantic_gt" / f"{uid}.npy",
                         "instance": self.path / "PartObjaverse-Tiny_instance_gt" / f"{uid}.npy"}
                recs.append(Record(self.name, uid, cat, paths, {"part_names": list(table[cat][uid])}))
        return recs

    def load(self, record: Record) -> dict[str, Any]:
        shape = _load_shape(record.paths["mesh"])
        out: dict[str, Any] = {"shape": shape, "part_names": list(record.meta["part_names"])}
        for key in ("semantic", "instance"):
            path = record.paths[key]
            if key == "instance" and not path.is_file():
                continue
            try:
                arr = np.load(path)
            except FileNotFoundError:
                raise self._bad(path, "label file not found") from None
            except (OSError, ValueError) as exc:
                raise self._bad(path, f"cannot read labels ({type(exc).__name__})") from exc
            arr = np.asarray(arr).reshape(-1) if np.ndim(arr) == 2 and 1 in np.shape(arr) else np.asarray(arr)
            if arr.shape != (shape.n_faces,) or arr.dtype.kind not in "iuf":
                raise self._bad(path, f"shape {arr.shape} dtype {arr.dtype}, expected ({shape.n_faces},) int per face")
            out[key] = arr.astype(np.int64)
        return out
