"""The torch device a user asks for, checked once: ``cpu``, ``cuda[:N]``, ``mps`` or ``auto``.

Example:
    >>> resolve_device("cpu")
    'cpu'
"""

from __future__ import annotations

import re

from crossdistill.errors import InputError

__all__ = ["DEVICE_HELP", "resolve_device"]

#: the help text of every ``--device`` flag
DEVICE_HELP = ("torch device: cpu (default), cuda or cuda:N (NVIDIA GPU), mps (Apple GPU, where this torch "
               "build has it), or auto (cuda, else mps, else cpu)")

_CUDA = re.compile(r"^cuda(:\d+)?$")


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | None, flag: str = "--device") -> str:
    """The device string to hand to torch, after checking this machine has it.

    Args:
        name: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (None: ``cpu``).
        flag: how the caller names the setting in an error.

    Raises:
        InputError: an unknown name, or a device this machine or this torch build lacks (one line).
    """
    text = "cpu" if name is None else str(name).strip().lower()
    if text == "cpu":
        return "cpu"
    if text != "auto" and text != "mps" and not _CUDA.match(text):
        raise InputError(f"{flag} must be cpu, cuda, cuda:N, mps or auto (got {name!r})")
    import torch

    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available(torch) else "cpu"
    if text == "mps":
        if not _mps_available(torch):
            built = getattr(getattr(torch.backends, "mps", None), "is_built", lambda: False)()
            why = "this machine has no Apple GPU" if built else "this torch build has no MPS support"
            raise InputError(f"{flag} mps requested but {why}")
        return "mps"
    if not torch.cuda.is_available():
        raise InputError(f"{flag} {text} requested but CUDA is not available on this machine")
    index = int(text.split(":")[1]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        raise InputError(f"{flag} {text} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text
