"""The SAM-like mask emulator (benchmarks only): clean masks are the ground truth's visible
regions, nested and overlapping as SAM's; the noise model is deterministic and grows with its
strength."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from crossdistill.eval.emulators import EmulatedMaskTeacher, hierarchy_partitions, segmentation_partitions
from crossdistill.teachers.base import MaskSet
from crossdistill.types import Cameras, Views

H = W = 64


def _views(n_views: int = 2) -> Views:
    """Elements 0..3 laid out as four 16-px columns of a 48 x 64 object; element 3's column is cut
    in two by a background row, so its region has two connected pieces."""
    face = np.full((n_views, H, W), -1, np.int32)
    for e in range(4):
        face[:, 8:56, 16 * e:16 * (e + 1)] = e
    face[:, 30:34, 48:64] = -1
    fg = face >= 0
    K = np.tile(np.array([[W, 0, W / 2], [0, W, H / 2], [0, 0, 1]], float), (n_views, 1, 1))
    w2c = np.tile(np.eye(4), (n_views, 1, 1))
    w2c[:, 2, 3] = 2.0
    rng = np.random.default_rng(0)
    normal = np.zeros((n_views, H, W, 3), np.float32)
    normal[..., 2] = -1.0
    normal[:, :, 40:, 0] = 0.7  # a shading edge inside element 2's column
    depth = np.where(fg, 1.0 + 0.01 * rng.random((n_views, H, W)), np.inf).astype(np.float32)
    rgb = np.where(fg[..., None], 120, 255).astype(np.uint8)
    return Views(Cameras(K, w2c, W, H, tuple(f"v{i}" for i in range(n_views))), face, depth, normal, rgb)


# two granularities: halves {0, 1} / {2, 3}, and every element alone
PARTS = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 2, 3]])


def _pixel_sets(ms: MaskSet) -> set[frozenset]:
    return {frozenset(np.flatnonzero(m).tolist()) for m in ms.masks}


def test_clean_masks_are_the_visible_regions_of_every_part():
    views = _views()
    ms = EmulatedMaskTeacher(PARTS, strength=0.0).masks(views)[0]
    face = views.face_id[0].reshape(-1)
    expected = set()
    for part in PARTS:
        for p in np.unique(part):
            region = np.isin(face, np.flatnonzero(part == p)).reshape(H, W)
            lab, n = ndimage.label(region)
            for k in range(1, n + 1):
                expected.add(frozenset(np.flatnonzero(lab == k).tolist()))
    assert _pixel_sets(ms) == expected
    # the whole, the two halves (element 2 holds the right half together) and five singles (element 3 in 2)
    assert len(ms) == len(expected) == 1 + 2 + 5
    # nested and overlapping, as SAM's masks are; every mask one connected region; scores in (0.9, 1]
    cover = ms.masks.sum(0)
    assert cover.max() == 3 and ((cover > 0) == (face.reshape(H, W) >= 0)).all()
    assert all(ndimage.label(m)[1] == 1 for m in ms.masks)
    assert ((ms.scores > 0.9) & (ms.scores <= 1.0)).all() and (np.diff(ms.scores) <= 0).all()


def test_noise_is_deterministic_and_grows_with_strength():
    views = _views(4)

    def run(t, seed=0):
        return EmulatedMaskTeacher(PARTS, strength=t, seed=seed).masks(views)

    a, b = run(0.5), run(0.5)
    assert all(np.array_equal(x.masks, y.masks) and np.array_equal(x.scores, y.scores) for x, y in zip(a, b))
    assert any(not np.array_equal(x.masks, y.masks) for x, y in zip(a, run(0.5, seed=1)))
    clean = [_pixel_sets(m) for m in run(0.0)]

    def changed(t):  # masks that are not exactly a clean one, over views and seeds
        return sum(len(_pixel_sets(m) - c) for s in range(3)
                   for m, c in zip(EmulatedMaskTeacher(PARTS, strength=t, seed=s).masks(views), clean))

    assert changed(0.0) == 0 < changed(0.25) <= changed(1.0)
    for ms, fg in zip(run(1.0), views.foreground):
        assert not (ms.masks & ~fg).any(), "masks stay on the object"
        assert all(ndimage.label(m)[1] == 1 for m in ms.masks), "each mask is one connected region"


def test_strength_is_checked_and_the_id_says_emulated():
    with pytest.raises(ValueError):
        EmulatedMaskTeacher(PARTS, strength=1.5)
    t = EmulatedMaskTeacher(PARTS, strength=0.25, seed=3)
    assert t.teacher_id.startswith("emulated-sam-masks") and not t.is_offline_default
    assert t.mask_kind == "sam-like"


def test_partitions_from_a_hierarchy_and_from_human_segmentations():
    # root 0 -> {1 -> {3, 4}, 2}; leaves per element: 3, 4, 2, -1
    nodes = [{"id": 0, "parent": -1}, {"id": 1, "parent": 0}, {"id": 2, "parent": 0},
             {"id": 3, "parent": 1}, {"id": 4, "parent": 1}]
    leaf = np.array([3, 4, 2, -1])
    link = np.array([0, 0, 1, -1])
    parts = hierarchy_partitions(leaf, nodes, extra=[link])
    assert parts.tolist() == [[0, 0, 0, -1], [1, 1, 2, -1], [3, 4, 2, -1], [0, 0, 1, -1]]
    segs = np.array([[0, 0, 1, 1], [0, 1, 2, 3]])
    assert segmentation_partitions(segs).tolist() == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 2, 3]]
