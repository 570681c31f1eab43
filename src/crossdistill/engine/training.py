"""The one training loop of crossdistill: :func:`fit`.

A method gives it a model, an optimizer (and optionally a learning-rate scheduler), a
**step function** that returns the loss of one micro-batch, and optionally a **data source**;
the loop does the rest the same way for every method:

* **device and precision** -- ``TrainConfig.device`` / ``precision`` ("32", "bf16-mixed",
  "16-mixed"); float32 in one process is plain PyTorch, anything else goes through
  ``lightning-fabric`` (:mod:`crossdistill.engine.distributed`);
* **seeding** -- ``TrainConfig.seed`` seeds torch, NumPy's global generator and ``random``;
* **gradient accumulation** -- ``accumulate`` micro-batches per optimizer step, each loss
  divided by ``accumulate`` (so a step function returning a *mean* over its micro-batch gives
  the gradient of the mean over the whole step; under DDP the gradient all-reduce runs only on
  the last micro-batch);
* **DDP under torchrun** -- started with ``torchrun --nproc_per_node N``, each process is one
  rank (gloo on CPU, NCCL on CUDA); a data source hands each rank its share of every global
  batch (:class:`StepData`, e.g. :class:`crossdistill.engine.data.SampledBatches` with torch's
  ``DistributedSampler``), gradients are averaged, and the logged loss is the mean over ranks;
* **checkpoint and resume** -- with ``run_dir``, every ``checkpoint_every`` steps and at the
  end ``<run_dir>/checkpoint.pt`` is written atomically (temp file + rename) with the model,
  optimizer, scheduler, step, loss history and every random state (torch, CUDA, NumPy, random,
  and the generators passed as ``rngs``, per rank). A run started again on the same
  ``run_dir`` (killed with ``kill -9`` or finished) continues from it and ends in the same state
  as an uninterrupted run;
* **progress and scalars** -- a tqdm bar on rank 0; with ``run_dir``, ``scalars.csv`` (step,
  loss, lr and any other scalar the step function returns) and ``loss.png``
  (:mod:`crossdistill.engine.scalars`).

Example:
    >>> import torch
    >>> from crossdistill.engine.training import TrainConfig, fit
    >>> net = torch.nn.Linear(3, 1)
    >>> x, y = torch.randn(16, 3), torch.randn(16, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> def step(model, batch, step):               # batch is None without a data source
    ...     return ((model(x) - y) ** 2).mean()     # a scalar loss (or {"loss": ..., "other": ...})
    >>> result = fit(net, opt, step, TrainConfig(steps=5, progress=False))
    >>> result.losses.shape
    (5,)

Rules for a step function ``step_fn(model, batch, step)``:

* call the ``model`` it is given (under DDP it is the wrapped module), not your own reference;
* return a scalar tensor, a mapping with a ``"loss"`` tensor and other floats / tensors to log,
  or None to skip the step (no optimizer or scheduler step; its loss is NaN) -- one process only;
* draw randomness from the generators passed in ``rngs`` (or the global ones), so that a
  resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import io
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from crossdistill.engine.distributed import World, make_backend
from crossdistill.errors import InputError
from crossdistill.io_utils import write_bytes

__all__ = ["TrainConfig", "TrainResult", "StepData", "StepFn", "fit", "CHECKPOINT", "load_run_checkpoint"]

#: file name of the resumable checkpoint inside a run folder
CHECKPOINT = "checkpoint.pt"
_FORMAT = "crossdistill-train-run-v1"

StepOutput = Union[torch.Tensor, Mapping[str, Any], None]
#: ``step_fn(model, batch, step) -> loss``; see the module docstring
StepFn = Callable[[torch.nn.Module, Any, int], StepOutput]
Rng = Union[np.random.Generator, torch.Generator]


class StepData(Protocol):
    """A data source the loop can start anywhere and share out between ranks."""

    def batches(self, start: int, world: World) -> Iterator[Any]:
        """This process's micro-batches, from global micro-batch index ``start`` on.

        Micro-batch ``j`` of rank ``r`` must be rank ``r``'s share of global micro-batch ``j``
        (the same ``j`` for every rank), so that ``step * accumulate`` addresses the same data
        whatever the number of ranks.
        """


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit`.

    Attributes:
        steps: optimizer steps in all (a resumed run does the remaining ones).
        accumulate: micro-batches per optimizer step.
        device: torch device (``cpu``, ``cuda``, ``cuda:N``; under torchrun each rank takes
            ``cuda:LOCAL_RANK``).
        precision: "32", "bf16-mixed" or "16-mixed" (the latter two need ``[train]``).
        seed: seeds torch, NumPy's global generator and ``random`` before training; None
            leaves them to the caller.
        max_grad_norm: clip the gradient norm to this before each optimizer step (None: no clip).
        run_dir: folder for ``checkpoint.pt``, ``scalars.csv`` and ``loss.png``; None: none of them.
        checkpoint_every: also checkpoint every this many steps (0: only at the end).
        resume: continue from ``run_dir``'s checkpoint when there is one.
        run_key: a string naming the run's settings; a checkpoint made with another key is
            refused (InputError) rather than resumed.
        log_every: write a CSV row every this many steps.
        progress: show a tqdm bar (rank 0 only).
        desc: the bar's label.
        distributed: under torchrun, train as one DDP rank; False keeps the training in this
            process (a per-object fit that each rank runs for itself).
    """

    steps: int
    accumulate: int = 1
    device: str = "cpu"
    precision: str = "32"
    seed: int | None = None
    max_grad_norm: float | None = None
    run_dir: str | Path | None = None
    checkpoint_every: int = 0
    resume: bool = True
    run_key: str = ""
    log_every: int = 1
    progress: bool = True
    desc: str = "train"
    distributed: bool = True

    def __post_init__(self) -> None:
        if self.steps < 0 or self.accumulate < 1 or self.checkpoint_every < 0 or self.log_every < 1:
            raise InputError("training needs steps >= 0, accumulate >= 1, checkpoint_every >= 0, log_every >= 1")


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
        model: the trained module (the one passed in, unwrapped; left in train mode).
        losses: (steps,) float32 loss of every step (mean over its micro-batches and the
            ranks; NaN where the step was skipped), including steps done before a resume.
        start_step: the step this process started at (0, or where it resumed).
        world: the process's :class:`~crossdistill.engine.distributed.World`.
    """

    model: torch.nn.Module
    losses: np.ndarray
    start_step: int = 0
    world: World = field(default_factory=World)


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step_fn: StepFn, config: TrainConfig, *,
        scheduler: Any | None = None, data: StepData | None = None,
        rngs: Mapping[str, Rng] | None = None) -> TrainResult:
    """Train ``model`` for ``config.steps`` optimizer steps; see the module docstring.

    Args:
        model: the module (its parameters are those of ``optimizer``); moved to the device.
        optimizer: its optimizer.
        step_fn: ``(model, batch, step) -> loss`` of one micro-batch.
        config: settings.
        scheduler: stepped once after each optimizer step (anything with ``step`` and
            ``state_dict``), or None.
        data: where micro-batches come from; None calls ``step_fn`` with ``batch=None``.
        rngs: named NumPy / torch generators the step function draws from; their states are
            checkpointed and restored with the rest.

    Returns:
        :class:`TrainResult`.

    Raises:
        InputError: a run folder whose checkpoint has another ``run_key`` or cannot be read,
            or a setting this machine cannot honour.
    """
    backend = make_backend(config.device, config.precision, config.distributed)
    w = backend.world
    if config.seed is not None:
        _seed_all(config.seed)
    model, optimizer = backend.setup(model, optimizer)
    rngs = dict(rngs or {})
    run_dir = Path(config.run_dir) if config.run_dir is not None else None
    losses = np.full(config.steps, np.nan, dtype=np.float32)
    start = 0
    if run_dir is not None and config.resume and (run_dir / CHECKPOINT).is_file():
        doc = load_run_checkpoint(run_dir / CHECKPOINT, config.run_key)
        backend.unwrap(model).load_state_dict(doc["model"])
        optimizer.load_state_dict(doc["optimizer"])
        if scheduler is not None and doc.get("scheduler") is not None:
            scheduler.load_state_dict(doc["scheduler"])
        start = min(int(doc["step"]), config.steps)
        done = doc["losses"].numpy()[: config.steps]
        losses[: len(done)] = done
        states = doc["rng"]
        if w.rank < len(states):
            _set_rng(states[w.rank], rngs)
        else:
            warnings.warn(f"checkpoint has random states of {len(states)} ranks; rank {w.rank} starts fresh",
                          stacklevel=2)
    log = None
    if run_dir is not None and w.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    batches = data.batches(start * config.accumulate, w) if data is not None else None
    acc = config.accumulate
    model.train()
    bar = tqdm(total=config.steps, initial=start, desc=config.desc, leave=False,
               disable=not (config.progress and w.is_main))
    try:
        for step in range(start, config.steps):
            optimizer.zero_grad(set_to_none=True)
            total, done_micro, extra = 0.0, 0, {}
            for micro in range(acc):
                batch = next(batches) if batches is not None else None
                with backend.no_sync(model, enabled=micro < acc - 1):
                    out = step_fn(model, batch, step)
                    if out is None:
                        continue
                    loss, others = _split(out)
                    backend.backward(loss / acc if acc > 1 else loss)
                total += float(loss.detach())
                done_micro += 1
                for k, v in others.items():
                    extra[k] = extra.get(k, 0.0) + float(v)
            if done_micro == 0:
                bar.update(1)
                continue
            if config.max_grad_norm is not None:
                backend.clip(model, optimizer, config.max_grad_norm)
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            values = [total / done_micro, *(v / done_micro for v in extra.values())]
            if w.size > 1:
                values = backend.mean(values)
            losses[step] = values[0]
            bar.update(1)
            if run_dir is not None:
                if w.is_main and (step + 1) % config.log_every == 0:
                    if log is None:
                        log = _open_log(run_dir, ["loss", "lr", *extra], step)
                    log.log(step, {"loss": values[0], "lr": lr,
                                   **dict(zip(extra, values[1:]))})
                if (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0) or step + 1 == config.steps:
                    _save(run_dir, backend, model, optimizer, scheduler, step + 1, losses, rngs, config.run_key)
    finally:
        bar.close()
        if log is not None:
            log.close()
    if run_dir is not None and w.is_main:
        from crossdistill.engine.scalars import plot_scalars

        plot_scalars(run_dir / "scalars.csv", run_dir / "loss.png", config.desc)
    return TrainResult(backend.unwrap(model), losses, start, w)


def load_run_checkpoint(path: str | Path, run_key: str = "") -> dict[str, Any]:
    """The dict of a run checkpoint written by :func:`fit` (tensors on CPU).

    Raises:
        InputError: unreadable, not a run checkpoint, or made with another ``run_key``.
    """
    from crossdistill.engine.checkpoints import load_checkpoint

    doc = load_checkpoint(path, _FORMAT, "training checkpoint", lambda d: d)
    if doc.get("run_key", "") != run_key:
        raise InputError(f"{path}: this run folder holds a run with other settings "
                         f"({doc.get('run_key')!r}, not {run_key!r}); use another run folder or remove it")
    return doc


# ---------------------------------------------------------------------------- helpers


def _split(out: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """(loss tensor, other scalars) of a step function's return value."""
    if isinstance(out, torch.Tensor):
        return out, {}
    if isinstance(out, Mapping) and isinstance(out.get("loss"), torch.Tensor):
        return out["loss"], {k: (v.detach() if isinstance(v, torch.Tensor) else v)
                             for k, v in out.items() if k != "loss"}
    raise TypeError("a step function returns a loss tensor, a mapping with a 'loss' tensor, or None")


def _open_log(run_dir: Path, names: list[str], step: int):
    from crossdistill.engine.scalars import ScalarLog

    return ScalarLog(run_dir, names, start_step=step)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _get_rng(rngs: Mapping[str, Rng]) -> dict[str, Any]:
    """Every random state of this process, as tensors and plain values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, np.int64)), int(pos), int(has_gauss), float(gauss)],
        "random": random.getstate(),
        "named": {},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, g in rngs.items():
        if isinstance(g, torch.Generator):
            state["named"][name] = {"torch": g.get_state()}
        else:
            state["named"][name] = {"numpy": g.bit_generator.state}
    return state


def _set_rng(state: Mapping[str, Any], rngs: Mapping[str, Rng]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    r = state["random"]
    random.setstate((r[0], tuple(r[1]), r[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in rngs.items():
        saved = state["named"].get(name)
        if saved is None:
            raise InputError(f"checkpoint has no state for the random generator {name!r}")
        if isinstance(g, torch.Generator):
            g.set_state(saved["torch"])
        else:
            g.bit_generator.state = saved["numpy"]


def _save(run_dir: Path, backend, model, optimizer, scheduler, step: int, losses: np.ndarray,
          rngs: Mapping[str, Rng], run_key: str) -> None:
    """Write the run checkpoint (rank 0; every rank's random state is gathered first)."""
    states = backend.gather(_get_rng(rngs))
    if backend.world.is_main:
        doc = {"format": _FORMAT, "run_key": run_key, "step": int(step),
               "model": {k: v.detach().cpu() for k, v in backend.unwrap(model).state_dict().items()},
               "optimizer": _to_cpu(optimizer.state_dict()),
               "scheduler": _to_cpu(scheduler.state_dict()) if scheduler is not None else None,
               "losses": torch.from_numpy(losses[:step].copy()), "rng": states}
        buf = io.BytesIO()
        torch.save(doc, buf)
        write_bytes(run_dir / CHECKPOINT, buf.getvalue())
    backend.barrier()


def _to_cpu(obj: Any) -> Any:
    """A state dict with tensors on the CPU and NumPy values as plain ones (loadable with weights_only)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
