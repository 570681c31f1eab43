"""A detector-like text teacher emulated from ground-truth parts: an instrument for benchmarks only.

No GLIP / OWLv2 / Grounding-DINO weights can be obtained here, yet what PartDistill does
with a text-prompted detector's view-inconsistent predictions must be measured.
:class:`EmulatedDetectorTeacher` stands in for such a detector on labelled shapes. It speaks
the :class:`~crossdistill.teachers.base.TextTeacher` protocol of the real detector teachers
(``predict(views, part_names) -> list[PartPredictions]``, boxes or masks with scores), so
the PartDistill pipeline runs unchanged. It is never a default, says what it is in its
``teacher_id`` (``emulated-detector...``), and every report that uses it names it.

Ground truth: per registered shape, the part *instance* of every face (e.g. the articulated
link of a PartNet-Mobility face) and the part name of every instance (several instances may
share one name: two doors). The teacher recognises which registered shape a set of views
shows from the views' geometry (the rendered depth of a few pixels must lie on the faces
they hit), so one teacher serves a whole category. Shapes are registered in the unit box
(:func:`~crossdistill.geometry.normalize.normalize_shape`), as PartDistill renders them.

Per view, the clean detections (strength 0) are, for every instance whose name is one of
the prompted ``part_names`` and with at least ``min_pixels`` visible pixels, its tight box
(``output="box"``, GLIP-like) or its visible pixels (``output="mask"``), with its name's
index as label and score 1.

Noise model at strength t in [0, 1] (fixed before any measurement; ``low`` = 0.25,
``medium`` = 0.5, ``high`` = 1.0). Per view, independently of every other view (so views
disagree, as a detector's do), with a generator seeded by (seed, shape, view); ``a`` is an
instance's share of the view's object pixels:

1. missed parts: an instance is not detected with probability t * (0.1 + 0.9 * max(0, 1 - a / 0.05))
   (every part 0.1 t; parts under 5% of the object more, up to t: small parts first);
2. swapped labels: a detection takes, with probability 0.2 t, the label of another detected
   instance of this view with a different name (uniformly), or a uniformly drawn other
   prompted name when there is none;
3. loose, shifted geometry: a box's sides each move outward by |N(0, 0.15 t)| times the box's
   width (left, right) or height (top, bottom), then the box shifts by N(0, 0.05 t) times its
   width and height, and is clipped to the image; a mask is dilated by round(4 t U(0, 1))
   pixels, shifted by the same kind of offset (rounded to pixels) and cut to the object's
   pixels (kept unchanged if nothing is left);
4. duplicates: each detection is repeated, with probability 0.25 t, with its label and a
   fresh draw of step 3 from the clean geometry (non-maximum suppression let it through);
5. spurious detections: Poisson(t) per view, each a box centred on a uniformly drawn object
   pixel, of width and height U(0.1, 0.4) times the object's image extent, with a uniformly
   drawn prompted name (a mask: the object's pixels in that box);
6. scores (clipped to [0.01, 1]): a correctly labelled detection scores
   1 - t U(0.2, 0.8) - 0.2 t max(0, 1 - a / 0.05) (small parts lower); a swapped one
   1 - t U(0.4, 1.0); a duplicate its source's score times U(0.5, 0.9); a spurious one
   U(0.1, 0.6).

:meth:`EmulatedDetectorTeacher.detect` also returns the kind of every detection (``clean``,
``swapped``, ``duplicate``, ``spurious``) and its source instance, for tests and reports.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from crossdistill.geometry.normalize import normalize_shape
from crossdistill.teachers.base import PartPredictions
from crossdistill.types import Shape, Views

__all__ = ["DETECTOR_STRENGTHS", "DetectorGroundTruth", "EmulatedDetectorTeacher", "Detections"]

#: named strengths of the noise model
DETECTOR_STRENGTHS: dict[str, float] = {"zero": 0.0, "low": 0.25, "medium": 0.5, "high": 1.0}

KINDS = ("clean", "swapped", "duplicate", "spurious")


@dataclass(frozen=True)
class DetectorGroundTruth:
    """One shape's ground truth for the emulator.

    Attributes:
        name: identifier (seeds the noise together with the teacher's seed and the view).
        vertices: (Nv, 3) float64 unit-box vertices (as PartDistill renders the shape).
        faces: (F, 3) int64.
        face_instance: (F,) int64 part instance of every face, -1 for none.
        instance_names: part name of every instance (indexed by ``face_instance``).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    face_instance: np.ndarray
    instance_names: tuple[str, ...]

    @classmethod
    def from_shape(cls, shape: Shape, face_instance: np.ndarray, instance_names: Sequence[str],
                   name: str = "") -> "DetectorGroundTruth":
        """Ground truth of a mesh as loaded (moved into the unit box here; the input is not modified)."""
        if not shape.is_mesh:
            raise ValueError("the detector emulator needs a mesh (faces carry the ground truth)")
        face_instance = np.asarray(face_instance, np.int64)
        if face_instance.shape != (shape.n_faces,):
            raise ValueError(f"face_instance must be ({shape.n_faces},), got {face_instance.shape}")
        if face_instance.max(initial=-1) >= len(instance_names):
            raise ValueError(f"instance {int(face_instance.max())} but {len(instance_names)} instance names")
        unit, _ = normalize_shape(shape)
        return cls(name or shape.source, np.asarray(unit.vertices, np.float64), np.asarray(shape.faces, np.int64),
                   face_instance, tuple(str(n) for n in instance_names))


@dataclass(frozen=True)
class Detections:
    """One view's emulated detections with their provenance.

    Attributes:
        predictions: what the teacher returns for the view.
        kinds: (D,) str kind of every detection (``clean``, ``swapped``, ``duplicate``, ``spurious``).
        source: (D,) int64 ground-truth instance each detection came from (-1 for spurious).
    """

    predictions: PartPredictions
    kinds: np.ndarray
    source: np.ndarray


@dataclass
class EmulatedDetectorTeacher:
    """GLIP-like part boxes or masks from ground truth, with view-inconsistent errors (benchmarks only).

    Args:
        shapes: the registered shapes' :class:`DetectorGroundTruth`.
        output: "box" (GLIP / OWLv2-like) or "mask" (pixel-level).
        strength: noise strength t in [0, 1] (see the module docstring).
        seed: seeds the noise.
        min_pixels: instances with fewer visible pixels are never detected.

    Example:
        >>> t = EmulatedDetectorTeacher([], output="box", strength=0.5)
        >>> t.teacher_id
        'emulated-detector:box:t=0.5:seed=0:shapes=0'
    """

    shapes: Sequence[DetectorGroundTruth]
    output: str = "box"
    strength: float = 0.0
    seed: int = 0
    min_pixels: int = 4
    is_offline_default: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.shapes = list(self.shapes)
        if self.output not in ("box", "mask"):
            raise ValueError(f"output must be 'box' or 'mask', got {self.output!r}")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], got {self.strength}")

    @property
    def prediction_output(self) -> str:
        """"box" or "mask", as the real text teachers name what they predict."""
        return self.output

    @property
    def teacher_id(self) -> str:
        names = ",".join(s.name for s in self.shapes)
        digest = f":{zlib.crc32(names.encode()):08x}" if self.shapes else ""
        return (f"emulated-detector:{self.output}:t={self.strength:g}:seed={self.seed}:shapes={len(self.shapes)}"
                f"{digest}")

    # ------------------------------------------------------------------ protocol

    def predict(self, views: Views, part_names: Sequence[str]) -> list[PartPredictions]:
        """One :class:`PartPredictions` per view (boxes or masks, labels index ``part_names``)."""
        return [d.predictions for d in self.detect(views, part_names)]

    def detect(self, views: Views, part_names: Sequence[str]) -> list[Detections]:
        """The detections of every view with their kinds and sources."""
        names = tuple(str(n) for n in part_names)
        if not names:
            raise ValueError("the detector emulator needs at least one part name")
        gt = self.identify(views)
        key = zlib.crc32(gt.name.encode())
        return [self._view(views, v, gt, names, np.random.default_rng([self.seed, key, v, 104729]))
                for v in range(len(views))]

    def identify(self, views: Views) -> DetectorGroundTruth:
        """The registered shape these views show (the hit faces must contain the rendered points)."""
        if not self.shapes:
            raise ValueError("no shape registered with the detector emulator")
        fg = views.face_id >= 0
        if len(self.shapes) == 1 or not fg.any():
            return self.shapes[0]
        v = int(np.argmax(fg.reshape(len(views), -1).sum(1)))
        ys, xs = np.nonzero(fg[v])
        pick = np.linspace(0, len(ys) - 1, min(64, len(ys))).astype(np.int64)
        ys, xs = ys[pick], xs[pick]
        f = views.face_id[v, ys, xs].astype(np.int64)
        z = views.depth[v, ys, xs].astype(np.float64)
        cam = np.linalg.solve(views.cameras.K[v], np.stack([xs + 0.5, ys + 0.5, np.ones(len(xs))]))
        cam = cam * z[None]
        c2w = views.cameras.cam_to_world[v]
        world = (c2w[:3, :3] @ cam).T + c2w[:3, 3]
        best, best_d = None, np.inf
        for s in self.shapes:
            if len(s.faces) <= f.max():
                continue
            tri = s.vertices[s.faces[f]]
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            d = float(np.median(np.abs(((world - tri[:, 0]) * n).sum(1))))
            if d < best_d:
                best, best_d = s, d
        if best is None or best_d > 1e-2:
            raise ValueError("these views show none of the shapes registered with the detector emulator")
        return best

    # ------------------------------------------------------------------ one view

    def _view(self, views: Views, v: int, gt: DetectorGroundTruth, names: tuple[str, ...],
              rng: np.random.Generator) -> Detections:
        face = views.face_id[v]
        fg = face >= 0
        H, W = fg.shape
        t = float(self.strength)
        name_index = {n: i for i, n in enumerate(names)}
        inst = np.where(fg, gt.face_instance[np.clip(face, 0, len(gt.face_instance) - 1)], -1)
        fg_area = max(int(fg.sum()), 1)
        clean = []  # (instance, label, mask, share)
        for i in np.unique(inst[inst >= 0]):
            label = name_index.get(gt.instance_names[int(i)])
            m = inst == i
            if label is None or m.sum() < self.min_pixels:
                continue
            clean.append((int(i), label, m, float(m.sum()) / fg_area))
        dets = []  # (label, geometry, score, kind, source)
        if t == 0.0:
            for i, label, m, _ in clean:
                dets.append((label, self._geometry(m, fg, 0.0, rng), 1.0, "clean", i))
            return self._pack(dets, names, H, W)
        # 1. missed parts
        kept = [c for c in clean if rng.random() >= t * (0.1 + 0.9 * max(0.0, 1.0 - c[3] / 0.05))]
        # 2. swapped labels, 3. loose geometry, 6. scores
        primary = []
        for i, label, m, share in kept:
            kind = "clean"
            if len(names) > 1 and rng.random() < 0.2 * t:
                others = sorted({c[1] for c in kept if c[1] != label})
                pool = others or [n for n in range(len(names)) if n != label]
                label = int(pool[rng.integers(len(pool))])
                kind = "swapped"
            if kind == "clean":
                score = 1.0 - t * rng.uniform(0.2, 0.8) - 0.2 * t * max(0.0, 1.0 - share / 0.05)
            else:
                score = 1.0 - t * rng.uniform(0.4, 1.0)
            primary.append((label, self._geometry(m, fg, t, rng), score, kind, i))
            dets.append(primary[-1])
        # 4. duplicates
        by_instance = {c[0]: c[2] for c in kept}
        for label, _, score, _, i in primary:
            if rng.random() < 0.25 * t:
                dets.append((label, self._geometry(by_instance[i], fg, t, rng), score * rng.uniform(0.5, 0.9),
                             "duplicate", i))
        # 5. spurious detections
        if fg.any():
            ys, xs = np.nonzero(fg)
            ext_x, ext_y = float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)
            for _ in range(rng.poisson(t)):
                j = rng.integers(len(ys))
                w, h = rng.uniform(0.1, 0.4) * ext_x, rng.uniform(0.1, 0.4) * ext_y
                box = _clip_box(np.array([xs[j] + 0.5 - w / 2, ys[j] + 0.5 - h / 2, xs[j] + 0.5 + w / 2,
                                          ys[j] + 0.5 + h / 2]), W, H)
                geom = box if self.output == "box" else _box_mask(box, H, W) & fg
                dets.append((int(rng.integers(len(names))), geom, rng.uniform(0.1, 0.6), "spurious", -1))
        return self._pack(dets, names, H, W)

    def _geometry(self, mask: np.ndarray, fg: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
        """(4,) xyxy box or (H, W) mask of one detection, loose and shifted at strength t (step 3)."""
        H, W = mask.shape
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
        w, h = box[2] - box[0], box[3] - box[1]
        if self.output == "box":
            if t > 0:
                grow = np.abs(rng.normal(0.0, 0.15 * t, 4)) * np.array([w, h, w, h])
                box = box + grow * np.array([-1, -1, 1, 1])
                box = box + np.tile(rng.normal(0.0, 0.05 * t, 2) * np.array([w, h]), 2)
            return _clip_box(box, W, H)
        if t == 0:
            return mask.copy()
        r = int(round(4 * t * rng.uniform()))
        dx, dy = (int(round(s)) for s in rng.normal(0.0, 0.05 * t, 2) * np.array([w, h]))
        out = ndimage.binary_dilation(mask, iterations=r) if r > 0 else mask
        out = _shift(out, dx, dy) & fg
        return out if out.any() else mask.copy()

    def _pack(self, dets: list, names: tuple[str, ...], H: int, W: int) -> Detections:
        labels = np.array([d[0] for d in dets], np.int64)
        scores = np.clip(np.array([d[2] for d in dets], np.float64), 0.01, 1.0).astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        if self.output == "box":
            boxes = np.array([d[1] for d in dets], np.float32).reshape(-1, 4)[order]
            masks = None
        else:
            boxes = None
            masks = (np.stack([d[1] for d in dets]) if dets else np.zeros((0, H, W), bool))[order]
        preds = PartPredictions(labels[order], scores[order], boxes, masks, names)
        return Detections(preds, np.array([d[3] for d in dets], dtype="<U9")[order],
                          np.array([d[4] for d in dets], np.int64)[order])


# --------------------------------------------------------------------------- helpers


def _clip_box(box: np.ndarray, W: int, H: int) -> np.ndarray:
    out = np.asarray(box, np.float64).copy()
    out[[0, 2]] = np.clip(out[[0, 2]], 0, W)
    out[[1, 3]] = np.clip(out[[1, 3]], 0, H)
    return out.astype(np.float32)


def _box_mask(box: np.ndarray, H: int, W: int) -> np.ndarray:
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    out = np.zeros((H, W), bool)
    out[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return out


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` moved by (dx, dy) pixels; what leaves the image is lost."""
    H, W = mask.shape
    out = np.zeros_like(mask)
    if abs(dx) >= W or abs(dy) >= H:
        return out
    src = mask[max(-dy, 0):H - max(dy, 0), max(-dx, 0):W - max(dx, 0)]
    out[max(dy, 0):max(dy, 0) + src.shape[0], max(dx, 0):max(dx, 0) + src.shape[1]] = src
    return out
