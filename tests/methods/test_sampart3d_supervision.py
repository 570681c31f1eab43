"""Supervision as SAMPart3D keeps it: every mask with its own sigma, a pixel in every mask that
contains it; the two pair samplers; a field trained on nested masks groups by scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdistill.methods.sampart3d.scale import mask_scale
from crossdistill.methods.sampart3d.supervision import build_supervision
from crossdistill.methods.sampart3d.train import (GroupingTrainConfig, groups_at_scale, released_groups,
                                                  train_grouping_field)
from crossdistill.teachers.base import MaskSet
from crossdistill.teachers.offline_masks import LevelMasks
from crossdistill.types import Correspondence

H, W = 4, 8  # 32 pixels, pixel i sees point i


def _corr(n_views: int = 1) -> tuple[Correspondence, np.ndarray]:
    p2p = np.tile(np.arange(H * W, dtype=np.int32).reshape(H, W), (n_views, 1, 1))
    pts = np.c_[np.tile(np.arange(W), H) / W, np.repeat(np.arange(H), W) / W, np.zeros(H * W)]
    pix = np.tile(np.arange(H * W, dtype=np.int32), (n_views, 1))
    return Correspondence(p2p, pix, np.ones((n_views, H * W), np.float32), W, H), pts


def test_nested_masks_are_all_kept_with_their_own_sigma():
    corr, pts = _corr()
    whole = np.ones((H, W), bool)
    half = np.zeros((H, W), bool)
    half[:, : W // 2] = True  # a half-object mask at the same "level" as the whole one
    ms = MaskSet(np.stack([whole, half]), np.array([0.9, 0.8], np.float32), np.zeros(2, np.int8))
    sup = build_supervision([ms], corr, pts, min_pixels=4)
    assert sup.n_masks == 2
    # sigma of each mask from all of its points, not from the pixels some other mask left it
    assert sup.scale[0] == pytest.approx(mask_scale(pts, 1.0))
    assert sup.scale[1] == pytest.approx(mask_scale(pts[half.reshape(-1)], 1.0))
    vs = sup.views[0]
    left = half.reshape(-1)[vs.point]
    assert vs.mask.shape == (2, H * W)
    assert (vs.mask[0, left] == 1).all() and (vs.mask[1, left] == 0).all()  # finest first: half, then whole
    assert (vs.mask[0, ~left] == 0).all() and (vs.mask[1, ~left] == -1).all()
    np.testing.assert_allclose(sup.score, [0.9, 0.8])
    assert sup.area.tolist() == [H * W, H * W // 2]
    # at the half's scale the halves are two groups; above it, one
    sc = np.where(vs.mask >= 0, sup.scale[np.maximum(vs.mask, 0)], np.inf)
    g_fine, _ = groups_at_scale(vs.mask, sc, sup.scale[1])
    g_coarse, _ = groups_at_scale(vs.mask, sc, sup.scale[1] + 1e-6)
    assert len(np.unique(g_fine)) == 2 and len(np.unique(g_coarse)) == 1


def test_level_maps_overlapping_masks_and_filters():
    corr, pts = _corr()
    lm = np.full((2, H, W), -1, np.int32)
    lm[0] = 0  # level 0: the whole
    lm[1, :, :4], lm[1, :, 4:] = 0, 1  # level 1: two halves
    sup = build_supervision([LevelMasks(lm, np.array([1, 2]))], corr, pts, min_pixels=4)
    assert sup.n_masks == 3 and sup.views[0].mask.shape == (2, H * W)
    # too-coarse masks dropped (the released code drops sigma >= 2)
    cut = build_supervision([LevelMasks(lm, np.array([1, 2]))], corr, pts, min_pixels=4,
                            max_scale=float(np.sort(sup.scale)[-1]) - 1e-9)
    assert cut.n_masks == 2 and cut.views[0].mask.shape == (1, H * W)  # the halves only
    # min_pixels and empty views
    tiny = np.zeros((1, H, W), bool)
    tiny[0, 0, :2] = True
    assert build_supervision([MaskSet(tiny, np.ones(1, np.float32), np.zeros(1, np.int8))], corr, pts,
                             min_pixels=4).n_masks == 0
    assert build_supervision([MaskSet.empty(H, W)], corr, pts).n_masks == 0


def test_erosion_follows_the_released_rule():
    corr, pts = _corr()
    m = np.zeros((1, H, W), bool)
    m[0, :, :4] = True
    sup = build_supervision([MaskSet(m, np.ones(1, np.float32), np.zeros(1, np.int8))], corr, pts, min_pixels=1,
                            erode=True)
    # >= 5 of the 3x3 neighbourhood inside (zero padding): the corners (4 of 9) and the boundary column
    # next to the outside (>= 6 of 9 inside for inner rows, 4 at the rows' ends) are judged pixel by pixel
    kept = np.zeros(H * W, bool)
    kept[sup.views[0].point[(sup.views[0].mask >= 0).any(0)]] = True
    kept = kept.reshape(H, W)
    assert not kept[0, 0] and not kept[-1, 0] and kept[1, 1] and not kept[:, 4:].any()


def test_released_sampler_matches_the_hand_computed_cdf():
    # 3 pixels; pixel 0 in masks a (small) < b; pixel 1 in b only; pixel 2 in a < b
    a, b = 0, 1
    masks = np.array([[a, b, a], [b, -1, b]])
    scales = np.array([[0.5, 2.0, 0.5], [2.0, np.inf, 2.0]])
    share = {a: 0.25, b: 0.75}
    log_share = np.where(masks >= 0, np.log([[share[a], share[b], share[a]], [share[b], 1, share[b]]]), 0.0)
    # weights of pixel 0: log(.25) / (log(.25) + log(.75)) = 0.828 for a, 0.172 for b
    w_a = np.log(0.25) / (np.log(0.25) + np.log(0.75))
    g, s = released_groups(masks, scales, log_share, u_mask=w_a - 0.01, u_scale=0.5)
    assert g.tolist() == [a, b, a] and s[0] == pytest.approx(0.25) and s[1] == pytest.approx(1.0)
    g, s = released_groups(masks, scales, log_share, u_mask=w_a + 0.01, u_scale=0.5)
    assert g.tolist() == [b, b, b]
    assert s[0] == pytest.approx(0.5 + 0.5 * (2.0 - 0.5))  # between a's and b's sigma
    assert s[1] == pytest.approx(1.0)  # a pixel's only mask: from 0 to its sigma


@pytest.mark.parametrize("sampling", ["released", "shared_scale"])
def test_field_groups_nested_masks_by_scale(sampling):
    """Two views of 32 points: a whole mask and two half masks. At the finest scale the halves
    separate; at the coarsest the whole is one group."""
    torch.manual_seed(0)
    corr, pts = _corr(2)
    whole = np.ones((H, W), bool)
    left = np.zeros((H, W), bool)
    left[:, :4] = True
    sets = [MaskSet(np.stack([whole, left, ~left]), np.ones(3, np.float32), np.zeros(3, np.int8))] * 2
    sup = build_supervision(sets, corr, pts, min_pixels=4)
    cfg = GroupingTrainConfig(iterations=150, images_per_iter=2, pixels_per_image=32, width=32, out_dim=8,
                              pair_sampling=sampling)
    field = train_grouping_field(sup, pts, np.tile([0.0, 0.0, 1.0], (len(pts), 1)), np.full((len(pts), 3), 128),
                                 cfg, progress=False)
    lo, hi = field.features(0.0), field.features(2.0)
    L = left.reshape(-1)

    def spread(f):  # between-half distance of the half means, and the largest within-half spread
        between = np.linalg.norm(f[L].mean(0) - f[~L].mean(0))
        within = max(np.linalg.norm(f[L] - f[L].mean(0), axis=1).max(), np.linalg.norm(f[~L] - f[~L].mean(0), axis=1).max())
        return between, within

    b_lo, w_lo = spread(lo)
    b_hi, _ = spread(hi)
    assert b_lo > 0.5 and b_lo > 2 * w_lo, "at the finest scale the halves are apart"
    assert b_hi < 0.5 * b_lo, "at the coarsest scale the whole groups them"


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 14])
def test_short_training_runs_have_a_valid_schedule(steps):
    """A few steps (a quick look, a timing run) train without the one-cycle schedule failing,
    with a finite loss at every step."""
    corr, pts = _corr(2)
    whole = np.ones((H, W), bool)
    left = np.zeros((H, W), bool)
    left[:, :4] = True
    sets = [MaskSet(np.stack([whole, left]), np.ones(2, np.float32), np.zeros(2, np.int8))] * 2
    sup = build_supervision(sets, corr, pts, min_pixels=4)
    cfg = GroupingTrainConfig(iterations=steps, images_per_iter=2, pixels_per_image=16, width=16, out_dim=4)
    field = train_grouping_field(sup, pts, np.tile([0.0, 0.0, 1.0], (len(pts), 1)), np.full((len(pts), 3), 128),
                                 cfg, progress=False)
    assert len(field.losses) == steps and np.isfinite(field.losses).all()


def test_group_balanced_drawing_gives_a_small_part_its_share():
    from crossdistill.methods.sampart3d.scale import ScaleQuantiles
    from crossdistill.methods.sampart3d.train import _ImageSampler

    corr, pts = _corr()
    small = np.zeros((H, W), bool)
    small[0, :2] = True  # 2 of 32 pixels
    half = np.zeros((H, W), bool)
    half[:, : W // 2] = True  # holds the small part
    whole = np.ones((H, W), bool)  # every pixel has a group at every scale
    ms = MaskSet(np.stack([small, half, whole]), np.ones(3, np.float32), np.zeros(3, np.int8))
    sup = build_supervision([ms], corr, pts, min_pixels=1)
    quant = ScaleQuantiles.fit(sup.scale[:1])  # every step's scale: the small mask's sigma

    def small_share(balance: float) -> float:
        cfg = GroupingTrainConfig(pixels_per_image=2000, group_balance=balance)
        sampler = _ImageSampler(sup, quant, cfg, np.random.default_rng(0))
        groups = np.concatenate([sampler.draw(0)[1] for _ in range(5)])
        assert np.unique(groups).tolist() == [0, 1, 2]  # small (2 pixels), half minus small (14), the rest (16)
        return float((groups == 0).mean())

    assert abs(small_share(0.0) - 2 / 32) < 0.02  # uniform over the pixels, as the paper
    assert abs(small_share(1.0) - 1 / 3) < 0.03  # every group the same share
    assert 2 / 32 + 0.05 < small_share(0.5) < 1 / 3 - 0.05
    with pytest.raises(ValueError, match="group_balance"):
        GroupingTrainConfig(group_balance=1.5)


def test_group_balanced_drawing_weighs_every_pixel_by_its_group_size():
    """Drawing through the view's mask sets gives each pixel probability n^-a (n: its group's pixel count
    at the step's scale), computed here pixel by pixel, on overlapping masks of several scales."""
    from crossdistill.methods.sampart3d.scale import ScaleQuantiles
    from crossdistill.methods.sampart3d.train import _ImageSampler

    corr, pts = _corr()
    rng = np.random.default_rng(3)
    masks = []
    for _ in range(7):  # random rectangles, overlapping and nested
        m = np.zeros((H, W), bool)
        r, c = rng.integers(0, H - 1), rng.integers(0, W - 2)
        m[r: r + rng.integers(1, H - r + 1), c: c + rng.integers(2, W - c + 1)] = True
        masks.append(m)
    masks.append(np.ones((H, W), bool))  # every pixel has a group at every scale
    ms = MaskSet(np.stack(masks), np.ones(len(masks), np.float32), np.zeros(len(masks), np.int8))
    sup = build_supervision([ms], corr, pts, min_pixels=1)
    vs = sup.views[0]
    scales = np.where(vs.mask >= 0, sup.scale[np.maximum(vs.mask, 0)], np.inf)
    s = float(np.median(sup.scale))
    quant = ScaleQuantiles.fit(np.array([s]))  # every step's scale: s
    group, _ = groups_at_scale(vs.mask, scales, s)
    for a in (0.5, 1.0):
        size = np.bincount(group)[group].astype(float)
        expect = size ** -a / (size ** -a).sum()  # per pixel
        sampler = _ImageSampler(sup, quant, GroupingTrainConfig(pixels_per_image=4000, group_balance=a),
                                np.random.default_rng(0))
        draws = [sampler.draw(0) for _ in range(10)]
        picked = np.concatenate([d[0] for d in draws])  # pixel i sees point i
        drawn_group = np.concatenate([d[1] for d in draws])
        assert (drawn_group == group[picked]).all()  # each pixel comes with its own group
        freq = np.bincount(picked, minlength=H * W) / len(picked)
        assert 0.5 * np.abs(freq - expect).sum() < 0.03  # total variation, 40000 draws
