"""Table of teacher backends and a no-network check of which weights are on this machine.

``BACKENDS`` lists every backend once; :func:`load_teacher` imports the backend's module
lazily and calls its ``from_pretrained``; :func:`teacher_status` says, per backend,
whether its Python dependency is importable and whether its weights are found in the local
models directory (``$CROSSDISTILL_MODELS/<hub id>``) or the Hugging Face cache. It never
touches the network. Offline defaults (``teachers/offline.py``) are rows with
``hub_id=None``: they need no weights and are always available.

Example:
    >>> for row in teacher_status():                                  # doctest: +SKIP
    ...     print(row.name, row.kind, row.available, row.where or row.hint)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossdistill.errors import InputError
from crossdistill.teachers._hf import local_model_dir

__all__ = ["BackendInfo", "TeacherStatus", "BACKENDS", "backend", "load_teacher", "teacher_status", "find_weights"]

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class BackendInfo:
    """One teacher backend.

    Attributes:
        name: short name used on the command line ("dinov2", "sam", ...).
        kind: protocol it implements: "feature", "mask", "text", "instance", "semantic".
        hub_id: Hugging Face model id of the default weights, None for weight-free backends.
        target: "module:Class" implementing it (imported only when loaded).
        needs: what must be installed / present, in words.
        extra: pip extra that installs its Python dependencies ("" for none).
        description: one line for listings.
        trained: the user trains it (no download, but a checkpoint is needed).
    """

    name: str
    kind: str
    hub_id: str | None
    target: str
    needs: str
    extra: str
    description: str
    trained: bool = False

    def load_class(self) -> type:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


_T = "crossdistill.teachers."
BACKENDS: tuple[BackendInfo, ...] = (
    BackendInfo("dinov2", "feature", "facebook/dinov2-small", _T + "dinov2:Dinov2FeatureTeacher",
                "transformers + DINOv2 weights (~90 MB)", "teachers",
                "DINOv2 patch features, bilinear or joint-bilateral upsampling"),
    BackendInfo("sam", "mask", "facebook/sam-vit-base", _T + "sam:SamMaskTeacher",
                "transformers + SAM weights (~375 MB base, ~2.5 GB huge)", "teachers",
                "SAM automatic masks at three granularities"),
    BackendInfo("clipseg", "text", "CIDAS/clipseg-rd64-refined", _T + "clipseg:ClipSegTextTeacher",
                "transformers + CLIPSeg weights (~600 MB)", "teachers",
                "CLIPSeg text-prompted pixel masks"),
    BackendInfo("owlv2", "text", "google/owlv2-base-patch16-ensemble", _T + "owlv2:Owlv2TextTeacher",
                "transformers + OWLv2 weights (~620 MB)", "teachers",
                "OWLv2 text-prompted boxes"),
    BackendInfo("grounding_dino", "text", "IDEA-Research/grounding-dino-tiny",
                _T + "grounding_dino:GroundingDinoTextTeacher",
                "transformers + Grounding DINO weights (~690 MB)", "teachers",
                "Grounding DINO text-prompted boxes"),
    BackendInfo("mask2former", "instance", "facebook/mask2former-swin-tiny-coco-instance",
                _T + "mask2former:Mask2FormerInstanceTeacher",
                "transformers + Mask2Former weights (~190 MB)", "teachers",
                "Mask2Former instances, classes and pixel-decoder features"),
    BackendInfo("segformer", "semantic", "nvidia/segformer-b0-finetuned-cityscapes-1024-1024",
                _T + "segformer:SegformerSemanticTeacher", "transformers + SegFormer weights (~15 MB b0)", "teachers",
                "SegFormer driving-scene classes and decode-head features (LiDAR distillation)"),
    BackendInfo("offline_masks", "mask", None, _T + "offline_masks:RenderMaskTeacher",
                "nothing (render buffers only)", "",
                "offline default: masks at 3 granularities from depth, creases, colour and mesh pieces"),
    BackendInfo("offline_features", "feature", None, _T + "offline_features:RenderFeatureTeacher",
                "nothing (render buffers only)", "",
                "offline default: position, normal, colour and a positional code per pixel"),
    BackendInfo("offline_instances", "instance", None, _T + "offline_instances:RenderInstanceTeacher",
                "nothing (image only)", "",
                "offline default: foreground components as instances, image-only pixel features"),
    BackendInfo("box2d", "semantic", None, _T + "box2d:BoxSupervisedTeacher",
                "a checkpoint trained on images with 2D boxes (distill lidar)", "",
                "offline default: small 2D segmenter trained on 2D-box-labelled camera images", trained=True),
    BackendInfo("fewshot", "text", None, _T + "fewshot:FewShotTextTeacher",
                "a checkpoint trained on a few labelled shapes (distill partdistill --few-shot)", "",
                "offline default: small 2D U-Net trained on renders of a few labelled shapes", trained=True),
)


def backend(name: str) -> BackendInfo:
    """The row called ``name``; InputError listing the known names otherwise."""
    for b in BACKENDS:
        if b.name == name:
            return b
    raise InputError(f"unknown teacher {name!r}; known: {', '.join(b.name for b in BACKENDS)}")


def load_teacher(name: str, source: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """Build the teacher ``name`` from local weights (``source`` overrides the default hub id).

    Weight-free backends (``hub_id=None``) are constructed with ``**kwargs``; those trained
    by the user (the few-shot teacher) are read with ``cls.load(source, **kwargs)``.
    """
    info = backend(name)
    cls = info.load_class()
    if info.hub_id is None:
        if hasattr(cls, "load"):
            if source is None:
                raise InputError(f"teacher {name!r} needs a trained checkpoint: {info.needs}")
            return cls.load(source, **kwargs)
        return cls(**kwargs)
    return cls.from_pretrained(source or info.hub_id, **kwargs)



MASK_TEACHER_CHOICES = ("auto", "offline", "render", "geometric", "sam", "learned")


def load_mask_teacher(choice: str = "auto", weights: str | os.PathLike | None = None,
                      device: str = "cpu", sam_settings: Any = None) -> Any | None:
    """The flagship's 2D mask teacher: None for the offline render-based default, else SAM or a learned one.

    Args:
        choice: ``offline`` (the weight-free default: render cues and / or geometric parts, per
            shape); ``render`` / ``geometric``: one of those for every shape; ``sam`` (local
            weights required, InputError otherwise); ``auto``
            = SAM when ``weights`` is given or its weights are found locally, else offline;
            ``learned``: a :class:`~crossdistill.teachers.learned_masks.LearnedMaskTeacher`
            file trained on labelled shapes (``weights`` is that file).
        weights: a local SAM model folder (default: the registry's hub id, looked up locally),
            or the learned teacher's file.
        device: where the teacher runs.
        sam_settings: :class:`~crossdistill.teachers.sam.AutoMaskSettings` of SAM's generator
            (None: SAM's reference defaults).
    """
    if choice not in MASK_TEACHER_CHOICES:
        raise InputError(f"unknown mask teacher {choice!r}; choose from {', '.join(MASK_TEACHER_CHOICES)}")
    if choice == "offline":
        return None
    if choice in ("render", "geometric"):
        from crossdistill.teachers.geometric_parts import OfflineTeacher

        return OfflineTeacher(choice, choice, choice)
    if choice == "learned":
        if weights is None:
            raise InputError("the learned mask teacher needs its trained file (--mask-model FILE)")
        from crossdistill.teachers.learned_masks import LearnedMaskTeacher

        return LearnedMaskTeacher.load(weights, device=device)
    if choice == "auto" and weights is None and find_weights(backend("sam").hub_id) is None:
        return None
    return load_teacher("sam", weights, device=device, settings=sam_settings)

def _hf_cache_snapshot(hub_id: str) -> Path | None:
    """Snapshot directory of ``hub_id`` in the Hugging Face cache holding config + weights, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    cfg = try_to_load_from_cache(hub_id, "config.json")
    if not isinstance(cfg, str):
        return None
    snap = Path(cfg).parent
    return snap if any((snap / f).is_file() for f in _WEIGHT_FILES) else None


def find_weights(hub_id: str) -> Path | None:
    """Local directory or HF-cache snapshot with ``hub_id``'s config and weights, or None (no network)."""
    local = local_model_dir(hub_id)
    if (local / "config.json").is_file() and any((local / f).is_file() for f in _WEIGHT_FILES):
        return local
    return _hf_cache_snapshot(hub_id)


@dataclass(frozen=True)
class TeacherStatus:
    """One row of :func:`teacher_status`.

    Attributes:
        name, kind, hub_id, extra, description: from :class:`BackendInfo`.
        deps_ok: the backend's Python dependency imports.
        weights_found: weights found locally (always True for weight-free backends).
        where: directory the weights were found in ("" when not found / not needed).
        hint: what to do when not available.
    """

    name: str
    kind: str
    hub_id: str | None
    extra: str
    description: str
    deps_ok: bool
    weights_found: bool
    where: str
    hint: str

    @property
    def available(self) -> bool:
        return self.deps_ok and self.weights_found


def teacher_status() -> list[TeacherStatus]:
    """Availability of every backend, checked without network."""
    transformers_ok = importlib.util.find_spec("transformers") is not None
    rows = []
    for b in BACKENDS:
        deps_ok = transformers_ok if b.extra == "teachers" else True
        if b.hub_id is None:
            found, where, hint = True, "", (f"train: {b.needs}" if b.trained else "")
        else:
            path = find_weights(b.hub_id)
            found, where = path is not None, str(path or "")
            hint = "" if found else f"place '{b.hub_id}' in {local_model_dir(b.hub_id)} or the Hugging Face cache"
        if not deps_ok:
            hint = f"pip install 'crossdistill[{b.extra}]'" + (f"; {hint}" if hint else "")
        rows.append(TeacherStatus(b.name, b.kind, b.hub_id, b.extra, b.description, deps_ok, found, where, hint))
    return rows
