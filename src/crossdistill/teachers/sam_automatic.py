"""The pieces of SAM's automatic mask generator that do not depend on the model.

SAM (Kirillov et al., 2023) makes class-agnostic masks of a whole image by prompting its
decoder with a regular grid of points and keeping, for every point, each of its three
multimask outputs that passes the generator's filters. The filters and their reference
defaults (the ``SamAutomaticMaskGenerator`` of the SAM release, also the defaults of
``transformers``' mask-generation pipeline):

* predicted IoU above ``pred_iou_thresh`` (0.88);
* stability score above ``stability_score_thresh`` (0.95): the IoU of the mask thresholded
  at ``mask_threshold +- stability_score_offset`` (0.0 +- 1.0);
* box non-maximum suppression over all masks of a crop at ``box_nms_thresh`` (0.7),
  the higher predicted IoU kept;
* optional crop layers (``crop_n_layers``, 0): layer i cuts the image into 2^i x 2^i
  overlapping crops (``crop_overlap_ratio`` 512/1500), each prompted with a grid of
  ``points_per_side / crop_n_points_downscale_factor^i`` points; masks touching a crop edge
  that is not an image edge are dropped, and masks of different crops pass one more box NMS
  (``crop_nms_thresh``, 0.7) that prefers masks from smaller crops;
* ``min_mask_region_area`` (0): disconnected islands and holes smaller than this are removed,
  and a final box NMS prefers the masks that did not change.

Every function here works on plain tensors or arrays, so each filter can be tested with
known logits (``tests/teachers/test_sam_automatic.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from crossdistill.teachers._ops import masks_to_boxes, nms


def point_grid(n_per_side: int) -> np.ndarray:
    """(n^2, 2) float32 (x, y) cell centres of an n x n grid over [0, 1]^2, row by row."""
    c = (np.arange(n_per_side, dtype=np.float64) + 0.5) / n_per_side
    xs, ys = np.meshgrid(c, c, indexing="xy")
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1).astype(np.float32)


def crop_boxes(height: int, width: int, n_layers: int, overlap_ratio: float) -> tuple[list[tuple[int, int, int, int]],
                                                                                       list[int]]:
    """The crops of SAM's crop layers over an image.

    Layer 0 is the whole image; layer i >= 1 has 2^i x 2^i crops overlapping by
    ``overlap_ratio * min(H, W) * 2 / 2^i`` pixels.

    Returns:
        boxes: (x0, y0, x1, y1) per crop (exclusive max); layers: the layer of each.
    """
    boxes = [(0, 0, width, height)]
    layers = [0]
    short = min(height, width)
    for layer in range(1, n_layers + 1):
        n = 2 ** layer
        overlap = int(overlap_ratio * short * (2 / n))
        cw = int(math.ceil((overlap * (n - 1) + width) / n))
        ch = int(math.ceil((overlap * (n - 1) + height) / n))
        for y in [int((ch - overlap) * i) for i in range(n)]:
            for x in [int((cw - overlap) * i) for i in range(n)]:
                boxes.append((x, y, min(x + cw, width), min(y + ch, height)))
                layers.append(layer)
    return boxes, layers


def near_crop_edge(boxes: torch.Tensor, crop: tuple[int, int, int, int], image: tuple[int, int, int, int],
                   atol: float = 20.0) -> torch.Tensor:
    """(N,) bool: does a mask box (in crop coordinates) touch a crop edge that is not an image edge?

    Args:
        boxes: (N, 4) xyxy boxes in crop pixels.
        crop: the crop's box in image pixels; image: the image's box (0, 0, W, H).
        atol: tolerance in pixels, as SAM.
    """
    crop_t = torch.as_tensor(crop, dtype=torch.float32, device=boxes.device)
    img_t = torch.as_tensor(image, dtype=torch.float32, device=boxes.device)
    shift = torch.tensor([crop[0], crop[1], crop[0], crop[1]], dtype=torch.float32, device=boxes.device)
    b = boxes.float() + shift
    at_crop = torch.isclose(b, crop_t[None], atol=atol, rtol=0)
    at_image = torch.isclose(b, img_t[None], atol=atol, rtol=0)
    return (at_crop & ~at_image).any(dim=1)


def filter_outputs(logits: torch.Tensor, iou: torch.Tensor, pred_iou_thresh: float, stability_thresh: float,
                   mask_threshold: float, stability_offset: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                            torch.Tensor]:
    """SAM's per-mask filters on decoded logits.

    Args:
        logits: (K, H, W) mask logits at crop resolution; iou: (K,) predicted IoUs.

    Returns:
        keep (K,) bool (predicted IoU and stability above their thresholds, mask not empty),
        masks (K, H, W) bool, stability (K,), iou (K,).
    """
    from crossdistill.teachers._ops import stability_score

    stab = stability_score(logits, mask_threshold, stability_offset)
    masks = logits > mask_threshold
    keep = (iou > pred_iou_thresh) & (stab > stability_thresh) & masks.flatten(1).any(1)
    return keep, masks, stab, iou


def suppress(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by box NMS of the masks' boxes, by decreasing score."""
    if len(masks) == 0:
        return torch.zeros(0, dtype=torch.long, device=masks.device)
    return nms(masks_to_boxes(masks), scores, iou_threshold)


def remove_small_regions(mask: np.ndarray, area: int) -> tuple[np.ndarray, bool]:
    """SAM's post-processing of one mask: fill holes, then drop islands, smaller than ``area`` pixels.

    Returns:
        the cleaned (H, W) bool mask and whether it changed.
    """
    from scipy.ndimage import label

    out = mask.copy()
    for fill_holes in (True, False):
        work = ~out if fill_holes else out
        lab, n = label(work)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        small = np.flatnonzero(sizes < area) + 1
        if len(small) == 0:
            continue
        if fill_holes:
            out = out | np.isin(lab, small)
        else:
            keep = np.setdiff1d(np.arange(1, n + 1), small)
            if len(keep) == 0:  # everything is small: keep the largest island, as SAM does
                keep = np.array([int(np.argmax(sizes)) + 1])
            out = np.isin(lab, keep)
    return out, bool((out != mask).any())
