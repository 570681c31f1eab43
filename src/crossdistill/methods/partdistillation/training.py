"""Training the part decoder on part masks: Hungarian matching, mask losses, the loop.

Mask2Former's set loss, over the object cells of each crop:

* each target part is matched to one query by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``) on the cost
  ``-w_score * sigmoid(score) + w_mask * BCE + w_dice * dice``;
* matched queries learn their target's mask (binary cross-entropy + dice) and a part-ness
  of 1; the others a part-ness of 0, weighted ``no_part_weight`` (0.1, Mask2Former's
  no-object weight);
* the loss is summed over the decoder's layers (auxiliary losses).

:func:`train_decoder` runs AdamW over random batches of crops, seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from crossdistill.methods.partdistillation.crops import InstanceCrop
from crossdistill.methods.partdistillation.decoder import PartDecoder

__all__ = ["TrainConfig", "match_parts", "set_loss", "train_decoder", "stack_crops"]


@dataclass(frozen=True)
class TrainConfig:
    """Decoder training.

    Attributes:
        steps: optimiser steps per training round.
        batch_size: crops per step.
        lr: AdamW learning rate (weight decay 1e-4, cosine decay to 10%).
        score_weight, mask_weight, dice_weight: loss and matching-cost weights (Mask2Former: 2, 5, 5).
        no_part_weight: weight of the part-ness loss of unmatched queries.
        seed: draws the batches and initialises the decoder.
    """

    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    score_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_part_weight: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def stack_crops(crops: Sequence[InstanceCrop], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """((n, C, S, S) features, (n, S, S) bool object masks) of crops."""
    feats = torch.as_tensor(np.stack([c.features for c in crops])).to(dtype)
    masks = torch.as_tensor(np.stack([c.mask for c in crops]))
    return feats, masks


def _pair_costs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, T) mean BCE and dice costs of Q mask logits against T targets, over n cells (both (., n))."""
    t = targets.float()
    n = max(logits.shape[1], 1)
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    bce = (pos @ t.T + neg @ (1 - t).T) / n
    p = logits.sigmoid()
    dice = 1 - (2 * p @ t.T + 1) / (p.sum(1)[:, None] + t.sum(1)[None] + 1)
    return bce, dice


def match_parts(scores: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                config: TrainConfig = TrainConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of Q queries to T target parts of one crop.

    Args:
        scores: (Q,) part-ness logits.
        logits: (Q, n) mask logits on the object's n cells.
        targets: (T, n) bool target masks on the same cells.

    Returns:
        (query index, target index) arrays of length min(Q, T).

    Example:
        >>> q = torch.tensor([[9., -9.], [-9., 9.]]); t = torch.tensor([[False, True], [True, False]])
        >>> match_parts(torch.zeros(2), q, t)
        (array([0, 1]), array([1, 0]))
    """
    if len(targets) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    with torch.no_grad():
        bce, dice = _pair_costs(logits.float(), targets)
        cost = -config.score_weight * scores.float().sigmoid()[:, None] + config.mask_weight * bce \
            + config.dice_weight * dice
    qi, ti = linear_sum_assignment(cost.cpu().numpy())
    return qi.astype(np.int64), ti.astype(np.int64)


def set_loss(outputs: list[dict[str, torch.Tensor]], object_masks: torch.Tensor, targets: Sequence[torch.Tensor],
             config: TrainConfig = TrainConfig()) -> torch.Tensor:
    """Mask2Former set loss summed over layers, averaged over the batch's crops.

    Args:
        outputs: :meth:`PartDecoder.forward` output for a batch of B crops.
        object_masks: (B, S, S) bool.
        targets: B tensors (T_b, S, S) bool, each inside its object.
    """
    total = outputs[0]["scores"].new_zeros(())
    B = len(targets)
    for out in outputs:
        for b in range(B):
            obj = object_masks[b].flatten()
            logits = out["masks"][b].flatten(1)[:, obj]  # (Q, n)
            tgt = targets[b].flatten(1)[:, obj]  # (T, n)
            scores = out["scores"][b]
            qi, ti = match_parts(scores, logits, tgt, config)
            label = torch.zeros_like(scores)
            weight = torch.full_like(scores, config.no_part_weight)
            label[qi], weight[qi] = 1.0, 1.0
            loss = config.score_weight * F.binary_cross_entropy_with_logits(scores, label, weight=weight,
                                                                            reduction="sum") / weight.sum()
            if len(qi):
                lg, t = logits[qi], tgt[ti].float()
                bce = F.binary_cross_entropy_with_logits(lg, t, reduction="none").mean(1)
                p = lg.sigmoid()
                dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
                loss = loss + (config.mask_weight * bce + config.dice_weight * dice).mean()
            total = total + loss / B
    return total


def train_decoder(decoder: PartDecoder, crops: Sequence[InstanceCrop], targets: Sequence[np.ndarray],
                  config: TrainConfig = TrainConfig(), device: str = "cpu", progress: bool = True,
                  desc: str = "part decoder") -> list[float]:
    """Train ``decoder`` in place to predict ``targets[i]`` ((T_i, S, S) bool) on ``crops[i]``.

    Crops without any target part are left out. Returns the loss of every step.
    """
    keep = [i for i, t in enumerate(targets) if len(t)]
    if not keep:
        raise ValueError("no crop has a target part to train on")
    feats, objs = stack_crops([crops[i] for i in keep], torch.float16)
    tgts = [torch.as_tensor(np.asarray(targets[i], bool)) for i in keep]
    gen = torch.Generator().manual_seed(config.seed)
    decoder.to(device).train()
    opt = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(s, config.steps) / max(config.steps, 1))))
    losses = []
    bar = tqdm(range(config.steps), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        idx = torch.randint(len(keep), (min(config.batch_size, len(keep)),), generator=gen)
        f, o = feats[idx].to(device).float(), objs[idx].to(device)
        loss = set_loss(decoder(f, o), o, [tgts[int(i)].to(device) for i in idx], config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    decoder.eval()
    return losses
