"""CPU cost of every real teacher backend, through the teacher interface, plus the disk cache.

Writes docs/results/teachers.md and docs/results/teachers.json (raw numbers).

Views: one PartNet-Mobility object (``Bucket/100431`` of ../shared/data/partnet_mobility_dev),
loaded, normalised into the unit box and rendered with ``orbit_rig`` (one ring at 20 deg
elevation, ``--views`` views of ``--size`` px). No weights are downloaded: every model is
built in code with random weights, in two sizes:

* **tiny**: the seeded tiny configs of :mod:`crossdistill.teachers.testing` (the ones the
  tests use). Timed on all views after a 1-view warm-up, median of ``--repeats`` calls.
  Measures the teacher's own pre/post-processing more than the network.
* **full**: the published architecture of each backend's default checkpoint (see
  ``FULL_CONFIGS`` in the report), random weights. One call on 1-2 views, no warm-up,
  stopped after ``--budget`` seconds (reported as not finished, with the image-encoder
  time when that part completed).

For both, the call goes once more through ``cached(teacher, TeacherCache(tmpdir))``: the
first call computes and writes the npz entry, the second reads it (the model is checked not
to run again). Every run uses ``torch.set_num_threads(1)``.

    python bench/teachers.py                          # full run (~4-5 min on 2 busy cores)
    python bench/teachers.py --only sam --no-full     # quick look at one backend
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from teachers_report import notes, write_report  # noqa: E402  (the report half of this bench)

OBJECT = "Bucket/100431"
DATA = REPO / ".." / "shared" / "data" / "partnet_mobility_dev"


# --------------------------------------------------------------------------- helpers


class BenchTimeout(BaseException):
    """Raised by SIGALRM when a measurement exceeds its budget (BaseException: never swallowed)."""


class _Alarm:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self):
        def _raise(signum, frame):
            raise BenchTimeout()

        self._old = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)
        return False


class ModuleTimer:
    """Wall time spent inside one submodule (the image encoder) and its input shape."""

    def __init__(self, module) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.images = 0
        self.input_shape: tuple[int, ...] | None = None
        self._t0: float | None = None
        self._handles = [module.register_forward_pre_hook(self._pre, with_kwargs=True),
                         module.register_forward_hook(self._post)]

    def _pre(self, module, args, kwargs):
        x = kwargs.get("pixel_values", args[0] if args else None)
        if x is not None and hasattr(x, "shape"):
            self.input_shape = tuple(int(s) for s in x.shape)
            self.images += int(x.shape[0]) if x.ndim == 4 else 1
        self._t0 = time.perf_counter()

    def _post(self, module, args, output):
        if self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self.calls += 1
            self._t0 = None

    def reset(self) -> None:
        self.seconds, self.calls, self.images, self._t0 = 0.0, 0, 0, None

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _timed_cache_class():
    from crossdistill.teachers import TeacherCache

    class TimedCache(TeacherCache):
        """TeacherCache that adds up the seconds spent writing and reading entries."""

        def __init__(self, root) -> None:
            super().__init__(root)
            self.save_s = 0.0
            self.load_s = 0.0

        def save(self, teacher_id, key, arrays):
            t = time.perf_counter()
            try:
                return super().save(teacher_id, key, arrays)
            finally:
                self.save_s += time.perf_counter() - t

        def load(self, teacher_id, key):
            t = time.perf_counter()
            try:
                return super().load(teacher_id, key)
            finally:
                self.load_s += time.perf_counter() - t

    return TimedCache


def _machine() -> dict:
    import torch
    import transformers

    from crossdistill.engine.machine import cpu_model

    model = cpu_model()
    return {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu_model": model,
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "torch_threads": torch.get_num_threads()}


def _subset(views, idx):
    from crossdistill.types import Views

    idx = list(idx)
    return Views(views.cameras.subset(idx), views.face_id[idx], views.depth[idx], views.normal[idx],
                 views.rgb[idx], views.is_point_cloud)


def _n_params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.npz"))


# --------------------------------------------------------------------------- backends


@dataclass
class Backend:
    """How to build, wrap, call and summarise one backend.

    ``run`` returns (result to summarise, extra timings); ``run_cached`` is the teacher
    method the cache wraps (for DINOv2 only ``features``: upsampling to pixels is lazy and
    runs on every read).
    """

    name: str
    model_key: str  # backends sharing a model (dinov2 bilinear / jbu) share the key
    make_teacher: Callable[[Any, bool, dict], Any]  # (model, full, tokenizers) -> teacher
    run: Callable[[Any, Any], tuple[Any, dict]]
    run_cached: Callable[[Any, Any], Any]
    encoder: Callable[[Any], Any]  # model -> submodule timed as "image encoder"
    summary: Callable[[Any], str]
    full_views: int


def _dinov2_run(teacher, views):
    t = time.perf_counter()
    fm = teacher.features(views)
    t_feat = time.perf_counter() - t
    t = time.perf_counter()
    for v in range(len(views)):
        fm.pixel_features(v)
    t_px = time.perf_counter() - t
    return fm, {"features_s": t_feat, "to_pixels_s": t_px}


def _dinov2_teacher(up: str):
    def make(model, full, toks):
        from crossdistill.teachers import Dinov2FeatureTeacher

        return Dinov2FeatureTeacher.from_model(model, upsample=up, image_size=448 if full else 224)

    return make


def _sam_teacher(grid: int):
    def make(model, full, toks):
        from crossdistill.teachers import SamMaskTeacher

        # random weights predict random IoUs: keep every mask so NMS sees all candidates
        return SamMaskTeacher.from_model(model, points_per_side=grid, pred_iou_thresh=-1.0, stability_score_thresh=-1.0)

    return make


def _clipseg_teacher(model, full, toks):
    from crossdistill.teachers import ClipSegTextTeacher

    proc = None
    if full:  # CIDAS/clipseg-rd64-refined's processor feeds 352 px (the config says 224)
        from transformers import ViTImageProcessorPil

        proc = ViTImageProcessorPil(size={"height": 352, "width": 352}, image_mean=[0.485, 0.456, 0.406],
                                    image_std=[0.229, 0.224, 0.225])
    return ClipSegTextTeacher.from_model(model, proc, tokenizer=toks["clip"])


def _owlv2_teacher(model, full, toks):
    from crossdistill.teachers import Owlv2TextTeacher

    return Owlv2TextTeacher.from_model(model, tokenizer=toks["clip"], score_threshold=0.0)


def _gdino_teacher(model, full, toks):
    from crossdistill.teachers import GroundingDinoTextTeacher

    return GroundingDinoTextTeacher.from_model(model, tokenizer=toks["bert"], box_threshold=0.0)


def _m2f_teacher(model, full, toks):
    from crossdistill.teachers import Mask2FormerInstanceTeacher

    return Mask2FormerInstanceTeacher.from_model(model, score_threshold=0.0)


def _parts():
    from crossdistill.teachers.testing import PART_NAMES

    return PART_NAMES


def _plain(method: str, text: bool = False):
    def run(teacher, views):
        fn = getattr(teacher, method)
        return (fn(views, _parts()) if text else fn(views)), {}

    return run


def _plain_cached(method: str, text: bool = False):
    def run(teacher, views):
        fn = getattr(teacher, method)
        return fn(views, _parts()) if text else fn(views)

    return run


def _sum_dinov2(fm) -> str:
    return f"features {tuple(fm.features.shape)} {fm.features.dtype}, upsampler {fm.upsampler.name}"


def _sum_masks(sets) -> str:
    return "masks/view " + ", ".join(str(len(s)) for s in sets)


def _sum_preds(preds) -> str:
    if preds and preds[0].masks is not None:
        return "mask px/view " + ", ".join(str(int(p.masks.sum())) for p in preds)
    return "boxes/view " + ", ".join(str(len(p)) for p in preds)


def _sum_inst(sets) -> str:
    return ("instances/view " + ", ".join(str(len(s)) for s in sets)
            + f"; features {tuple(sets[0].features.shape)}")


BACKENDS = (
    Backend("dinov2 (bilinear)", "dinov2", _dinov2_teacher("bilinear"), _dinov2_run,
            _plain_cached("features"), lambda m: m, _sum_dinov2, 2),
    Backend("dinov2 (jbu)", "dinov2", _dinov2_teacher("jbu"), _dinov2_run,
            _plain_cached("features"), lambda m: m, _sum_dinov2, 2),
    Backend("mask2former", "mask2former", _m2f_teacher, _plain("instances"), _plain_cached("instances"),
            lambda m: m.model.pixel_level_module.encoder, _sum_inst, 2),
    Backend("grounding_dino", "grounding_dino", _gdino_teacher, _plain("predict", True),
            _plain_cached("predict", True), lambda m: m.model.backbone, _sum_preds, 1),
    Backend("clipseg", "clipseg", _clipseg_teacher, _plain("predict", True), _plain_cached("predict", True),
            lambda m: m.clip.vision_model, _sum_preds, 1),
    Backend("sam", "sam", _sam_teacher(8), _plain("masks"), _plain_cached("masks"),
            lambda m: m.vision_encoder, _sum_masks, 1),
    Backend("sam (32x32 grid)", "sam", _sam_teacher(32), _plain("masks"), _plain_cached("masks"),
            lambda m: m.vision_encoder, _sum_masks, 1),
    Backend("owlv2", "owlv2", _owlv2_teacher, _plain("predict", True), _plain_cached("predict", True),
            lambda m: m.owlv2.vision_model, _sum_preds, 1),
)

#: What the full-size models are: the published architecture of each backend's default hub id.
FULL_CONFIGS = {
    "dinov2": "facebook/dinov2-small: `Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, "
              "mlp_ratio=4, patch_size=14, image_size=518)` (ViT-S/14); teacher input 448 px (32x32 patches)",
    "sam": "facebook/sam-vit-base: `SamConfig()` defaults (ViT-B/16 image encoder, 1024 px input, 256-d prompt "
           "encoder and mask decoder); automatic masks on a reduced **8x8** point grid (row `sam`) and on SAM's "
           "default 32x32 grid (row `sam (32x32 grid)`), prompts only on object pixels, 64 prompts per decoder "
           "call",
    "clipseg": "CIDAS/clipseg-rd64-refined: `CLIPSegConfig(vision_config=dict(patch_size=16), "
               "use_complex_transposed_convolution=True)` (ViT-B/16 image tower, 12-layer 512-d CLIP text tower, "
               "reduce_dim 64, extract layers 3/6/9), 352 px input as the published processor",
    "owlv2": "google/owlv2-base-patch16-ensemble: `Owlv2Config(vision_config=dict(image_size=960, patch_size=16))` "
             "(ViT-B/16 at 960 px = 3600 patches, 12-layer 512-d text tower)",
    "grounding_dino": "IDEA-Research/grounding-dino-tiny: `GroundingDinoConfig()` defaults (Swin-T backbone, "
                      "BERT-base text encoder, d_model 256, 6+6 layers, 900 queries, 4 feature levels); default "
                      "image processor (shortest edge 800)",
    "mask2former": "facebook/mask2former-swin-tiny-coco-instance: `Mask2FormerConfig(backbone_config=SwinConfig("
                   "embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7), num_labels=80)` "
                   "(Swin-T; the bare default is Swin-S depths), 100 queries, 10 decoder layers; default processor "
                   "(shortest edge 384)",
}


def build_full(key: str, toks: dict):
    import transformers as tf

    from crossdistill.teachers.testing import text_token_ids

    if key == "dinov2":
        return tf.Dinov2Model(tf.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                              mlp_ratio=4, patch_size=14, image_size=518))
    if key == "sam":
        return tf.SamModel(tf.SamConfig())
    if key == "clipseg":  # the tiny tokenizer's bos/eos/pad ids, so text pooling finds the eos token
        return tf.CLIPSegForImageSegmentation(tf.CLIPSegConfig(
            text_config=text_token_ids(toks["clip"]), vision_config=dict(patch_size=16),
            use_complex_transposed_convolution=True))
    if key == "owlv2":
        return tf.Owlv2ForObjectDetection(tf.Owlv2Config(
            text_config=text_token_ids(toks["clip"]), vision_config=dict(image_size=960, patch_size=16)))
    if key == "grounding_dino":
        return tf.GroundingDinoForObjectDetection(tf.GroundingDinoConfig())
    if key == "mask2former":
        swin = tf.SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                             out_features=["stage1", "stage2", "stage3", "stage4"])
        return tf.Mask2FormerForUniversalSegmentation(tf.Mask2FormerConfig(backbone_config=swin, num_labels=80))
    raise KeyError(key)


def build_tiny(key: str, toks: dict):
    from crossdistill.teachers import testing

    if key in ("clipseg", "owlv2"):
        return getattr(testing, f"tiny_{key}")(toks["clip"])
    return getattr(testing, f"tiny_{key}")()


# --------------------------------------------------------------------------- measurement


def measure(b: Backend, model, views, *, full: bool, toks: dict, repeats: int, budget: float,
            tmp_root: Path) -> dict:
    """Time one backend on ``views``; full-size: one cached call under ``budget`` seconds."""
    import torch

    from crossdistill.teachers import cached
    from crossdistill.teachers.testing import CallCounter

    t = time.perf_counter()
    teacher = b.make_teacher(model, full, toks)
    out: dict[str, Any] = {"backend": b.name, "size": "full" if full else "tiny", "views": len(views),
                           "teacher_init_s": time.perf_counter() - t, "teacher_id": teacher.teacher_id,
                           "params_M": _n_params(model) / 1e6, "load_avg_start": os.getloadavg()[0]}
    enc = ModuleTimer(b.encoder(model))
    counter = CallCounter(model)
    TimedCache = _timed_cache_class()
    cache = TimedCache(tmp_root / f"{b.name}-{out['size']}".replace(" ", "_").replace("(", "").replace(")", ""))
    ct = cached(teacher, cache)
    try:
        with torch.no_grad():
            if not full:
                b.run(teacher, _subset(views, [0]))  # warm-up
                times, extras = [], []
                for _ in range(repeats):
                    enc.reset()
                    t = time.perf_counter()
                    result, extra = b.run(teacher, views)
                    times.append(time.perf_counter() - t)
                    extras.append(dict(extra, encoder_s=enc.seconds))
                k = int(np.argsort(times)[len(times) // 2])
                out.update(call_s=statistics.median(times), all_call_s=times, **extras[k])
            enc.reset()
            # first call through the cache: compute + write (full size: this is the measurement)
            n0 = counter.n
            try:
                with _Alarm(budget):
                    t = time.perf_counter()
                    first = b.run_cached(ct, views)
                    out["cache_first_s"] = time.perf_counter() - t
            except BenchTimeout:
                out.update(finished=False, stopped_after_s=time.perf_counter() - t, encoder_s=enc.seconds,
                           encoder_calls=enc.calls, encoder_images=enc.images, encoder_input=enc.input_shape)
                return out
            out["finished"] = True
            out["cache_write_s"] = cache.save_s
            if full:
                out["call_s"] = out["cache_first_s"] - cache.save_s
                out["encoder_s"] = enc.seconds
                if b.model_key == "dinov2":  # the upsampling is not cached: time it on the result
                    t = time.perf_counter()
                    for v in range(len(views)):
                        first.pixel_features(v)
                    out["to_pixels_s"] = time.perf_counter() - t
                    out["features_s"] = out["call_s"]
                    out["call_s"] += out["to_pixels_s"]
                result = first
            out["encoder_calls"] = enc.calls
            out["encoder_images"] = enc.images
            out["encoder_input"] = enc.input_shape
            n1 = counter.n
            t = time.perf_counter()
            b.run_cached(ct, views)
            out["cache_second_s"] = time.perf_counter() - t
            out["cache_read_s"] = cache.load_s
            out["cache_model_calls"] = [n1 - n0, counter.n - n1]
            out["cache_bytes"] = _dir_bytes(cache.root)
            out["summary"] = b.summary(result)
    finally:
        enc.remove()
        counter.remove()
        out["load_avg_end"] = os.getloadavg()[0]
    out["per_view_s"] = out["call_s"] / len(views)
    return out


def render_views(path: Path, n_views: int, size: int):
    from crossdistill.geometry.io import load_shape
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.render import orbit_rig, render_shape

    shape, _ = normalize_shape(load_shape(path))
    cams = orbit_rig((20.0,), n_views, size)
    views = render_shape(shape, cams, progress=False, n_samples=2000, threads=1).views
    return shape, views


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=4, help="views rendered (tiny runs use all)")
    ap.add_argument("--size", type=int, default=256, help="view size in pixels")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per tiny backend (median)")
    ap.add_argument("--budget", type=float, default=75.0, help="seconds allowed per full-size call")
    ap.add_argument("--only", nargs="*", default=None, help="backend names (e.g. sam clipseg 'dinov2 (jbu)')")
    ap.add_argument("--no-full", action="store_true", help="skip the full-size models")
    ap.add_argument("--no-tiny", action="store_true", help="skip the tiny models")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "teachers"))
    ap.add_argument("--from-json", default=None, help="re-write the Markdown from a saved JSON (no timing)")
    args = ap.parse_args()
    if args.from_json:
        payload = json.loads(Path(args.from_json).read_text())
        payload["notes"] = notes(payload["results"], payload["args"]["size"])
        out_base = Path(args.out)
        out_base.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
        write_report(payload, out_base, FULL_CONFIGS)
        return 0

    path = DATA / f"{OBJECT}.glb"
    if not path.is_file():
        print(f"error: shared data not found: {path.resolve()} (../shared/data beside the repo)", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    payload: dict[str, Any] = {
        "command": ("python bench/teachers.py " + " ".join(sys.argv[1:])).strip(),
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_avg_start": os.getloadavg(),
        "machine": _machine(), "object": OBJECT, "args": vars(args), "part_names": list(_parts()),
    }
    t = time.perf_counter()
    _, views = render_views(path, args.views, args.size)
    payload["render_s"] = time.perf_counter() - t
    payload["foreground_fraction"] = float(views.foreground.mean())
    if not views.foreground.any(axis=(1, 2)).all():
        print("error: a rendered view shows nothing", file=sys.stderr)
        return 1

    from crossdistill.teachers import testing

    toks = {"clip": testing.clip_tokenizer(), "bert": testing.bert_tokenizer()}
    chosen = [b for b in BACKENDS if args.only is None or b.name in args.only or b.model_key in args.only]
    results: list[dict] = []
    build_full_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cd-teacher-bench-") as tmp:
        tmp_root = Path(tmp)
        if not args.no_tiny:
            models: dict[str, Any] = {}
            for b in chosen:
                print(f"[teachers bench] tiny {b.name} ...", file=sys.stderr, flush=True)
                if b.model_key not in models:
                    models[b.model_key] = build_tiny(b.model_key, toks)
                results.append(measure(b, models[b.model_key], views, full=False, toks=toks,
                                       repeats=args.repeats, budget=args.budget, tmp_root=tmp_root))
            del models
        if not args.no_full:
            model, key = None, None
            for b in chosen:
                if b.model_key != key:
                    model = None  # free the previous model first
                    print(f"[teachers bench] full {b.model_key}: building ...", file=sys.stderr, flush=True)
                    torch.manual_seed(0)
                    t = time.perf_counter()
                    model = build_full(b.model_key, toks).eval()
                    build_full_s[b.model_key] = time.perf_counter() - t
                    key = b.model_key
                print(f"[teachers bench] full {b.name} on {b.full_views} view(s) ...", file=sys.stderr, flush=True)
                r = measure(b, model, _subset(views, range(b.full_views)), full=True, toks=toks, repeats=1,
                            budget=args.budget, tmp_root=tmp_root)
                build_full_s[b.model_key] += r["teacher_init_s"] if b.name != "dinov2 (jbu)" else 0.0
                results.append(r)
                print(f"    {r.get('per_view_s', float('nan')):.2f} s/view, finished={r['finished']}",
                      file=sys.stderr, flush=True)
            model = None
    payload.update(results=results, build_full_s=build_full_s, load_avg_end=os.getloadavg(),
                   total_s=time.perf_counter() - t_start)
    payload["notes"] = notes(results, args.size)
    out_base = Path(args.out)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    out_base.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
    write_report(payload, out_base, FULL_CONFIGS)
    print(f"wrote {out_base.with_suffix('.md')} and {out_base.with_suffix('.json')} "
          f"({payload['total_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
