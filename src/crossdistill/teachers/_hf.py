"""Shared plumbing of the ``transformers`` teachers: weight lookup, loading, batching.

Where weights are looked for, in order:

1. an explicit local directory (``source`` is a path),
2. ``$CROSSDISTILL_MODELS/<hub id>`` (default ``~/.cache/crossdistill/models/<hub id>``),
   e.g. ``~/.cache/crossdistill/models/facebook/dinov2-small``,
3. the Hugging Face cache (``$HF_HUB_CACHE``), without network unless the caller passes
   ``allow_download=True`` *and* ``HF_HUB_OFFLINE`` is not set.

A miss raises :class:`WeightsNotFoundError` (an :class:`~crossdistill.errors.InputError`)
with one line naming the hub id and the directory to put the files in.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from crossdistill.errors import InputError, require

__all__ = [
    "WeightsNotFoundError",
    "models_dir",
    "local_model_dir",
    "downloads_allowed",
    "resolve_source",
    "load_pretrained",
    "HFTeacher",
]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class WeightsNotFoundError(InputError):
    """Model weights are not on this machine; the message says which and where to put them."""


def models_dir() -> Path:
    """``$CROSSDISTILL_MODELS`` or ``<$CROSSDISTILL_CACHE or ~/.cache/crossdistill>/models``."""
    env = os.environ.get("CROSSDISTILL_MODELS")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("CROSSDISTILL_CACHE") or "~/.cache/crossdistill").expanduser() / "models"


def local_model_dir(hub_id: str) -> Path:
    """Where a user may place the files of ``hub_id`` (a copy of the hub repository)."""
    return models_dir() / hub_id


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def downloads_allowed(allow_download: bool) -> bool:
    """True only when the caller allows downloads and ``HF_HUB_OFFLINE`` is not set."""
    return bool(allow_download) and not hf_offline()


def is_hub_id(source: str | os.PathLike) -> bool:
    s = str(source)
    return bool(_HUB_ID.match(s)) and not Path(s).expanduser().exists()


def resolve_source(source: str | os.PathLike) -> tuple[str, bool]:
    """(what to pass to ``from_pretrained``, whether it is a local directory).

    A hub id with a copy under :func:`local_model_dir` resolves to that directory.
    """
    s = str(source)
    if is_hub_id(s):
        local = local_model_dir(s)
        if (local / "config.json").is_file():
            return str(local), True
        return s, False
    return str(Path(s).expanduser()), True


def _hint(hub_id: str) -> str:
    from crossdistill.teachers.models import MODELS

    d = local_model_dir(hub_id)
    name = next((m.name for m in MODELS if m.hub_id == hub_id), hub_id)
    return (f"get it with `crossdistill models download {name}` (on a machine with network; it goes to {d}), "
            "or put its files there or in the Hugging Face cache")


def load_pretrained(loader: Any, source: str | os.PathLike, *, hub_id: str, what: str,
                    allow_download: bool = False, **kwargs: Any) -> Any:
    """``loader.from_pretrained(source)`` without network unless allowed; one-line error on a miss.

    Args:
        loader: a ``transformers`` class with ``from_pretrained`` (model or processor).
        source: hub id or local directory.
        hub_id: the hub id the files come from (named in the error message).
        what: human name, e.g. "DINOv2 model".
        allow_download: let ``transformers`` fetch missing files (ignored under HF_HUB_OFFLINE).
    """
    src, local = resolve_source(source)
    if local and not Path(src).is_dir():
        raise WeightsNotFoundError(f"{what} weights not found: no directory {src}; {_hint(hub_id)}")
    online = downloads_allowed(allow_download) and not local
    try:
        return loader.from_pretrained(src, local_files_only=not online, **kwargs)
    except (OSError, ValueError, KeyError) as exc:  # transformers reports misses as OSError
        if local:
            detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            where = f"{src} ({detail})"
        else:
            where = f"the Hugging Face cache ('{src}', {'download failed' if online else 'downloads off'})"
        raise WeightsNotFoundError(f"{what} weights not found in {where}; {_hint(hub_id)}") from None


def batches(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def config_hash(model: Any) -> str:
    cfg = getattr(model, "config", None)
    text = cfg.to_json_string(use_diff=False) if hasattr(cfg, "to_json_string") else repr(cfg)
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def weights_fingerprint(model: Any) -> str:
    """Short hash of every parameter's name, shape, sum and first values.

    Part of ``teacher_id``, so a fine-tuned model that kept its base model's name does not
    read the base model's cached outputs. One pass over the weights (~0.1 s per 100M).
    """
    import torch

    h = hashlib.blake2b(digest_size=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().flatten()
            h.update(f"{name}{tuple(p.shape)}".encode())
            h.update(np.float64(flat.sum(dtype=torch.float64).item()).tobytes())
            h.update(flat[:4].double().cpu().numpy().tobytes())
    return h.hexdigest()


class HFTeacher:
    """Base of the ``transformers`` teachers: holds the model, processor, device and dtype.

    Subclasses set ``backend``, ``default_model_id``, ``model_class`` and
    ``processor_class`` (names in the ``transformers`` namespace) and implement their
    teacher method. The model is moved to ``device`` and put in eval mode.

    Args:
        model: a ``transformers`` model instance.
        processor: its processor / image processor, or ``None`` for a default built from
            the model config (see each backend).
        device: torch device string, "cpu" by default ("cuda" when wanted).
        dtype: weights dtype (e.g. ``torch.float16`` on GPU) or ``None`` to keep the model's.
        batch_size: views (or view x prompt pairs) per forward pass.
        name: model name used in ``teacher_id``; default the model's ``name_or_path`` or
            ``custom-<config hash>`` for a model built in code. ``teacher_id`` also carries
            a fingerprint of the weights (:attr:`model_tag` = ``name@fingerprint``).
    """

    backend: ClassVar[str] = ""
    default_model_id: ClassVar[str] = ""
    model_class: ClassVar[str] = ""
    processor_class: ClassVar[str] = ""
    is_offline_default: bool = False

    def __init__(self, model: Any, processor: Any = None, *, device: str = "cpu", dtype: Any = None,
                 batch_size: int = 4, name: str | None = None) -> None:
        torch = require("torch", "core", f"the {self.backend} teacher")
        self.device = torch.device(device)
        self.dtype = dtype
        model = model.to(self.device) if dtype is None else model.to(self.device, dtype=dtype)
        self.model = model.eval()
        self.processor = processor
        self.batch_size = int(batch_size)
        self.name = name or getattr(model, "name_or_path", "") or f"custom-{config_hash(model)}"
        self.model_tag = f"{self.name}@{weights_fingerprint(self.model)}"

    @classmethod
    def from_model(cls, model: Any, processor: Any = None, **kwargs: Any):
        """Wrap a ready-made model (e.g. a tiny random one in tests)."""
        return cls(model, processor, **kwargs)

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike | None = None, *, allow_download: bool = False,
                        **kwargs: Any):
        """Load model + processor from a local directory or the Hugging Face cache.

        Args:
            source: hub id or local directory; default :attr:`default_model_id`.
            allow_download: fetch from the hub when missing (never under HF_HUB_OFFLINE).
            **kwargs: the backend's constructor settings (device, thresholds, ...).

        Raises:
            WeightsNotFoundError: the weights are not on this machine (one-line message).
        """
        source = str(source or cls.default_model_id)
        hub_id = source if is_hub_id(source) else cls.default_model_id
        src, local = resolve_source(source)
        if local and not Path(src).is_dir():  # fail before the slow transformers import
            raise WeightsNotFoundError(f"{cls.backend} model weights not found: no directory {src}; {_hint(hub_id)}")
        transformers = require("transformers", "teachers", f"the {cls.backend} teacher")
        common = dict(hub_id=hub_id, allow_download=allow_download)
        model = load_pretrained(getattr(transformers, cls.model_class), source,
                                what=f"{cls.backend} model", **common)
        processor = None
        if cls.processor_class:
            processor = load_pretrained(getattr(transformers, cls.processor_class), source,
                                        what=f"{cls.backend} processor", **common)
        kwargs.setdefault("name", source if is_hub_id(source) else Path(source).name)
        return cls(model, processor, **kwargs)

    # ------------------------------------------------------------------ helpers
    @property
    def image_processor(self) -> Any:
        return getattr(self.processor, "image_processor", self.processor)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", None)

    def _model_dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def _images(self, rgb: np.ndarray) -> list[np.ndarray]:
        """(B, H, W, 3) uint8 -> list of contiguous HWC uint8 arrays for a processor."""
        return [np.ascontiguousarray(im) for im in rgb]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.teacher_id!r}, device={str(self.device)!r})"

    @property
    def teacher_id(self) -> str:  # pragma: no cover - every backend overrides
        return f"{self.backend}:{self.model_tag}"
