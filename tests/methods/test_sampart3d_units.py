"""Unit tests of SAMPart3D's pieces: scale, loss, supervision, clustering, voting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from crossdistill.methods.sampart3d.cluster import ClusterConfig, cluster_points, merge_close_clusters
from crossdistill.methods.sampart3d.grouping import GroupingField, pairwise_grouping_loss
from crossdistill.methods.sampart3d.scale import ScaleQuantiles, mask_scale, mask_scales_from_labels
from crossdistill.methods.sampart3d.vote import majority_per_group, split_at_pieces, vote_faces


def test_mask_scale_matches_hand_computation():
    # two points 0.2 apart on x: std_x = 0.1, std_y = std_z = 0 -> sigma = 10 * 0.1 = 1
    assert mask_scale(np.array([[0.0, 0, 0], [0.2, 0, 0]])) == pytest.approx(1.0)
    # +-(a, b, c): std = (a, b, c) -> sigma = 10 * sqrt(a^2 + b^2 + c^2) = 10 * sqrt(0.01+0.04+0.04) = 3
    p = np.array([[0.1, 0.2, 0.2], [-0.1, -0.2, -0.2]])
    assert mask_scale(p) == pytest.approx(3.0)
    # the normalisation radius divides coordinates first
    assert mask_scale(p, radius=2.0) == pytest.approx(1.5)
    assert mask_scale(p[:1]) == 0.0


def test_vectorised_scales_equal_the_per_mask_definition():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 3))
    lab = rng.integers(0, 7, size=300)
    got = mask_scales_from_labels(pts, lab, 8, radius=1.7)
    for k in range(7):
        assert got[k] == pytest.approx(mask_scale(pts[lab == k], radius=1.7))
    assert got[7] == 0.0  # an empty mask


def test_scale_quantiles_are_monotone_in_unit_interval():
    q = ScaleQuantiles.fit(np.array([0.1, 0.5, 0.5, 2.0, 7.0]))
    out = q(np.array([-1.0, 0.1, 0.5, 2.0, 7.0, 100.0]))
    assert out[0] == 0.0 and out[-1] == 1.0
    assert np.all(np.diff(out) >= 0)


def test_loss_matches_hand_computed_values():
    # one image, 3 pixels: pixels 0, 1 in mask 0, pixel 2 in mask 1
    f = torch.tensor([[[0.0, 0.0], [0.0, 0.5], [0.6, 0.0]]])
    m = torch.tensor([[0, 0, 1]])
    out = pairwise_grouping_loss(f, m, margin=1.0)
    # pull: pair (0,1) distance 0.5; push: (0,2) relu(1-0.6)=0.4, (1,2) relu(1-sqrt(0.61))
    push = (0.4 + (1 - np.sqrt(0.61))) / 2
    assert float(out["pull"]) == pytest.approx(0.5, abs=1e-5)
    assert float(out["push"]) == pytest.approx(push, abs=1e-5)
    # weights: 1 of 3 valid pairs is positive, 2 of 3 negative
    assert float(out["loss"]) == pytest.approx(0.5 / 3 + push * 2 / 3, abs=1e-5)
    # equal terms: pull and push weigh 1 each, whatever their share of the pairs
    eq = pairwise_grouping_loss(f, m, margin=1.0, equal_terms=True)
    assert float(eq["loss"]) == pytest.approx(0.5 + push, abs=1e-5)
    # push floor: here pushes already outnumber pulls, so the released weights stay
    pf = pairwise_grouping_loss(f, m, margin=1.0, push_floor=True)
    assert float(pf["loss"]) == pytest.approx(float(out["loss"]), abs=1e-6)


def test_push_floor_weighs_pushes_as_pulls_where_one_group_dominates():
    # 4 pixels of mask 0, 1 of mask 1: 6 same pairs, 4 different pairs, 10 in all
    f = torch.tensor([[[0.0, 0.0], [0.0, 0.2], [0.2, 0.0], [0.2, 0.2], [0.5, 0.0]]])
    m = torch.tensor([[0, 0, 0, 0, 1]])
    out = pairwise_grouping_loss(f, m, margin=1.0)
    pull, push = float(out["pull"]), float(out["push"])
    assert float(out["loss"]) == pytest.approx(pull * 0.6 + push * 0.4, abs=1e-5)
    pf = pairwise_grouping_loss(f, m, margin=1.0, push_floor=True)
    assert float(pf["loss"]) == pytest.approx(pull * 0.6 + push * 0.6, abs=1e-5)


def test_sam_like_masks_train_point_clouds_with_the_push_floor_and_meshes_without(three_primitives):
    import dataclasses

    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.geometry.sampling import sample_surface
    from crossdistill.methods.sampart3d.pipeline import SegmentConfig, segment_shape
    from crossdistill.methods.sampart3d.rules import PAPER_RULES
    from crossdistill.methods.sampart3d.train import GroupingTrainConfig
    from crossdistill.types import Shape

    mesh, gt = three_primitives
    shape = Shape(vertices=np.asarray(mesh.vertices, float), faces=np.asarray(mesh.faces))
    s = sample_surface(shape, 1500, seed=0)
    cloud = Shape(vertices=s.points, vertex_normals=s.normals)
    cfg = SegmentConfig(n_points=1500, n_views=6, image_size=64, train=GroupingTrainConfig(iterations=6))
    parts_pts = np.stack([np.zeros(len(s.points), int), gt[s.face_id]])
    seg = segment_shape(cloud, cfg, mask_teacher=EmulatedMaskTeacher(parts_pts), progress=False)
    assert seg.meta["shape_kind"] == "points" and seg.meta["push_floor"] and "push_floor" in seg.meta["rules"]
    assert seg.meta["group_balance"] == 0.5
    plain = segment_shape(cloud, dataclasses.replace(cfg, rules=PAPER_RULES),
                          mask_teacher=EmulatedMaskTeacher(parts_pts), progress=False)
    assert not plain.meta["push_floor"]
    assert not np.allclose(seg.field.losses, plain.field.losses)  # the weights changed what was trained
    # group balance is a training rule too: the pixels drawn change, and the meta says so
    balanced = segment_shape(cloud, dataclasses.replace(cfg, rules=dataclasses.replace(
        PAPER_RULES, push_floor=True, group_balance=1.0)), mask_teacher=EmulatedMaskTeacher(parts_pts), progress=False)
    assert balanced.meta["group_balance"] == 1.0 and "group_balance=1" in balanced.meta["rules"]
    assert plain.meta["group_balance"] == 0.0
    assert not np.allclose(balanced.field.losses, plain.field.losses)
    parts_faces = np.stack([np.zeros(len(gt), int), gt])
    mseg = segment_shape(shape, cfg, mask_teacher=EmulatedMaskTeacher(parts_faces), progress=False)
    assert mseg.meta["shape_kind"] == "pieces" and not mseg.meta["push_floor"]


def _loss_by_pairs(feat, mask, margin, feat_larger):
    """Eq. 5 with the released code's weights, pair by pair (the definition the loss vectorises)."""
    pulls, pushes, pulls_l = [], [], []
    for i in range(feat.shape[0]):
        for a in range(feat.shape[1]):
            for b in range(a + 1, feat.shape[1]):
                if mask[i, a] < 0 or mask[i, b] < 0:
                    continue
                d = torch.linalg.norm(feat[i, a] - feat[i, b])
                if mask[i, a] == mask[i, b]:
                    pulls.append(d)
                    pulls_l.append(torch.linalg.norm(feat_larger[i, a] - feat_larger[i, b]))
                else:
                    pushes.append(torch.relu(margin - d))
    n = len(pulls) + len(pushes)
    return (torch.stack(pulls).mean() * len(pulls) / n + torch.stack(pushes).mean() * len(pushes) / n
            + torch.stack(pulls_l).mean() * len(pulls) / n)


def test_loss_and_its_gradient_equal_the_pair_by_pair_definition():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(3, 9, 4, generator=g).requires_grad_()
    larger = torch.randn(3, 9, 4, generator=g).requires_grad_()
    mask = torch.randint(-1, 3, (3, 9), generator=g)
    got = pairwise_grouping_loss(feat, mask, margin=2.0, feat_larger=larger)["loss"]
    want = _loss_by_pairs(feat, mask, 2.0, larger)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    g_got = torch.autograd.grad(got, [feat, larger])
    g_want = torch.autograd.grad(want, [feat, larger])
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # an image whose valid pixels all share one mask adds pulls only; no valid pair at all gives 0
    one = pairwise_grouping_loss(feat[:1], torch.tensor([[0] * 9]))
    assert one["push"].item() == 0.0 and one["loss"].item() == pytest.approx(one["pull"].item())
    none = pairwise_grouping_loss(feat[:1], torch.full((1, 9), -1))
    assert none["loss"].item() == 0.0


def test_loss_ignores_unmasked_pixels_and_cross_image_pairs():
    f = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[5.0, 0.0], [5.0, 0.0]]])
    m = torch.tensor([[0, -1], [0, 1]])
    out = pairwise_grouping_loss(f, m)
    # only pair: image 1, pixels (0, 1), different masks at distance 0 -> push relu(1 - 0) = 1
    assert float(out["push"]) == pytest.approx(1.0, abs=1e-4)
    assert float(out["loss"]) == pytest.approx(1.0, abs=1e-4)


def test_loss_trains_a_field_to_separate_two_groups():
    torch.manual_seed(0)
    field = GroupingField(backbone_dim=3, width=32, out_dim=8, backbone_layers=2, low_layers=2)
    x = torch.cat([torch.randn(32, 3) * 0.1 - 1, torch.randn(32, 3) * 0.1 + 1])
    low = torch.cat([x, torch.zeros(64, 6)], 1)
    mask = torch.cat([torch.zeros(32), torch.ones(32)]).long()[None]
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    s = torch.zeros(64, 1)
    for _ in range(100):
        loss = pairwise_grouping_loss(field(x, low, s)[None], mask)["loss"]
        opt.zero_grad(); loss.backward(); opt.step()
    feat = field(x, low, s).detach()
    within = torch.cdist(feat[:32], feat[:32]).mean()
    across = torch.cdist(feat[:32], feat[32:]).min()
    assert across > 1.0 > within


def test_cluster_points_recovers_separated_feature_groups():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(c, 0.05, size=(400, 3)) for c in (0.0, 1.0, 2.0)])
    feats = np.concatenate([np.tile(np.eye(4)[k], (400, 1)) + rng.normal(0, 0.01, (400, 4)) for k in range(3)])
    lab = cluster_points(feats, pts, ClusterConfig(max_points=600))
    assert len(np.unique(lab)) == 3
    for k in range(3):
        assert len(np.unique(lab[k * 400:(k + 1) * 400])) == 1


def test_majority_and_face_voting_with_fill_and_piece_dominance():
    win, share = majority_per_group(np.array([0, 0, 0, 2]), np.array([1, 1, 3, 5]), 3)
    assert win.tolist() == [1, -1, 5] and share[0] == pytest.approx(2 / 3)
    # 4 faces in a row, centroids on x; points on faces 0, 1 (label 0) and 3 (label 1)
    cents = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    labels = vote_faces(np.array([0, 0, 1]), np.array([0, 1, 3]), 4, cents, spill=0.0)
    assert labels.tolist() == [0, 0, 0, 1] or labels.tolist() == [0, 0, 1, 1]
    # with pieces {0,1,2} and {3}: face 2 prefers a face of its own piece
    comp = np.array([0, 0, 0, 1])
    labels = vote_faces(np.array([0, 0, 1]), np.array([0, 1, 3]), 4, cents, components=comp, spill=0.0)
    assert labels.tolist() == [0, 0, 0, 1]
    # spill-over: label 1 has 1 face in piece {0,1,2} and 2 faces in piece {3,4}: the lone face
    # (1/3 of label 1's area < 0.5) takes piece {0,1,2}'s majority label 0
    cents5 = np.concatenate([cents, [[4.0, 0, 0]]])
    comp5 = np.array([0, 0, 0, 1, 1])
    labels = vote_faces(np.array([0, 0, 1, 1, 1]), np.arange(5), 5, cents5, components=comp5, spill=0.5)
    assert labels.tolist() == [0, 0, 0, 1, 1]
    # a label living entirely inside one piece (a welded button) is kept
    labels = vote_faces(np.array([0, 0, 1, 2, 2]), np.arange(5), 5, cents5, components=comp5, spill=0.5)
    assert labels.tolist() == [0, 0, 1, 2, 2]


def test_split_at_pieces_keeps_parts_inside_pieces_and_folds_slivers():
    # 10 faces: piece 0 = faces 0-5, piece 1 = faces 6-9; label 0 spans both pieces
    comp = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    lab = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 2])
    areas = np.ones(10)
    out = split_at_pieces(lab, comp, areas, fragment=0.2)
    # label 0 becomes two parts (one per piece); label 1 (2/6 of piece 0) is kept;
    # label 2 (1/4 of piece 1 >= 0.2) is kept
    assert len(np.unique(out)) == 4
    assert out[0] != out[6] and out[4] == out[5] != out[0] and out[9] != out[6]
    # with a larger fragment share, the 1-face sliver of piece 1 folds into its main part
    out = split_at_pieces(lab, comp, areas, fragment=0.3)
    assert out[9] == out[6] and len(np.unique(out)) == 3
    # parts are numbered by decreasing area
    big = split_at_pieces(lab, comp, np.r_[np.ones(6), 10 * np.ones(4)], fragment=0.3)
    assert big[6] == 0
    # no part ever spans two pieces
    rng = np.random.default_rng(0)
    lab_r, comp_r = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    out = split_at_pieces(lab_r, comp_r, None, fragment=0.1)
    for p in np.unique(out):
        assert len(np.unique(comp_r[out == p])) == 1


def test_split_at_pieces_keeps_smaller_parts_of_a_dominant_piece():
    # piece 0: faces 0-19, area 20 of 23.53 (0.85 of the object: a welded body) with a
    # 3-face door (0.15 of the piece); piece 1: faces 20-23, area 3.53, with a sliver of
    # 0.53 (also 0.15 of its piece)
    comp = np.r_[np.zeros(20, int), np.ones(4, int)]
    lab = np.r_[np.zeros(17, int), np.full(3, 1), np.zeros(3, int), 2]
    areas = np.r_[np.ones(23), 0.53]
    plain = split_at_pieces(lab, comp, areas, fragment=0.2)
    assert plain[17] == plain[0] and plain[23] == plain[20]  # both 15% fragments fold
    out = split_at_pieces(lab, comp, areas, fragment=0.2, dominant=0.8, dominant_fragment=0.1)
    assert out[17] != out[0] and out[17] == out[19]  # the dominant piece keeps its door
    assert out[23] == out[20]  # the small piece still folds its sliver
    # with a dominant share above the body's 0.85, the plain rule applies everywhere
    below = split_at_pieces(lab, comp, areas, fragment=0.2, dominant=0.9, dominant_fragment=0.1)
    assert np.array_equal(below, plain)


def test_clusters_closer_than_the_push_margin_are_joined():
    # three tight feature groups: A and B are 0.3 apart (never pushed apart by a margin-1 loss),
    # C is sqrt(2) from both
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.normal(c, 0.05, size=(300, 3)) for c in (0.0, 1.0, 2.0)])
    centres = np.array([[0.0, 0, 0, 0], [0.3, 0, 0, 0], [0.0, 1.0, 1.0, 0]])
    feats = np.concatenate([centres[k] + rng.normal(0, 0.005, (300, 4)) for k in range(3)])
    kept = cluster_points(feats, pts, ClusterConfig(max_points=600), join=None)
    assert len(np.unique(kept)) == 3
    joined = cluster_points(feats, pts, ClusterConfig(max_points=600), margin=1.0, join=1.0)
    assert len(np.unique(joined)) == 2
    assert len(np.unique(joined[:600])) == 1 and joined[600] != joined[0]
    # the threshold scales with the margin the field was trained with
    assert len(np.unique(cluster_points(feats, pts, ClusterConfig(max_points=600), margin=0.2, join=1.0))) == 3
    assert merge_close_clusters(feats, kept, 0.5)[0] == merge_close_clusters(feats, kept, 0.5)[350]


def test_join_applies_from_the_configured_scale_up():
    from crossdistill.methods.sampart3d.pipeline import PAPER_SCALES
    from crossdistill.methods.sampart3d.rules import PAPER_RULES, RENDER_CUE_RULES

    rules = RENDER_CUE_RULES
    assert [rules.join_at(s, is_mesh=True) for s in PAPER_SCALES] == [None, None, 1.0, 1.0, 1.0]
    assert [rules.join_at(s, is_mesh=False) for s in PAPER_SCALES] == [1.0] * 5
    fine = dataclasses.replace(rules, join_from_scale=0.5)
    for is_mesh in (True, False):
        assert [fine.join_at(s, is_mesh) for s in PAPER_SCALES] == [None, 1.0, 1.0, 1.0, 1.0]
    assert [PAPER_RULES.join_at(s, True) for s in PAPER_SCALES] == [None] * 5


def test_parts_may_span_pieces_only_from_the_configured_scale_up():
    from crossdistill.methods.sampart3d.pipeline import PAPER_SCALES
    from crossdistill.methods.sampart3d.rules import PAPER_RULES, RENDER_CUE_RULES

    rules = RENDER_CUE_RULES
    assert [rules.keep_in_pieces(s) for s in PAPER_SCALES] == [True, True, True, True, False]
    always = dataclasses.replace(rules, pieces_until=None)
    assert [always.keep_in_pieces(s) for s in PAPER_SCALES] == [True] * 5
    assert [rules.merged_pieces().keep_in_pieces(s) for s in PAPER_SCALES] == [False] * 5
    assert [PAPER_RULES.keep_in_pieces(s) for s in PAPER_SCALES] == [False] * 5
    assert rules.merged_pieces().piece_fragment == rules.piece_fragment  # nothing else changes


def test_rules_follow_the_teacher_and_presets():
    from crossdistill.methods.sampart3d.pipeline import SegmentConfig, preset
    from crossdistill.methods.sampart3d.rules import PAPER_RULES, RENDER_CUE_RULES, SAM_RULES
    from crossdistill.teachers.offline_masks import RenderMaskTeacher

    cfg = SegmentConfig()
    assert cfg.rules_for(None) == RENDER_CUE_RULES
    assert cfg.rules_for(RenderMaskTeacher()) == RENDER_CUE_RULES
    assert cfg.rules_for(object()) == SAM_RULES["pieces"]  # an unknown (real) model is SAM-like
    assert "pieces" in SAM_RULES["pieces"].names and not SAM_RULES["pieces"].piece_codes
    # on point clouds SAM-like masks get the training rules (push floor, group-balanced pixels) and the
    # part vote at 0.7, on closed single surfaces group-balanced pixels and the part vote at 0.5; the
    # render-cue teacher keeps its own
    assert cfg.rules_for(object(), "closed_surface") == dataclasses.replace(PAPER_RULES, group_balance=0.5,
                                                                           part_vote=0.5)
    assert cfg.rules_for(object(), "closed_surface").names == ["group_balance=0.5", "part_vote=0.5"]
    assert cfg.rules_for(object(), "points") == dataclasses.replace(PAPER_RULES, push_floor=True, group_balance=0.5,
                                                                   part_vote=0.7)
    assert cfg.rules_for(object(), "points").names == ["push_floor", "group_balance=0.5", "part_vote=0.7"]
    # meshes of pieces: group-balanced pixels with mask-confirmed parts kept in every piece
    # (segment_small_parts.md), no push floor; the render-cue teacher keeps neither
    assert not SAM_RULES["pieces"].push_floor and SAM_RULES["pieces"].group_balance == 0.5
    assert SAM_RULES["pieces"].support_everywhere and "support_everywhere" in SAM_RULES["pieces"].names
    assert not SAM_RULES["pieces"].silhouette_support and "no_silhouette_support" in SAM_RULES["pieces"].names
    assert RENDER_CUE_RULES.silhouette_support
    assert not RENDER_CUE_RULES.support_everywhere and RENDER_CUE_RULES.group_balance == 0
    assert cfg.rules_for(RenderMaskTeacher(), "points") == RENDER_CUE_RULES
    with pytest.raises(ValueError, match="shape_kind"):
        cfg.rules_for(object(), "sphere")
    paper = preset("paper")
    assert paper.rules_for(RenderMaskTeacher()) == PAPER_RULES and PAPER_RULES.names == []
    assert paper.scale_unit == "sigma" and paper.train.pair_sampling == "released"
    assert (paper.train.images_per_iter, paper.train.pixels_per_image, paper.train.width) == (90, 256, 384)
    assert preset("fast") == SegmentConfig()
    with pytest.raises(ValueError):
        preset("slow")


def _two_planes(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points on two perpendicular squares meeting along an edge (an L), with their normals."""
    rng = np.random.default_rng(seed)
    a, b = rng.random((n, 2)), rng.random((n, 2))
    floor = np.c_[a[:, 0], a[:, 1], np.zeros(n)]
    wall = np.c_[b[:, 0], np.zeros(n), b[:, 1] + 0.02]
    normals = np.r_[np.tile([0.0, 0.0, 1.0], (n, 1)), np.tile([0.0, 1.0, 0.0], (n, 1))]
    return np.r_[floor, wall], normals


def test_region_growing_separates_surfaces_that_meet_at_a_crease():
    from crossdistill.geometry.topology import region_growing

    pts, nrm = _two_planes()
    lab = region_growing(pts, nrm, 10.0)
    assert len(np.unique(lab)) == 2
    assert len(np.unique(lab[:400])) == 1 and len(np.unique(lab[400:])) == 1
    # a threshold above the crease angle joins them; flipped normals change nothing
    assert len(np.unique(region_growing(pts, nrm, 100.0))) == 1
    assert np.array_equal(region_growing(pts, -nrm, 10.0), lab)
    # fewer points than neighbours: each point still gets a region
    assert region_growing(pts[:3], nrm[:3], 10.0).shape == (3,)


def test_point_cloud_labels_give_each_smooth_region_its_majority_part():
    from crossdistill.methods.sampart3d.pipeline import point_cloud_labels
    from crossdistill.types import Shape

    pts, nrm = _two_planes()
    cloud = Shape(vertices=pts, vertex_normals=nrm)
    rng = np.random.default_rng(1)
    sample = rng.choice(len(pts), 300, replace=False)
    truth = (np.arange(len(pts)) >= 400).astype(np.int32)
    noisy = truth[sample].copy()
    flip = rng.random(300) < 0.15  # 15% of the sampled labels wrong
    noisy[flip] = 1 - noisy[flip]
    plain = point_cloud_labels(noisy[None], pts[sample], cloud, None)[0]
    assert (plain != truth).sum() > 30  # the noise reaches the input points
    voted = point_cloud_labels(noisy[None], pts[sample], cloud, 10.0)[0]
    assert np.array_equal(voted == voted[0], truth == truth[0])  # one part per plane, both planes
    assert len(np.unique(voted)) == 2
    # without normals they are estimated (bent near the crease, so a few edge points differ)
    est = point_cloud_labels(noisy[None], pts[sample], Shape(vertices=pts), 10.0)[0]
    assert ((est == est[0]) == (truth == truth[0])).mean() > 0.95
    assert ((est == est[0]) == (truth == truth[0])).mean() > ((plain == plain[0]) == (truth == truth[0])).mean()


def test_high_dimensional_hdbscan_takes_the_all_pairs_algorithm_with_the_same_labels():
    import hdbscan

    from crossdistill.methods.sampart3d.cluster import GENERIC_MIN_DIM, hdbscan_labels

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, GENERIC_MIN_DIM * 2))
    x = centres[rng.integers(0, 4, 800)] + 0.1 * rng.normal(size=(800, GENERIC_MIN_DIM * 2))
    got = hdbscan_labels(x.astype(np.float32), 30, 30, 0.1)
    tree = hdbscan.HDBSCAN(min_cluster_size=30, min_samples=30, cluster_selection_epsilon=0.1).fit_predict(x)
    assert len(set(got.tolist()) - {-1}) == 4
    assert (got == tree).all()
