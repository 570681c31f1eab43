"""Training the part decoder on part masks: Hungarian matching, mask losses, the loop.

Mask2Former's set loss, over the object cells of each crop:

* each target part is matched to one query by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``) on the cost
  ``-w_score * sigmoid(score) + w_mask * BCE + w_dice * dice``;
* matched queries learn their target's mask (binary cross-entropy + dice) and a part-ness
  of 1; the others a part-ness of 0, weighted ``no_part_weight`` (0.1, Mask2Former's
  no-object weight);
* with part labels (the final self-training on cluster ids), matched queries also learn
  their target's label by cross-entropy over ``outputs["classes"]`` (weight
  ``class_weight``), and the matching cost adds ``-class_weight * p(label)``;
* the loss is summed over the decoder's layers (auxiliary losses).

:func:`train_decoder` runs AdamW over random batches of crops, seeded. For self-training it
takes a :class:`~.augment.TeacherSnapshot` and a ``make_targets`` callable: every
``refresh_every`` steps the snapshot (an EMA of the decoder, outside the optimiser)
re-labels every crop, and the student learns those targets on strongly augmented crops
(:func:`~.augment.augment_batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from crossdistill.engine.training import TrainConfig as EngineConfig
from crossdistill.engine.training import fit
from crossdistill.methods.partdistillation.augment import AugmentConfig, TeacherSnapshot, augment_batch
from crossdistill.methods.partdistillation.crops import InstanceCrop
from crossdistill.methods.partdistillation.decoder import PartDecoder

__all__ = ["TrainConfig", "match_parts", "pad_targets", "set_loss", "train_decoder", "stack_crops", "crop_batches"]


@dataclass(frozen=True)
class TrainConfig:
    """Decoder training.

    Attributes:
        steps: optimiser steps per training round.
        batch_size: crops per step.
        lr: AdamW learning rate (weight decay 1e-4, cosine decay to 10%).
        score_weight, mask_weight, dice_weight: loss and matching-cost weights (Mask2Former: 2, 5, 5).
        no_part_weight: weight of the part-ness loss of unmatched queries.
        class_weight: weight of the part-label loss and cost (final self-training only).
        seed: draws the batches and initialises the decoder.
    """

    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    score_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_part_weight: float = 0.1
    class_weight: float = 2.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def stack_crops(crops: Sequence[InstanceCrop], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """((n, C, S, S) features, (n, S, S) bool object masks) of crops."""
    feats = torch.as_tensor(np.stack([c.features for c in crops])).to(dtype)
    masks = torch.as_tensor(np.stack([c.mask for c in crops]))
    return feats, masks


def crop_batches(crops: Sequence[InstanceCrop], batch_size: int = 32,
                 device: str = "cpu") -> Iterator[tuple[Sequence[InstanceCrop], torch.Tensor, torch.Tensor]]:
    """(chunk, (b, C, S, S) features, (b, S, S) bool masks) on ``device``, ``batch_size`` crops at a time."""
    for start in range(0, len(crops), batch_size):
        chunk = crops[start:start + batch_size]
        feats, objs = stack_crops(chunk)
        yield chunk, feats.to(device), objs.to(device)


def _pair_costs(logits: torch.Tensor, targets: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Q, T) mean BCE and dice costs of mask logits (B, Q, N) against targets (B, T, N).

    Only the cells where ``cells`` (B, N) is True count (the object's); the BCE is the mean
    over them.
    """
    w = cells.float()[:, None, :]  # (B, 1, N)
    lg = torch.where(cells[:, None, :], logits, torch.zeros_like(logits))
    t = targets.float() * w
    n = w.sum(-1, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
    pos = F.binary_cross_entropy_with_logits(lg, torch.ones_like(lg), reduction="none") * w
    neg = F.binary_cross_entropy_with_logits(lg, torch.zeros_like(lg), reduction="none") * w
    bce = (pos @ t.transpose(1, 2) + neg @ (w - t).transpose(1, 2)) / n
    p = lg.sigmoid() * w
    dice = 1 - (2 * p @ t.transpose(1, 2) + 1) / (p.sum(-1)[..., None] + t.sum(-1)[:, None, :] + 1)
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
    cells = torch.ones(1, logits.shape[1], dtype=torch.bool, device=logits.device)
    with torch.no_grad():
        bce, dice = _pair_costs(logits.float()[None], targets[None], cells)
        cost = _cost(scores.float()[None], bce, dice, config)[0]
    qi, ti = linear_sum_assignment(cost.cpu().numpy())
    return qi.astype(np.int64), ti.astype(np.int64)


def _cost(scores: torch.Tensor, bce: torch.Tensor, dice: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """(B, Q, T) matching cost from (B, Q) part-ness logits and (B, Q, T) mask costs."""
    return -config.score_weight * scores.sigmoid()[..., None] + config.mask_weight * bce + config.dice_weight * dice


def pad_targets(targets: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """B tensors (T_b, S, S) bool -> ((B, T, S*S) bool zero-padded, (B,) int64 counts)."""
    counts = torch.tensor([len(t) for t in targets], dtype=torch.int64)
    T = max(1, int(counts.max()) if len(counts) else 1)
    n = targets[0].shape[-1] * targets[0].shape[-2]
    out = torch.zeros(len(targets), T, n, dtype=torch.bool, device=targets[0].device)
    for b, t in enumerate(targets):
        if len(t):
            out[b, : len(t)] = t.flatten(1)
    return out, counts


def set_loss(outputs: list[dict[str, torch.Tensor]], object_masks: torch.Tensor, targets: Sequence[torch.Tensor],
             config: TrainConfig = TrainConfig(), labels: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Mask2Former set loss summed over layers, averaged over the batch's crops.

    Args:
        outputs: :meth:`PartDecoder.forward` output for a batch of B crops; with ``labels``
            each layer's dict also holds ``classes`` (B, Q, K) label logits.
        object_masks: (B, S, S) bool.
        targets: B tensors (T_b, S, S) bool, each inside its object.
        labels: optional B tensors (T_b,) int64 in [0, K): the label of each target.
    """
    B = len(targets)
    tgt, counts = pad_targets(targets)  # (B, T, N)
    cells = object_masks.flatten(1)  # (B, N)
    w = cells.float()
    n = w.sum(1).clamp_min(1.0)  # (B,)
    total = outputs[0]["scores"].new_zeros(())
    for out in outputs:
        scores = out["scores"]  # (B, Q)
        logits = torch.where(cells[:, None, :], out["masks"].flatten(2), torch.zeros((), device=scores.device))
        with torch.no_grad():
            bce, dice = _pair_costs(logits.detach(), tgt, cells)
            cost_t = _cost(scores.detach(), bce, dice, config)
            if labels is not None:
                lab_pad = torch.zeros(B, tgt.shape[1], dtype=torch.int64, device=scores.device)
                for b, lb in enumerate(labels):
                    lab_pad[b, : len(lb)] = lb
                prob = out["classes"].detach().float().softmax(-1)  # (B, Q, K)
                cost_t = cost_t - config.class_weight * torch.gather(
                    prob, 2, lab_pad[:, None, :].expand(-1, prob.shape[1], -1))
            cost = cost_t.cpu().numpy()
        bi, qi, ti = [], [], []
        for b in range(B):
            q, t = linear_sum_assignment(cost[b, :, : int(counts[b])])
            bi += [b] * len(q)
            qi += list(q)
            ti += list(t)
        label = torch.zeros_like(scores)
        weight = torch.full_like(scores, config.no_part_weight)
        if bi:
            label[bi, qi] = 1.0
            weight[bi, qi] = 1.0
        per_crop = F.binary_cross_entropy_with_logits(scores, label, weight=weight, reduction="none").sum(1) \
            / weight.sum(1)
        loss = config.score_weight * per_crop.mean()
        if bi:
            b_idx = torch.tensor(bi, device=scores.device)
            lg = logits[b_idx, torch.tensor(qi, device=scores.device)]  # (M, N)
            t = tgt[b_idx, torch.tensor(ti, device=scores.device)].float()  # (M, N)
            cw = w[b_idx]
            bce_m = (F.binary_cross_entropy_with_logits(lg, t, reduction="none") * cw).sum(1) / n[b_idx]
            p = lg.sigmoid() * cw
            dice_m = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
            # each crop's matched parts average, then crops average (as the per-crop formulation)
            per_pair = config.mask_weight * bce_m + config.dice_weight * dice_m
            if labels is not None:
                q_idx = torch.tensor(qi, device=scores.device)
                want = torch.stack([labels[b][t] for b, t in zip(bi, ti)]).to(scores.device)
                per_pair = per_pair + config.class_weight * F.cross_entropy(
                    out["classes"][b_idx, q_idx].float(), want, reduction="none")
            per_crop_mask = torch.zeros(B, device=scores.device).index_add(0, b_idx, per_pair)
            matched = torch.bincount(b_idx, minlength=B).clamp_min(1).float()
            loss = loss + (per_crop_mask / matched).mean()
        total = total + loss
    return total


def train_decoder(decoder: PartDecoder, crops: Sequence[InstanceCrop], targets: Sequence[np.ndarray],
                  config: TrainConfig = TrainConfig(), device: str = "cpu", progress: bool = True,
                  desc: str = "part decoder", *, augment: AugmentConfig | None = None,
                  teacher: TeacherSnapshot | None = None,
                  make_targets: Callable[[PartDecoder], tuple[list[np.ndarray], list[np.ndarray] | None]] | None = None,
                  refresh_every: int = 50, head: torch.nn.Module | None = None,
                  labels: Sequence[np.ndarray] | None = None) -> list[float]:
    """Train ``decoder`` in place to predict ``targets[i]`` ((T_i, S, S) bool) on ``crops[i]``.

    Args:
        augment: strong augmentation of every batch (None: the crops as they are).
        teacher: with ``make_targets``, the snapshot that re-labels the crops: every
            ``refresh_every`` steps (and before the first) ``make_targets(teacher.model)``
            returns (targets, labels or None) for all crops, replacing ``targets`` /
            ``labels``; the snapshot follows the decoder by EMA after every step. With a
            ``head`` the snapshot must be of ``ModuleDict({"decoder": decoder, "head": head})``.
        head: optional module ``head(queries (B, Q, D), classes: list[str]) -> (B, Q, K)``
            adding ``classes`` logits to every layer's output (trained with the decoder);
            then ``labels[i]`` ((T_i,) int64) are the targets' labels.

    Crops without any target part are skipped when batches are drawn. Returns the loss of
    every step.
    """
    if (teacher is None) != (make_targets is None):
        raise ValueError("teacher and make_targets go together")
    if labels is not None and head is None:
        raise ValueError("labels need a head")
    feats_all, objs_all = stack_crops(crops, torch.float16)
    classes = [c.object_class for c in crops]
    gen = torch.Generator().manual_seed(config.seed)
    decoder.to(device).train()
    # the snapshot of a decoder with a head is taken of ModuleDict(decoder=..., head=...)
    student = decoder if head is None else torch.nn.ModuleDict({"decoder": decoder, "head": head})
    params = list(student.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(s, config.steps) / max(config.steps, 1))))
    tgts: list[torch.Tensor] = []
    labs: list[torch.Tensor] | None = None
    keep: list[int] = []

    def set_targets(t: Sequence[np.ndarray], lb: Sequence[np.ndarray] | None) -> None:
        nonlocal tgts, labs, keep
        tgts = [torch.as_tensor(np.asarray(x, bool)) for x in t]
        labs = [torch.as_tensor(np.asarray(x, np.int64)) for x in lb] if lb is not None else None
        keep = [i for i, x in enumerate(tgts) if len(x)]
        if not keep:
            raise ValueError("no crop has a target part to train on")

    if make_targets is None:
        set_targets(targets, labels)

    def step_fn(model: torch.nn.Module, batch, step: int) -> torch.Tensor:
        if teacher is not None and step > 0:
            teacher.update(student)  # the snapshot follows the decoder after every optimizer step
        if make_targets is not None and step % max(1, refresh_every) == 0:
            set_targets(*make_targets(teacher.model))
            decoder.train()
        pick = torch.randint(len(keep), (min(config.batch_size, len(keep)),), generator=gen)
        idx = [keep[int(i)] for i in pick]
        f, o = feats_all[idx].to(device).float(), objs_all[idx].to(device)
        t = [tgts[i].to(device) for i in idx]
        lb = [labs[i].to(device) for i in idx] if labs is not None else None
        if augment is not None:
            f, o, t, lb = augment_batch(f, o, t, augment, gen, lb)
        net = model["decoder"] if head is not None else model
        outputs = net(f, o)
        if head is not None:
            cls = [classes[i] for i in idx]
            outputs = [{**out, "classes": model["head"](out["queries"], cls)} for out in outputs]
        return set_loss(outputs, o, t, config, lb)

    result = fit(student, opt, step_fn, EngineConfig(steps=config.steps, device=device, max_grad_norm=1.0,
                                                     progress=progress, desc=desc, distributed=False),
                 scheduler=sched, rngs={"batches": gen})
    if teacher is not None and config.steps > 0:
        teacher.update(student)
    losses = [float(v) for v in result.losses]
    decoder.eval()
    return losses
