"""`crossdistill name`: name the parts of a segmented object (SAMPart3D's semantic labelling).

Reads one object folder written by `crossdistill segment`, renders every part of one
scale highlighted from a few views, and names it with a multimodal LLM behind an
OpenAI-compatible endpoint, or, with no endpoint configured, with the offline geometric
namer (:mod:`crossdistill.methods.sampart3d.naming`). Writes into the scale folder::

    scale_<s>/names.json            {"namer", "offline", "model", "endpoint", "names": {label: name}, ...}
    scale_<s>/parts_named.glb       parts.glb with the names in the node names (crate.part_003.lid)
    scale_<s>/labels.json           rewritten with "part_names"
    scale_<s>/highlights/part_<k>.png   what the namer was shown for part k (k zero-padded to 3 digits)

``names.json`` is written last (it marks a finished naming).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from crossdistill.cli.batch_options import add_batch_arguments
from crossdistill.errors import InputError

NAMES_FILE = "names.json"
HIGHLIGHTS_DIR = "highlights"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("name", help="name the segmented parts with a multimodal LLM (or offline, from geometry)",
                       description="Name every part of one scale of a `crossdistill segment` object folder "
                                   "(SAMPart3D): each part is rendered highlighted from a few views and a "
                                   "multimodal LLM behind an OpenAI-compatible endpoint names it. Without an "
                                   "API key and an endpoint (or with --offline) parts get descriptive names from "
                                   "geometry only (\"body\", \"top part\", ...).")
    p.add_argument("object_dir", help="one object's folder written by `crossdistill segment`, or an output folder "
                                      "of it (every object under it is named; finished ones are skipped)")
    p.add_argument("--scale", type=float, default=None,
                   help="which scale's parts to name (default: the middle segment scale, 1.0 with the default "
                        "scales 0 0.5 1 1.5 2)")
    p.add_argument("--endpoint", default=None,
                   help="OpenAI-compatible API root, e.g. http://localhost:8000/v1 "
                        "(default: $OPENAI_BASE_URL, else https://api.openai.com/v1)")
    p.add_argument("--model", default="gpt-4o", help="multimodal chat model (default gpt-4o)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (default OPENAI_API_KEY; the key is "
                        "never taken from the command line)")
    p.add_argument("--category", default=None, help="what the object is (e.g. 'chair'), given to the model")
    p.add_argument("--views", type=int, default=4, help="highlighted views per part (default 4)")
    p.add_argument("--size", type=int, default=256, help="render size of each view in pixels (default 256)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    p.add_argument("--offline", action="store_true", help="geometric names only; no request is sent")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")
    add_batch_arguments(p)
    p.set_defaults(func=run_name)


def choose_scale(obj: Path, scales: list[float], requested: float | None) -> float:
    """The scale to name: ``requested`` if it was segmented, else the middle one of those on disk.

    The middle scale (upper middle for an even count) gives parts of a size worth naming:
    1.0 with the paper's 0 0.5 1 1.5 2, where 0 over-splits and 2 keeps a few large pieces.
    """
    from crossdistill.export.parts import scale_dirname

    present = sorted(float(s) for s in scales if (obj / scale_dirname(float(s)) / "labels.npy").is_file())
    if not present:
        raise InputError(f"{obj} holds no scale_<s>/labels.npy")
    if requested is None:
        return present[len(present) // 2]
    for s in present:
        if abs(s - requested) < 1e-9:
            return s
    raise InputError(f"scale {requested:g} was not segmented in {obj} (has: {' '.join(f'{s:g}' for s in present)})")


def _load_labels(folder: Path, n_elements: int) -> np.ndarray:
    try:
        labels = np.load(folder / "labels.npy", allow_pickle=False)
    except (OSError, ValueError):
        raise InputError(f"cannot read {folder / 'labels.npy'}") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{folder / 'labels.npy'} is not a 1-D integer array")
    if len(labels) != n_elements:
        raise InputError(f"{folder / 'labels.npy'} has {len(labels)} labels but the input has {n_elements} "
                         "faces/points (was the input changed after `segment`?)")
    if labels.size and labels.min() < 0:
        raise InputError(f"{folder / 'labels.npy'} has negative labels; every element needs a part")
    return labels.astype(np.int32)


def make_namer(args: argparse.Namespace):
    """(namer, endpoint or None): the LLM namer when a key or an endpoint is configured, else offline."""
    from crossdistill.methods.sampart3d.naming import MLLMNamer, OfflineNamer
    from crossdistill.teachers.mllm import BASE_URL_ENV, ChatClient

    if args.offline:
        return OfflineNamer(), None
    key = os.environ.get(args.api_key_env) or None
    endpoint = args.endpoint or os.environ.get(BASE_URL_ENV) or None
    if key is None and endpoint is None:
        if not args.quiet:
            print(f"naming: offline geometric names (no ${args.api_key_env} and no --endpoint / ${BASE_URL_ENV}; "
                  "no model was asked)", file=sys.stderr)
        return OfflineNamer(), None
    if args.timeout <= 0:
        raise InputError("--timeout must be positive")
    client = ChatClient.from_env(args.model, endpoint, args.api_key_env, timeout_s=args.timeout)
    if not args.quiet:
        print(f"naming: {args.model} at {client.base_url}", file=sys.stderr)
    return MLLMNamer(client, n_views=args.views, size=args.size), client.base_url


def run_name(args: argparse.Namespace) -> int:
    from crossdistill.engine.batch import run_batch, settings_hash
    from crossdistill.methods.sampart3d.outputs import MARKER

    if not 1 <= args.views <= 12:
        raise InputError(f"--views must be between 1 and 12 (got {args.views})")
    if args.size < 32:
        raise InputError(f"--size must be at least 32 (got {args.size})")
    category = (args.category or "").strip() or None
    root = Path(args.object_dir)
    namer, endpoint = make_namer(args)
    digest = settings_hash({"namer": namer.namer_id, "category": category, "views": args.views, "size": args.size,
                            "scale": args.scale})

    def job(obj: Path, _item_dir: Path) -> None:
        name_object(obj, args, namer, endpoint, category, digest)

    if (root / MARKER).is_file() or not root.is_dir():  # one object: its errors are the command's (exit 2)
        job(root, root)
        return 0
    objects = sorted(p.parent for p in root.rglob(MARKER))
    if not objects:
        raise InputError(f"no `crossdistill segment` object folders (with {MARKER}) under {root}")
    items = [(str(o.relative_to(root)), o) for o in objects]
    report = run_batch(items, root, _names_marker(args.scale), digest, job, progress=not args.quiet, desc="name",
                       shard=args.shard)
    print(report.summary("name", root), file=sys.stderr)
    return 1 if report.failed else 0


def _names_marker(requested: float | None):
    """Item folder -> its ``names.json`` at the scale naming would use (a missing path when undecidable)."""
    from crossdistill.export.parts import scale_dirname
    from crossdistill.methods.sampart3d.outputs import read_segment_meta

    def marker(obj: Path) -> Path:
        try:
            scales = read_segment_meta(obj).get("scales") or []
            return obj / scale_dirname(choose_scale(obj, list(scales), requested)) / NAMES_FILE
        except (InputError, ValueError, TypeError):
            return obj / NAMES_FILE  # never written there: the object is (re)done and reports its error
    return marker


def name_object(obj: Path, args: argparse.Namespace, namer, endpoint: str | None, category: str | None,
                digest: str) -> None:
    """Name the parts of one segmented object; ``names.json`` (with ``digest``) is written last."""
    from crossdistill.export.parts import scale_dirname, write_labels, write_part_nodes
    from crossdistill.io_utils import save_image, write_json
    from crossdistill.viz.highlight import render_highlights
    from crossdistill.methods.sampart3d.outputs import read_segment_object

    meta, shape = read_segment_object(obj, "naming")
    scale = choose_scale(obj, list(meta.get("scales") or []), args.scale)
    folder = obj / scale_dirname(scale)
    labels = _load_labels(folder, shape.n_faces if shape.is_mesh else shape.n_vertices)
    progress = not args.quiet

    highlights = render_highlights(shape, labels, args.views, args.size)
    for k, image in enumerate(highlights.images):  # first: what the model sees, kept even if it fails
        save_image(folder / HIGHLIGHTS_DIR / f"part_{k:03d}.png", image)
    names = namer.name_parts(shape, labels, category=category, highlights=highlights, progress=progress)
    present = np.unique(labels)
    if shape.is_mesh:
        write_part_nodes(folder / "parts_named.glb", shape, labels, names, scale)
    write_labels(folder, labels, "face" if shape.is_mesh else "point", names)
    write_json(folder / NAMES_FILE, {
        "settings_hash": digest,
        "namer": namer.namer_id,
        "offline": bool(namer.offline),
        "model": getattr(namer, "model", None),
        "endpoint": endpoint,
        "category": category,
        "scale": scale,
        "views": args.views,
        "size": args.size,
        "input": meta.get("input"),
        "names": {str(int(k)): names[int(k)] for k in present},
        "named_offline": [int(k) for k in getattr(namer, "named_offline", [])],
    })
    for k in present:
        print(f"{obj}\t{int(k)}\t{names[int(k)]}" if obj != Path(args.object_dir) else f"{int(k)}\t{names[int(k)]}")
    if progress:
        print(f"{folder}: {len(present)} parts named ({namer.namer_id}) -> {folder / NAMES_FILE}", file=sys.stderr)
