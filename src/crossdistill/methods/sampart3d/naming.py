"""Part naming (SAMPart3D's semantic labelling): highlighted renders, a multimodal LLM, or geometry alone.

SAMPart3D names each segmented part by rendering the object with that part highlighted
from several views and asking a multimodal LLM (GPT-4o in the paper) what the part is
called. This module has the three pieces:

* :func:`~crossdistill.viz.highlight.render_highlights`: the object
  rendered once from V orbit views, then for every part k one tight composite image (the V
  views side by side) with part k in a strong colour and the rest grey.
* :class:`MLLMNamer`: sends each composite to an OpenAI-compatible chat endpoint
  (:class:`~crossdistill.teachers.mllm.ChatClient`) with :func:`part_prompt` and reads
  the answer with :func:`parse_name`.
* :class:`OfflineNamer`: the offline default, no model: descriptive names from geometry
  only ("body" for a part holding more than half of the surface, else position words
  from the part's centroid in the object's bounding box, "small" below 5% of the surface,
  e.g. "small top part"). It says what it is: ``offline = True`` and the id
  ``offline-geometry-v1``.

Both namers follow :class:`PartNamer` (``name_parts(shape, labels, ...) -> list[str]``)
and return unique names (:func:`dedupe_names`: "top part", "top part 2").

Axis conventions of the position words (glTF's, as the demo robot and the orbit rig
use): +y is up ("top" / "bottom"), +z faces the viewer ("front" / "back"), and left /
right are as seen from the front (-x is "left").

Example:
    >>> from crossdistill.geometry.demo import demo_part_labels, demo_shape
    >>> names = OfflineNamer().name_parts(demo_shape(), demo_part_labels()["coarse"])
    >>> names[0]  # the head
    'top part'
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from crossdistill.teachers.mllm import ChatClient
from crossdistill.types import Shape
from crossdistill.viz.highlight import HIGHLIGHT_COLOR_NAME, Highlights, render_highlights

__all__ = ["PartNamer", "OfflineNamer", "MLLMNamer", "part_prompt", "parse_name", "dedupe_names", "element_geometry"]

#: a part above this share of the object's surface (or points) is its "body"
BODY_SHARE = 0.5
#: a part below this share is "small"
SMALL_SHARE = 0.05
#: a centroid this far from the box centre (fraction of the box side) earns a position word
POSITION_OFFSET = 0.2
#: the longest name kept from a model's answer, in words
MAX_NAME_WORDS = 4
_EMPTY_NAME = "empty part"


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class PartNamer(Protocol):
    """Names every part of a labelled shape.

    Attributes:
        namer_id: backend + model + settings that change the names (recorded in outputs).
        offline: True for the weight-free, model-free default.
    """

    namer_id: str
    offline: bool

    def name_parts(self, shape: Shape, labels: np.ndarray, *, category: str | None = None,
                   highlights: "Highlights | None" = None, progress: bool = False) -> list[str]:
        """One unique name per label 0..K-1 (K = ``labels.max() + 1``).

        Args:
            shape: the shape as loaded (any units).
            labels: (M,) int labels, one per face (meshes) or point (clouds).
            category: optional object category given by the user ("chair").
            highlights: renders from :func:`render_highlights` (namers that look at images
                render them when None).
            progress: show a progress bar over parts.
        """
        ...


def dedupe_names(names: Sequence[str]) -> list[str]:
    """Make names unique in order: the second "top part" becomes "top part 2", and so on.

    Example:
        >>> dedupe_names(["top part", "body", "top part", "top part"])
        ['top part', 'body', 'top part 2', 'top part 3']
    """
    seen: set[str] = set()
    out = []
    for name in names:
        cand, n = name, 1
        while cand in seen:
            n += 1
            cand = f"{name} {n}"
        seen.add(cand)
        out.append(cand)
    return out


def _n_parts(labels: np.ndarray) -> int:
    lab = np.asarray(labels)
    return int(lab.max()) + 1 if lab.size and lab.max() >= 0 else 0


# --------------------------------------------------------------------------- offline namer


def element_geometry(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """Position and weight of every labelled element.

    Returns:
        centers: (M, 3) float64 face centroids (meshes) or points (clouds).
        weights: (M,) float64 face areas (meshes) or ones (clouds).
    """
    if shape.is_mesh:
        return shape.triangles.mean(axis=1), shape.face_areas
    return np.asarray(shape.vertices, dtype=np.float64), np.ones(shape.n_vertices)


#: (axis, word for the low side, word for the high side), in the order words are written
_AXIS_WORDS = ((1, "bottom", "top"), (2, "back", "front"), (0, "left", "right"))


class OfflineNamer:
    """Descriptive part names from geometry only (no model, no images).

    A part with more than half of the surface area (points for clouds) is "body".
    Other parts get up to two position words, from the part's area-weighted centroid
    relative to the object's bounding box (a word when the centroid lies more than a fifth
    of the box side from its centre; the two largest offsets kept), "small" below 5% of
    the area, and "part": "top part", "small bottom front part", "central part". Labels with
    no element are "empty part". Names are made unique with :func:`dedupe_names`.
    """

    namer_id = "offline-geometry-v1"
    offline = True
    model: str | None = None

    def describe(self, shape: Shape, labels: np.ndarray) -> list[str]:
        """Raw (possibly repeated) descriptive name of every label 0..K-1.

        Args:
            shape: the shape, any units.
            labels: (M,) int labels per face or point.
        """
        centers, weights = element_geometry(shape)
        lab = np.asarray(labels, dtype=np.int64)
        K = _n_parts(lab)
        if len(lab) != len(centers):
            raise ValueError(f"{len(lab)} labels for {len(centers)} elements")
        keep = lab >= 0
        total_w = np.bincount(lab[keep], weights=weights[keep], minlength=K)
        sums = np.stack([np.bincount(lab[keep], weights=weights[keep] * centers[keep, a], minlength=K)
                         for a in range(3)], axis=1)
        lo, hi = shape.bounds
        extent = hi - lo
        usable = extent > 1e-9 * max(float(extent.max()), 1e-300)
        all_w = max(float(total_w.sum()), 1e-300)
        names = []
        for k in range(K):
            if total_w[k] <= 0:
                names.append(_EMPTY_NAME)
                continue
            share = total_w[k] / all_w
            if share > BODY_SHARE:
                names.append("body")
                continue
            rel = np.where(usable, (sums[k] / total_w[k] - lo) / np.where(usable, extent, 1.0), 0.5) - 0.5
            offsets = [(abs(rel[a]), i, low if rel[a] < 0 else high)
                       for i, (a, low, high) in enumerate(_AXIS_WORDS) if abs(rel[a]) > POSITION_OFFSET]
            strongest = sorted(sorted(offsets, reverse=True)[:2], key=lambda t: t[1])
            words = [w for _, _, w in strongest] or ["central"]
            names.append(" ".join((["small"] if share < SMALL_SHARE else []) + words + ["part"]))
        return names

    def name_parts(self, shape: Shape, labels: np.ndarray, *, category: str | None = None,
                   highlights: "Highlights | None" = None, progress: bool = False) -> list[str]:
        """Unique descriptive names (``category`` and ``highlights`` are not used)."""
        return dedupe_names(self.describe(shape, labels))


# --------------------------------------------------------------------------- highlighted renders


def _bar(it, progress: bool, desc: str):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, unit="part")


# --------------------------------------------------------------------------- multimodal LLM namer


def part_prompt(n_views: int, category: str | None = None) -> str:
    """The question asked for each part (one composite image of ``n_views`` views follows it)."""
    cat = (category or "").strip()
    obj = (f"an {cat}" if cat[0].lower() in "aeiou" else f"a {cat}") if cat else "one 3D object"
    views = "one view" if n_views == 1 else f"{n_views} views of it side by side, seen from around it"
    return (f"The image shows {obj} ({views}). One part of the object is highlighted in "
            f"{HIGHLIGHT_COLOR_NAME} in every view; the rest of the object is grey. "
            "What is the highlighted part called? Name the part, not the whole object, with a short "
            "lowercase noun phrase of one to three words (for example \"lid\", \"chair leg\", \"handle\"). "
            'Answer only with JSON: {"name": "..."}')


_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_IS_THE = re.compile(r"\b(?:is|are|looks like|appears to be)\s+(.+)$")
_ARTICLES = {"the", "a", "an"}


def parse_name(text: str, max_words: int = MAX_NAME_WORDS) -> str:
    """A clean part name from a model's answer, or "" when nothing usable is in it.

    Takes the ``"name"`` of the first JSON object in the answer, else the first non-empty
    line (after "... is the X" when the model answered in a sentence); lowercases, drops
    quotes, punctuation and leading articles, and keeps at most ``max_words`` words.

    Example:
        >>> parse_name('```json\\n{"name": "Chair Leg"}\\n```'), parse_name('"The lid."')
        ('chair leg', 'lid')
    """
    s = _FENCE.sub("", str(text).strip()).strip()
    candidate = None
    for match in _JSON_OBJECT.finditer(s):
        try:
            doc = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(doc, dict):
            value = doc.get("name", next((v for v in doc.values() if isinstance(v, str)), None))
            if isinstance(value, str):
                candidate = value
                break
    if candidate is None:
        try:
            doc = json.loads(s)
            candidate = doc if isinstance(doc, str) else None
        except ValueError:
            pass
    if candidate is None:
        lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
        candidate = lines[0] if lines else ""
        candidate = re.sub(r"^\s*(?:part\s+)?name\s*[:=]\s*", "", candidate, flags=re.IGNORECASE)
        m = _IS_THE.search(candidate)
        if m and len(candidate.split()) > max_words:
            candidate = m.group(1)
    words = re.sub(r"[^\w\s'-]|_", " ", candidate.lower()).replace("'", " ").split()
    words = [w.strip("-") for w in words if w.strip("-")]
    while words and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words[:max_words])


class MLLMNamer:
    """Names parts by asking a multimodal LLM about highlighted renders (SAMPart3D).

    One request per visible part: :func:`part_prompt` plus the part's composite image.
    Parts no view sees (inside the object, or no element), and answers with nothing
    usable, get the :class:`OfflineNamer` name instead; their labels are listed in
    :attr:`named_offline` after each call.

    Args:
        client: the chat endpoint.
        n_views, size: renders made when ``name_parts`` gets no highlights.
        max_tokens: answer length limit.
    """

    offline = False

    def __init__(self, client: ChatClient, n_views: int = 4, size: int = 256, max_tokens: int = 30):
        self.client = client
        self.n_views = int(n_views)
        self.size = int(size)
        self.max_tokens = int(max_tokens)
        self.named_offline: list[int] = []

    @property
    def namer_id(self) -> str:
        return f"mllm-v1:{self.client.model}"

    @property
    def model(self) -> str:
        return self.client.model

    def name_parts(self, shape: Shape, labels: np.ndarray, *, category: str | None = None,
                   highlights: Highlights | None = None, progress: bool = False) -> list[str]:
        """Unique names from the model (see the class docstring for the fallbacks)."""
        if highlights is None:
            highlights = render_highlights(shape, labels, self.n_views, self.size)
        fallback = OfflineNamer().describe(shape, labels)
        prompt = part_prompt(highlights.n_views, category)
        names, offline = [], []
        for k in _bar(range(len(highlights.images)), progress, f"name ({self.client.model})"):
            name = ""
            if highlights.visible_px[k] > 0:
                name = parse_name(self.client.complete(prompt, [highlights.images[k]], self.max_tokens))
            if not name:
                name = fallback[k] if highlights.visible_px[k] > 0 or fallback[k] == _EMPTY_NAME else \
                    f"hidden {fallback[k]}"
                offline.append(k)
            names.append(name)
        self.named_offline = offline
        return dedupe_names(names)
