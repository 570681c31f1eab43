"""Where a training process runs: one process, or one rank of a ``torchrun`` job.

Two backends give :func:`crossdistill.engine.training.fit` the same small interface
(``setup``, ``backward``, ``no_sync``, ``clip``, ``mean``, ``gather``, ``barrier``):

* :class:`LocalBackend` -- one process, float32, plain PyTorch. No dependency, nothing
  imported beyond torch, and nothing done per step but ``loss.backward()``: it is what the
  per-object grouping field of ``crossdistill segment`` trains with, where the loop's own
  cost must stay negligible and results must equal a hand-written loop bit for bit.
* :class:`FabricBackend` -- ``lightning-fabric`` (the ``[train]`` extra): used when the process
  was started by ``torchrun`` (``WORLD_SIZE`` > 1) or a mixed precision is asked for. Fabric
  reads torchrun's environment, creates the process group (gloo on CPU, NCCL on CUDA), puts
  each rank on its device (``cuda:LOCAL_RANK``), wraps the model in DistributedDataParallel,
  skips the gradient all-reduce on accumulation micro-steps (``no_backward_sync``) and
  applies the precision plugin (autocast, and a gradient scaler for ``16-mixed``).

Why Fabric rather than ``accelerate`` or hand-written DDP: Fabric is a thin layer over
``torch.distributed`` that leaves the loop to us (``accelerate`` does too, but it brings a
config-file launcher and its own state-saving format that would sit beside our atomic
checkpoints); it speaks torchrun's environment as is, and its precision plugins cover the
three settings we offer. It costs about a second of import time, which is why the
one-process float32 path does not use it (``docs/engine.md``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch

from crossdistill.errors import InputError

__all__ = ["PRECISIONS", "World", "world", "LocalBackend", "FabricBackend", "make_backend"]

#: precision settings of :class:`crossdistill.engine.training.TrainConfig`
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class World:
    """This process's place in a job.

    Attributes:
        rank: global rank (0 in a one-process run).
        size: number of processes (1 in a one-process run).
        local_rank: rank on this machine (the CUDA device index under torchrun).
        local_size: processes on this machine.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and shows progress (rank 0)."""
        return self.rank == 0


def world() -> World:
    """The :class:`World` described by torchrun's environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``); one process when they are absent."""
    env = os.environ
    size = int(env.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(rank=int(env.get("RANK", "0")), size=size, local_rank=int(env.get("LOCAL_RANK", "0")),
                 local_size=int(env.get("LOCAL_WORLD_SIZE", str(size))))


class LocalBackend:
    """One process, float32: the model goes to ``device`` and every call is plain PyTorch."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.world = World()

    def setup(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer
              ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The model on the device, and the optimizer, both as given."""
        return model.to(self.device), optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def no_sync(self, model: torch.nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        """Nothing to skip in one process."""
        return contextlib.nullcontext()

    def clip(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def mean(self, values: list[float]) -> list[float]:
        """The mean of each value over the processes: the values themselves."""
        return list(values)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order: ``[obj]``."""
        return [obj]

    def barrier(self) -> None:
        pass

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model


class FabricBackend:
    """A ``lightning_fabric.Fabric`` set up from torchrun's environment (or one process with a
    mixed precision); see the module docstring.

    Args:
        device: ``cpu`` or ``cuda`` (``cuda:N`` in one process); under torchrun each rank takes
            ``cuda:LOCAL_RANK``.
        precision: one of :data:`PRECISIONS`.
        single: one process even under torchrun (a per-rank training, not a DDP one).
    """

    def __init__(self, device: str | torch.device = "cpu", precision: str = "32", single: bool = False) -> None:
        try:
            from lightning_fabric import Fabric
        except ImportError:
            raise InputError("distributed or mixed-precision training needs lightning-fabric: "
                             "pip install 'crossdistill[train]'") from None
        w = World() if single else world()
        dev = torch.device(device)
        accelerator = "cuda" if dev.type == "cuda" else dev.type
        if w.size > 1:
            devices: Any = w.local_size
            strategy = "ddp"
        else:
            devices = [dev.index or 0] if dev.type == "cuda" else 1
            strategy = "auto"
        fabric_precision = {"32": "32-true"}.get(precision, precision)
        self.fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=max(1, w.size // w.local_size),
                             strategy=strategy, precision=fabric_precision)
        self.fabric.launch()  # under torchrun: joins the process group; in one process: nothing
        if w.size > 1:
            atexit.register(_destroy_process_group)
        self.device = self.fabric.device
        self.world = w

    def setup(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        return self.fabric.setup(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        self.fabric.backward(loss)

    def no_sync(self, model, enabled: bool) -> contextlib.AbstractContextManager:
        """Skip DDP's gradient all-reduce while ``enabled`` (accumulation micro-steps)."""
        return self.fabric.no_backward_sync(model, enabled=enabled and self.world.size > 1)

    def clip(self, model, optimizer, max_norm: float) -> None:
        self.fabric.clip_gradients(model, optimizer, max_norm=max_norm)

    def mean(self, values: list[float]) -> list[float]:
        """The mean of each value over the ranks (one all-reduce)."""
        if self.world.size == 1:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        return [float(v) for v in self.fabric.all_reduce(t, reduce_op="mean").cpu()]

    def gather(self, obj: Any) -> list[Any]:
        if self.world.size == 1:
            return [obj]
        out: list[Any] = [None] * self.world.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        self.fabric.barrier()

    def unwrap(self, model) -> torch.nn.Module:
        from lightning_fabric.wrappers import _FabricModule

        return model.module if isinstance(model, _FabricModule) else model  # the user's module (DDP sits inside)


def _destroy_process_group() -> None:
    """Shut the process group down before the interpreter does: gloo's threads still running at
    interpreter teardown end the process with SIGABRT ("terminate called without an active
    exception") now and then, which fails a torchrun job that had finished its work."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def make_backend(device: str | torch.device = "cpu", precision: str = "32", distributed: bool = True
                 ) -> LocalBackend | FabricBackend:
    """:class:`FabricBackend` under torchrun (when ``distributed``) or with a mixed precision, else
    :class:`LocalBackend`.

    Raises:
        InputError: an unknown precision, or Fabric needed but not installed.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if distributed and world().size > 1:
        return FabricBackend(device, precision)
    if precision != "32":
        return FabricBackend(device, precision, single=True)
    return LocalBackend(device)

