"""Box / mask helpers written in torch (no torchvision here)."""

from __future__ import annotations

import numpy as np
import torch

from crossdistill.teachers._ops import (
    batched_nms,
    box_iou,
    foreground_box,
    masks_to_boxes,
    nms,
    resize_padded,
    select_detections,
    stability_score,
)


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 9, 10]])
    scores = torch.tensor([0.8, 0.9, 0.7, 0.1])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # different groups never suppress each other
    assert sorted(batched_nms(boxes, scores, torch.tensor([0, 1, 0, 0]), 0.5).tolist()) == [0, 1, 2]
    assert nms(boxes[:0], scores[:0], 0.5).numel() == 0
    iou = box_iou(boxes, boxes)
    torch.testing.assert_close(iou.diagonal(), torch.ones(4))


def test_masks_to_boxes_exclusive_max_and_empty():
    m = torch.zeros(2, 8, 10, dtype=torch.bool)
    m[0, 2:5, 3:7] = True
    assert masks_to_boxes(m).tolist() == [[3.0, 2.0, 7.0, 5.0], [0.0, 0.0, 0.0, 0.0]]


def test_stability_and_detections():
    logits = torch.full((2, 4, 4), -5.0)
    logits[0] = 5.0  # stable everywhere
    logits[1, :2] = 0.5  # only above the low threshold
    s = stability_score(logits, 0.0, 1.0)
    assert s.tolist() == [1.0, 0.0]
    scores = torch.tensor([0.9, 0.05, 0.8, 0.7])
    boxes = torch.tensor([[0.0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4], [2, 2, 2, 5]])  # last is degenerate
    keep = select_detections(scores, torch.tensor([0, 0, 1, 1]), boxes, 0.1, 0.5, None)
    assert keep.tolist() == [0, 2]


def test_resize_padded_maps_valid_region_to_output():
    # a 4x4 map whose left half covers the valid 32x16 region of a 32x32 padded input
    maps = torch.zeros(1, 1, 4, 4)
    maps[..., :2] = 1.0
    out = resize_padded(maps, (32, 16), (32, 32), (20, 10))
    assert out.shape == (1, 1, 20, 10)
    assert out[..., :, :8].min() > 0.99


def test_foreground_box_margin():
    fg = np.zeros((20, 30), bool)
    fg[5:10, 10:20] = True
    assert foreground_box(fg, 0.0) == (10, 5, 20, 10)
    assert foreground_box(fg, 0.1) == (9, 4, 21, 11)
    assert foreground_box(np.zeros((4, 4), bool)) is None
