"""The foundation models the commands can use: what each is, who uses it, and getting its weights.

:data:`MODELS` lists every downloadable model once (hub id, approximate size, licence from its
model card, the commands that use it). :func:`model_rows` says which are on this machine
(``$CROSSDISTILL_MODELS/<hub id>`` or the Hugging Face cache, no network). :func:`download`
fetches one through ``huggingface_hub`` into ``$CROSSDISTILL_MODELS/<hub id>`` (where every
command finds it) or a folder of the user's, honouring ``HF_ENDPOINT`` (a mirror or a local hub)
and ``HF_HUB_OFFLINE`` (no download at all). Only the files ``transformers`` needs are fetched:
configs, tokenizer / processor files and one copy of the weights (safetensors when the repository
has them). The download lands in a hidden ``.<name>.partial`` folder beside the destination
(resumed by a re-run) and is moved into place only when complete.

Example:
    >>> [m.name for m in MODELS][:2]
    ['sam', 'sam-huge']
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from crossdistill.errors import InputError, require
from crossdistill.teachers._hf import hf_offline, local_model_dir

__all__ = ["ModelInfo", "ModelRow", "MODELS", "model", "model_rows", "download", "hub_endpoint", "refuse_offline"]


@dataclass(frozen=True)
class ModelInfo:
    """One downloadable model.

    Attributes:
        name: short name for ``crossdistill models download NAME``.
        hub_id: Hugging Face repository id.
        size: approximate download size, in words ("375 MB").
        licence: the licence its model card states.
        used_by: the commands (and flags) that use it.
        backend: the teacher backend that loads it (:data:`crossdistill.teachers.registry.BACKENDS`).
    """

    name: str
    hub_id: str
    size: str
    licence: str
    used_by: str
    backend: str


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("sam", "facebook/sam-vit-base", "375 MB", "Apache-2.0",
              "segment, eval --method segment (--mask-teacher sam, or auto when present)", "sam"),
    ModelInfo("sam-huge", "facebook/sam-vit-huge", "2.6 GB", "Apache-2.0",
              "segment, eval --method segment (--mask-teacher sam --mask-weights DIR)", "sam"),
    ModelInfo("dinov2", "facebook/dinov2-small", "88 MB", "Apache-2.0",
              "pretrain (--teacher dinov2, or auto when present)", "dinov2"),
    ModelInfo("clipseg", "CIDAS/clipseg-rd64-refined", "603 MB", "Apache-2.0",
              "distill partdistill --teacher clipseg", "clipseg"),
    ModelInfo("owlv2", "google/owlv2-base-patch16-ensemble", "620 MB", "Apache-2.0",
              "distill partdistill --teacher owlv2", "owlv2"),
    ModelInfo("grounding-dino", "IDEA-Research/grounding-dino-tiny", "690 MB", "Apache-2.0",
              "distill partdistill --teacher grounding_dino", "grounding_dino"),
    ModelInfo("mask2former", "facebook/mask2former-swin-tiny-coco-instance", "190 MB",
              "other (see its model card)", "discover (--teacher mask2former, or auto when present)", "mask2former"),
    ModelInfo("segformer", "nvidia/segformer-b0-finetuned-cityscapes-1024-1024", "15 MB",
              "other (NVIDIA SegFormer licence, see its model card)", "distill lidar --teacher segformer", "segformer"),
)


def model(name: str) -> ModelInfo:
    """The model called ``name`` (or whose hub id is ``name``); InputError listing the names otherwise."""
    for m in MODELS:
        if name in (m.name, m.hub_id):
            return m
    raise InputError(f"unknown model {name!r}; known: {', '.join(m.name for m in MODELS)} "
                     "(see `crossdistill models list`)")


@dataclass(frozen=True)
class ModelRow:
    """A :class:`ModelInfo` and where (if anywhere) its weights are on this machine."""

    info: ModelInfo
    where: Path | None

    @property
    def present(self) -> bool:
        return self.where is not None


def model_rows() -> list[ModelRow]:
    """Every model of :data:`MODELS` with the folder its weights were found in (no network)."""
    from crossdistill.teachers.registry import find_weights

    return [ModelRow(m, find_weights(m.hub_id)) for m in MODELS]


def hub_endpoint() -> str | None:
    """``$HF_ENDPOINT`` read now (a mirror or a local hub), or None for huggingface_hub's default."""
    value = os.environ.get("HF_ENDPOINT", "").strip()
    return value.rstrip("/") or None


#: files ``transformers`` reads; the weights are added by :func:`_wanted`
_SMALL_FILES = ("*.json", "*.txt", "*.model", "*.tiktoken", "*.py")
_WEIGHTS = ("*.safetensors", "*.safetensors.index.json")
_TORCH_WEIGHTS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")


def _wanted(files: list[str]) -> list[str]:
    """The repository files to fetch: small config files and one format of weights (safetensors first)."""
    has_safetensors = any(fnmatch.fnmatch(f, "*.safetensors") for f in files)
    patterns = _SMALL_FILES + (_WEIGHTS if has_safetensors else _TORCH_WEIGHTS)
    return sorted(f for f in files if any(fnmatch.fnmatch(Path(f).name, p) for p in patterns))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished download ``tmp`` onto ``dest`` (an older copy is renamed away, then deleted)."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def refuse_offline(info: ModelInfo) -> None:
    """InputError when ``HF_HUB_OFFLINE`` is set: then nothing may be downloaded."""
    if hf_offline():
        raise InputError(f"HF_HUB_OFFLINE is set, so nothing is downloaded: unset it to fetch {info.hub_id}, "
                         f"or copy its files into {local_model_dir(info.hub_id)}")


def download(name: str, to: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Fetch the weights of model ``name`` (a :data:`MODELS` name or hub id) and return their folder.

    Args:
        name: e.g. "sam" or "facebook/sam-vit-base".
        to: destination folder (default ``$CROSSDISTILL_MODELS/<hub id>``, where every command looks).
        progress: show huggingface_hub's progress bars.

    Raises:
        InputError: unknown name, ``HF_HUB_OFFLINE`` set, the hub unreachable or refusing, or a
            download without config / weights (one line each).
        MissingDependencyError: ``huggingface_hub`` is not installed (``pip install 'crossdistill[teachers]'``).
    """
    info = model(name)
    refuse_offline(info)
    hub = require("huggingface_hub", "teachers", "downloading model weights")
    dest = Path(to).expanduser() if to is not None else local_model_dir(info.hub_id)
    if dest.exists() and not dest.is_dir():
        raise InputError(f"--to {dest} is a file, not a folder")
    endpoint = hub_endpoint()
    where = endpoint or "the Hugging Face Hub"
    tmp = dest.with_name(f".{dest.name}.partial")
    import huggingface_hub.utils as hub_utils

    bars_were_on = not hub_utils.are_progress_bars_disabled()
    if not progress:
        hub_utils.disable_progress_bars()
    try:
        api = hub.HfApi(endpoint=endpoint)
        repo = api.model_info(info.hub_id, files_metadata=False)
        files = _wanted([s.rfilename for s in (repo.siblings or [])])
        if not files:
            raise InputError(f"{info.hub_id} at {where} lists no config or weight files")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        hub.snapshot_download(info.hub_id, revision=repo.sha, local_dir=str(tmp), allow_patterns=files,
                              endpoint=endpoint)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - every network / hub failure becomes one line
        raise InputError(f"downloading {info.hub_id} from {where} failed ({_one_line(exc)}); "
                         "a re-run resumes it") from None
    finally:
        if bars_were_on and not progress:
            hub_utils.enable_progress_bars()
    if not (tmp / "config.json").is_file():
        raise InputError(f"{info.hub_id} from {where} has no config.json; nothing installed")
    shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping, not the model's
    _replace_dir(tmp, dest)
    return dest
