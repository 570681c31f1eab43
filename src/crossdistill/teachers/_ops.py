"""Small tensor ops shared by the teachers: boxes, NMS, mask post-processing.

torchvision is not available here, so box NMS is written in torch.
Boxes are xyxy in pixels with exclusive max edges (a one-pixel mask at (x, y) has box
``(x, y, x + 1, y + 1)``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "box_iou",
    "nms",
    "batched_nms",
    "masks_to_boxes",
    "cxcywh_to_xyxy",
    "clip_boxes",
    "stability_score",
    "resize_padded",
    "foreground_box",
    "select_detections",
]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4), (M, 4) xyxy -> (N, M) IoU (0 where both boxes are empty)."""
    area_a = (a[:, 2] - a[:, 0]).clamp_min(0) * (a[:, 3] - a[:, 1]).clamp_min(0)
    area_b = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) xyxy.
        scores: (N,).
        iou_threshold: a box is dropped when its IoU with a kept higher-scoring box is above this.

    Returns:
        (K,) int64 indices of kept boxes, by decreasing score.

    Example:
        >>> b = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
        >>> nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True)
    iou = box_iou(boxes[order], boxes[order])
    above = (iou > iou_threshold).cpu()
    sup = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if sup[i]:
            continue
        keep.append(i)
        sup |= above[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each group (class / level) only: boxes of different groups never suppress each other."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = (boxes.max() - boxes.min()).abs() + 1
    shifted = boxes + (groups.to(boxes.dtype) * span)[:, None]
    return nms(shifted, scores, iou_threshold)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) float32 xyxy with exclusive max; zeros for empty masks."""
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
    H, W = masks.shape[-2:]
    rows, cols = masks.any(2), masks.any(1)  # (N, H), (N, W)
    ys = torch.arange(H, device=masks.device)
    xs = torch.arange(W, device=masks.device)
    y0 = torch.where(rows, ys, H).amin(1)
    y1 = torch.where(rows, ys, -1).amax(1) + 1
    x0 = torch.where(cols, xs, W).amin(1)
    x1 = torch.where(cols, xs, -1).amax(1) + 1
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where(rows.any(1)[:, None], boxes, torch.zeros_like(boxes))


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre/size -> (..., 4) corners."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clamp xyxy boxes to ``[0, width] x [0, height]``."""
    return torch.stack(
        [boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
         boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], -1)


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """SAM's stability: IoU of the masks thresholded at ``threshold +- offset``.

    (N, H, W) logits -> (N,) in [0, 1] (1 for a mask empty at both thresholds).
    """
    inter = (logits > threshold + offset).flatten(1).sum(1, dtype=torch.int64)
    union = (logits > threshold - offset).flatten(1).sum(1, dtype=torch.int64)
    return torch.where(union > 0, inter.float() / union.clamp_min(1).float(), torch.ones_like(inter, dtype=torch.float32))


def resize_padded(
    maps: torch.Tensor, valid_hw: tuple[float, float], padded_hw: tuple[int, int], out_hw: tuple[int, int]
) -> torch.Tensor:
    """Map network-output maps of a padded input back to the original image, in one interpolation.

    The network saw the image resized to ``valid_hw`` pixels at the top-left of a
    ``padded_hw`` canvas; ``maps`` (N, C, h, w) cover the whole canvas. The canvas is
    resized so that the valid region becomes ``out_hw`` and then cropped, which avoids
    materialising the canvas at network resolution.

    Returns:
        (N, C, out_h, out_w) float32.
    """
    vh, vw = float(valid_hw[0]), float(valid_hw[1])
    oh, ow = int(out_hw[0]), int(out_hw[1])
    th = max(oh, int(round(oh * padded_hw[0] / vh)))
    tw = max(ow, int(round(ow * padded_hw[1] / vw)))
    return F.interpolate(maps.float(), size=(th, tw), mode="bilinear", align_corners=False)[..., :oh, :ow]


def foreground_box(foreground: np.ndarray, margin: float = 0.1) -> tuple[int, int, int, int] | None:
    """(H, W) bool -> (x0, y0, x1, y1) bounding box grown by ``margin`` x its size, or None if empty."""
    ys, xs = np.nonzero(foreground)
    if len(ys) == 0:
        return None
    H, W = foreground.shape
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = int(np.ceil(margin * (x1 - x0))), int(np.ceil(margin * (y1 - y0)))
    return max(0, x0 - mx), max(0, y0 - my), min(W, x1 + mx), min(H, y1 + my)


def select_detections(
    scores: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, score_threshold: float,
    nms_thresh: float | None, max_detections: int | None,
) -> torch.Tensor:
    """Indices of detections above ``score_threshold`` with non-degenerate boxes, after
    per-label NMS (skipped when ``nms_thresh`` is None), best first, at most ``max_detections``.

    Args:
        scores: (N,) in [0, 1]; labels: (N,) int; boxes: (N, 4) xyxy.
    """
    ok = (scores > score_threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    idx = torch.nonzero(ok).flatten()
    if nms_thresh is not None and len(idx):
        idx = idx[batched_nms(boxes[idx], scores[idx], labels[idx], nms_thresh)]
    else:
        idx = idx[torch.argsort(scores[idx], descending=True)]
    return idx if max_detections is None else idx[:max_detections]
