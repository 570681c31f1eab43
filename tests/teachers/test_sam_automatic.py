"""SAM's automatic mask generator, driven through a decoder stub at the model boundary.

The stub speaks ``SamModel``'s protocol (``get_image_embeddings``, then a forward with
``image_embeddings``, ``input_points``, ``multimask_output`` returning ``pred_masks`` and
``iou_scores``); it returns logits we choose for each prompt, so every filter of the
generator can be checked against masks worked out by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crossdistill.teachers.sam import SAMPART3D_SAM_SETTINGS, AutoMaskSettings, SamMaskTeacher
from crossdistill.teachers.sam_automatic import crop_boxes, near_crop_edge, point_grid, remove_small_regions
from crossdistill.types import Cameras, Views

S = 64  # image size = network input size: the low-res logits map to pixels one to one


class StubSam(torch.nn.Module):
    """A ``SamModel`` stand-in: ``decoder(x, y)`` gives the (3, S, S) logits and (3,) IoUs of a prompt."""

    def __init__(self, decoder) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(vision_config=SimpleNamespace(image_size=S), to_json_string=lambda **k: "stub")
        self.decoder = decoder
        self.prompts: list[tuple[float, float]] = []

    def get_image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.zeros((len(pixel_values), 1, 4, 4))

    def forward(self, image_embeddings, input_points, input_labels, multimask_output=True):
        logits, ious = [], []
        for x, y in input_points[0, :, 0].tolist():
            self.prompts.append((x, y))
            lg, iou = self.decoder(x, y)
            logits.append(torch.as_tensor(lg, dtype=torch.float32))
            ious.append(torch.as_tensor(iou, dtype=torch.float32))
        return SimpleNamespace(pred_masks=torch.stack(logits)[None], iou_scores=torch.stack(ious)[None])


def _views(fg: np.ndarray) -> Views:
    H, W = fg.shape
    face = np.where(fg, 0, -1).astype(np.int32)[None]
    rgb = np.where(fg[..., None], 100, 255).astype(np.uint8)[None]
    K = np.array([[[W, 0, W / 2], [0, W, H / 2], [0, 0, 1]]], float)
    w2c = np.eye(4)[None].copy()
    w2c[0, 2, 3] = 2.0
    normal = np.zeros((1, H, W, 3), np.float32)
    return Views(Cameras(K, w2c, W, H, ("v0",)), face, np.where(fg, 1.0, np.inf).astype(np.float32)[None],
                 normal, rgb)


def _box(x0, y0, x1, y1, inside=10.0) -> np.ndarray:
    lg = np.full((S, S), -10.0)
    lg[y0:y1, x0:x1] = inside
    return lg


def _teacher(decoder, **settings) -> tuple[SamMaskTeacher, StubSam]:
    model = StubSam(decoder)
    return SamMaskTeacher(model, settings=AutoMaskSettings(**settings)), model


ALL = np.ones((S, S), bool)


def test_each_of_the_three_outputs_is_a_mask_and_iou_filter_is_strict():
    # one prompt; outputs: a 10x10 box (iou 0.95), a 20x20 box (iou 0.88 = threshold: dropped), the image (0.99)
    dec = lambda x, y: (np.stack([_box(0, 0, 10, 10), _box(0, 0, 20, 20), _box(0, 0, S, S)]), [0.95, 0.88, 0.99])
    teacher, model = _teacher(dec, points_per_side=1)
    ms = teacher.masks(_views(ALL))[0]
    assert len(model.prompts) == 1
    assert sorted(int(m.sum()) for m in ms.masks) == [100, S * S]
    np.testing.assert_allclose(ms.scores, [0.99, 0.95])  # best first
    assert ms.level.tolist() == [2, 0]  # which output each mask was


def test_stability_filter_matches_hand_computed_scores():
    # logits 10 inside a 10x10 core, 0.5 on a ring out to 20x20: above +1 -> 100 px, above -1 -> 400 px
    ring = _box(0, 0, 20, 20, inside=0.5)
    ring[:10, :10] = 10.0
    dec = lambda x, y: (np.stack([ring, _box(0, 0, 30, 30), _box(0, 0, 40, 40)]), [0.99, 0.99, 0.99])
    kept = _teacher(dec, points_per_side=1, stability_score_thresh=0.24)[0].masks(_views(ALL))[0]
    dropped = _teacher(dec, points_per_side=1, stability_score_thresh=0.25)[0].masks(_views(ALL))[0]
    assert len(kept) == 3 and len(dropped) == 2  # stability 100/400 = 0.25: strict >
    # the kept ring mask is the logits > 0 region: 400 px
    assert sorted(int(m.sum()) for m in kept.masks) == [400, 900, 1600]


def test_box_nms_runs_over_all_masks_of_all_prompts():
    # 4 prompts (2x2 grid); every prompt gives the same 3 boxes with IoUs depending on the prompt
    def dec(x, y):
        bonus = 0.01 * (x > S / 2) + 0.002 * (y > S / 2)
        return (np.stack([_box(0, 0, 16, 16), _box(0, 0, 17, 16), _box(32, 32, 64, 64)]),
                [0.90 + bonus, 0.91 + bonus, 0.92 + bonus])
    teacher, model = _teacher(dec, points_per_side=2)
    ms = teacher.masks(_views(ALL))[0]
    assert len(model.prompts) == 4
    # the two nearly equal boxes (IoU 16/17 > 0.7) collapse to one across outputs and prompts
    assert sorted(int(m.sum()) for m in ms.masks) == [16 * 17, 32 * 32]
    np.testing.assert_allclose(sorted(ms.scores), [0.922, 0.932], atol=1e-6)  # from the best prompt (x, y > S/2)
    loose = _teacher(dec, points_per_side=2, box_nms_thresh=0.99)[0].masks(_views(ALL))[0]
    assert sorted(int(m.sum()) for m in loose.masks) == [16 * 16, 16 * 17, 32 * 32]


def test_prompts_only_on_the_object_and_masks_cut_to_it():
    fg = np.zeros((S, S), bool)
    fg[:, : S // 2] = True  # left half is the object
    dec = lambda x, y: (np.stack([_box(0, 0, S, S), _box(0, 0, 8, 8), _box(0, 0, 4, 4)]), [0.99, 0.98, 0.97])
    teacher, model = _teacher(dec, points_per_side=4)
    ms = teacher.masks(_views(fg))[0]
    assert len(model.prompts) == 8 and all(x < S / 2 for x, _ in model.prompts)
    assert not (ms.masks & ~fg).any()
    everywhere, model2 = _teacher(dec, points_per_side=4, restrict_to_foreground=False)
    everywhere.masks(_views(fg))
    assert len(model2.prompts) == 16


def test_sampart3d_background_filter():
    fg = np.zeros((S, S), bool)
    fg[:, : S // 2] = True
    # a mask over the object plus 8 background columns covers 8*64/2048 = 25% of the background
    dec = lambda x, y: (np.stack([_box(0, 0, 40, S), _box(0, 0, 34, S), _box(0, 0, 8, 8)]), [0.99, 0.98, 0.97])
    ms = _teacher(dec, points_per_side=1, restrict_to_foreground=False, box_nms_thresh=1.0,
                  max_background_cover=0.1)[0].masks(_views(fg))[0]
    # 40 columns: 25% of the background -> dropped; 34 columns: 6.25% -> kept, cut to the object
    assert sorted(int(m.sum()) for m in ms.masks) == [64, 32 * S]
    assert SAMPART3D_SAM_SETTINGS.max_background_cover == 0.1 and SAMPART3D_SAM_SETTINGS.pred_iou_thresh == 0.9


def test_min_region_area_fills_holes_and_drops_islands():
    m = np.zeros((20, 20), bool)
    m[2:12, 2:12] = True
    m[5, 5] = False  # a 1-px hole
    m[15:17, 15:17] = True  # a 4-px island
    out, changed = remove_small_regions(m, area=5)
    assert changed and out[5, 5] and not out[15:17, 15:17].any() and out.sum() == 100
    same, changed2 = remove_small_regions(out, area=5)
    assert not changed2 and np.array_equal(same, out)

    hole = _box(0, 0, 20, 20)
    hole[8, 8] = -10.0
    dec = lambda x, y: (np.stack([hole, _box(30, 30, 40, 40), _box(0, 0, S, S)]), [0.99, 0.98, 0.97])
    ms = _teacher(dec, points_per_side=1, min_mask_region_area=4)[0].masks(_views(ALL))[0]
    assert sorted(int(m.sum()) for m in ms.masks) == [100, 400, S * S]  # the hole is filled


def test_crop_boxes_and_crop_edge_filter_by_hand():
    boxes, layers = crop_boxes(100, 100, 1, 0.2)
    # overlap = int(0.2 * 100 * 2 / 2) = 20; crop side = ceil((20 + 100) / 2) = 60; starts 0 and 40
    assert boxes == [(0, 0, 100, 100), (0, 0, 60, 60), (40, 0, 100, 60), (0, 40, 60, 100), (40, 40, 100, 100)]
    assert layers == [0, 1, 1, 1, 1]
    crop, image = (0, 0, 60, 60), (0, 0, 100, 100)
    b = torch.tensor([[5.0, 5, 30, 30],      # inside: kept
                      [10.0, 10, 60, 30],    # touches the crop's right edge (an inner edge): dropped
                      [0.0, 0, 20, 20]])     # touches only image edges: kept
    assert near_crop_edge(b, crop, image).tolist() == [False, True, False]
    g = point_grid(2)
    np.testing.assert_allclose(g, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])


def test_crop_layers_drop_masks_cut_by_inner_crop_edges_and_prefer_small_crops():
    # every prompt returns a mask that is a 6x6 box around the prompt, so each crop's masks are local
    def dec(x, y):
        xi, yi = int(x), int(y)
        return (np.stack([_box(max(xi - 3, 0), max(yi - 3, 0), xi + 3, yi + 3), _box(0, 0, S, S), _box(0, 0, S, S)]),
                [0.99, 0.5, 0.5])
    teacher, model = _teacher(dec, points_per_side=2, crop_n_layers=1, crop_overlap_ratio=0.25)
    ms = teacher.masks(_views(ALL))[0]
    # 1 full image + 4 crops; 4 prompts each
    assert len(model.prompts) == 4 * 5
    # crops of 40 px starting at 0 and 24 (overlap 16): in each crop only the prompt in the image corner
    # (crop coords (10, 10)) gives a box far from the crop's inner edges; the other three are dropped.
    # With the 4 masks of the whole image (boxes around 16 and 48) that leaves 8.
    assert len(ms) == 8 and (ms.scores > 0.9).all()
    for m in ms.masks:
        ys, xs = np.nonzero(m)
        assert xs.max() - xs.min() < 8 and ys.max() - ys.min() < 8  # only local masks survive


@pytest.mark.parametrize("bad", [dict(points_per_side=1, pred_iou_thresh=1.0)])
def test_nothing_passes_gives_an_empty_set(bad):
    dec = lambda x, y: (np.stack([_box(0, 0, 8, 8)] * 3), [0.9, 0.9, 0.9])
    ms = _teacher(dec, **bad)[0].masks(_views(ALL))[0]
    assert len(ms) == 0 and ms.masks.shape == (0, S, S)
