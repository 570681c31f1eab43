"""Strong augmentation of decoder crops for self-training, and the teacher snapshot.

PartDistillation trains its part model with crop, scale and flip augmentation (the
released configuration's ``AUG_NAME_LIST: [crop, scale, flip]``, scales 0.1 to 2.0) and
self-trains it on targets that a model produced. Here the model sees teacher *features*
on an object-centric grid, so the same augmentations act on the grid:

* **scale jitter and crop**: a random zoom ``z`` (log-uniform in ``scale``) and shift; the
  features are resampled bilinearly, the object mask and every target mask by nearest
  neighbour with the same transform (zooming in crops the object, zooming out pads with
  background);
* **flip**: left-right with probability ``flip``;
* **colour** (in feature space): every channel of a crop is scaled by ``1 + N(0, jitter)``
  and shifted by ``N(0, jitter)`` times the channel's spread over the object, and whole
  channels are dropped with probability ``channel_drop`` (a colour or shading change moves
  some channels and not others).

:class:`TeacherSnapshot` is the model that makes the targets: a copy of the decoder whose
weights follow the student by an exponential moving average and are never touched by the
optimiser (mean-teacher self-training); ``momentum=0`` with a refresh makes it a
periodically frozen copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AugmentConfig", "augment_batch", "TeacherSnapshot"]


@dataclass(frozen=True)
class AugmentConfig:
    """Strong augmentation of crops (see the module docstring).

    Attributes:
        scale: (min, max) zoom; 1 keeps the object's size on the grid.
        shift: largest shift, as a share of the grid.
        flip: probability of a left-right flip.
        jitter: std of the per-channel gain and offset (offsets in units of the channel's spread).
        channel_drop: probability that a channel is zeroed.
    """

    scale: tuple[float, float] = (0.6, 1.6)
    shift: float = 0.15
    flip: float = 0.5
    jitter: float = 0.2
    channel_drop: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def _affine(batch: int, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, 2, 3) ``affine_grid`` matrices mapping output cells to input cells."""
    lo, hi = math.log(cfg.scale[0]), math.log(cfg.scale[1])
    zoom = torch.exp(lo + (hi - lo) * torch.rand(batch, generator=gen))
    flip = torch.where(torch.rand(batch, generator=gen) < cfg.flip, -1.0, 1.0)
    shift = (torch.rand(batch, 2, generator=gen) * 2 - 1) * cfg.shift * 2  # grid coords span 2
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = flip / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, :, 2] = shift
    return theta


def augment_batch(features: torch.Tensor, object_masks: torch.Tensor, targets: Sequence[torch.Tensor],
                  config: AugmentConfig, gen: torch.Generator, labels: Sequence[torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor] | None]:
    """One strong augmentation per crop.

    Args:
        features: (B, C, S, S) float.
        object_masks: (B, S, S) bool.
        targets: B tensors (T_b, S, S) bool.
        config: the augmentation.
        gen: CPU generator drawing every random choice (the batch is deterministic under its seed).
        labels: optional B tensors (T_b,) int64, a label per target mask (kept in step).

    Returns:
        (features, object masks, targets, labels) augmented alike; target masks are cut to
        the new object mask, and targets left empty by a crop are dropped (with their labels).

    Example:
        >>> f = torch.randn(2, 3, 8, 8); m = torch.ones(2, 8, 8, dtype=torch.bool)
        >>> a, b, t, _ = augment_batch(f, m, [m[:1], m[1:]], AugmentConfig(), torch.Generator().manual_seed(0))
        >>> a.shape, b.shape, [x.shape[1:] for x in t]
        (torch.Size([2, 3, 8, 8]), torch.Size([2, 8, 8]), [torch.Size([8, 8]), torch.Size([8, 8])])
    """
    B, C, S, _ = features.shape
    dev = features.device
    theta = _affine(B, config, gen).to(dev)
    grid = F.affine_grid(theta, (B, 1, S, S), align_corners=False)
    feats = F.grid_sample(features.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    objs = F.grid_sample(object_masks[:, None].float(), grid, mode="nearest", align_corners=False)[:, 0] > 0.5
    # feature-space colour jitter, in units of each channel's spread over the object
    w = object_masks[:, None].float()
    n = w.sum((2, 3), keepdim=True).clamp_min(1.0)
    mean = (features.float() * w).sum((2, 3), keepdim=True) / n
    std = ((((features.float() - mean) * w) ** 2).sum((2, 3), keepdim=True) / n).sqrt()
    gain = 1 + config.jitter * torch.randn(B, C, 1, 1, generator=gen).to(dev)
    offset = config.jitter * torch.randn(B, C, 1, 1, generator=gen).to(dev) * std
    keep = (torch.rand(B, C, 1, 1, generator=gen) >= config.channel_drop).float().to(dev)
    feats = (feats * gain + offset) * keep * objs[:, None].float()
    out_targets, out_labels = [], []
    for b, t in enumerate(targets):
        if len(t) == 0:
            out_targets.append(t)
            out_labels.append(labels[b] if labels is not None else None)
            continue
        warped = F.grid_sample(t[None].float(), grid[b:b + 1].expand(1, -1, -1, -1), mode="nearest",
                               align_corners=False)[0] > 0.5
        warped &= objs[b][None]
        kept = warped.flatten(1).any(1)
        out_targets.append(warped[kept])
        out_labels.append(labels[b][kept] if labels is not None else None)
    return feats, objs, out_targets, (out_labels if labels is not None else None)


class TeacherSnapshot:
    """The target-making copy of a model: EMA of the student's weights, outside the optimiser.

    Args:
        student: the model being trained (copied, not shared).
        momentum: EMA momentum per :meth:`update` (0: the copy becomes the student at each update).

    Example:
        >>> s = nn.Linear(2, 2); t = TeacherSnapshot(s, 0.5)
        >>> with torch.no_grad(): _ = s.weight.add_(1.0)
        >>> t.update(s); bool(torch.allclose(t.model.weight, s.weight - 0.5))
        True
    """

    def __init__(self, student: nn.Module, momentum: float = 0.99) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError("momentum must be in [0, 1)")
        self.model = copy.deepcopy(student).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.momentum = float(momentum)

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student (buffers copied)."""
        for t, s in zip(self.model.parameters(), student.parameters()):
            t.mul_(self.momentum).add_(s.detach().to(t.dtype), alpha=1.0 - self.momentum)
        for t, s in zip(self.model.buffers(), student.buffers()):
            t.copy_(s)
