"""PartDistillation's stages: cosine k-means, teacher snapshot, augmentation, Eq. 2 scores, AR@k, final stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crossdistill.eval.metrics.clustering import ari
from crossdistill.eval.metrics.instances import average_recall
from crossdistill.methods.partdistillation.augment import AugmentConfig, TeacherSnapshot, augment_batch
from crossdistill.methods.partdistillation.crops import InstanceCrop, crop_instances
from crossdistill.methods.partdistillation.decoder import DecoderConfig, PartDecoder
from crossdistill.methods.partdistillation.final import ClusterHead, labelled_partition
from crossdistill.methods.partdistillation.pipeline import PartDistillation, PartDistillationConfig
from crossdistill.methods.partdistillation.proposals import ProposalConfig, kmeans_partition
from crossdistill.methods.partdistillation.ranking import RankingConfig, class_part_scores
from crossdistill.methods.partdistillation.training import TrainConfig, set_loss, train_decoder
from crossdistill.render.images import views_from_images
from crossdistill.teachers.offline_instances import RenderInstanceTeacher


def _crop(features: np.ndarray) -> InstanceCrop:
    S = features.shape[-1]
    return InstanceCrop(features.astype(np.float32), np.ones((S, S), bool), np.array([0, 0, S, S]), (S, S), 0, 0,
                        "", 1.0)


def test_cosine_kmeans_groups_by_direction_where_euclidean_groups_by_length():
    # left half points along (1, 0.1), right half along (0.1, 1); bottom rows 10x longer
    f = np.zeros((2, 8, 8))
    f[:, :, :4] = np.array([1.0, 0.1])[:, None, None]
    f[:, :, 4:] = np.array([0.1, 1.0])[:, None, None]
    f[:, 4:, :] *= 10.0
    halves = np.repeat((np.arange(8) >= 4)[None], 8, 0).astype(int)  # the direction split
    cos = kmeans_partition(_crop(f), 2, ProposalConfig(metric="cosine", standardize=False, spatial_weight=0.0))
    euc = kmeans_partition(_crop(f), 2, ProposalConfig(metric="euclidean", standardize=False, spatial_weight=0.0))
    assert ari(halves.ravel(), cos.ravel()) == pytest.approx(1.0)
    # squared-error optimum by hand: the long (10, 1) cells alone against the rest (SSE 968 < 1296 of top/bottom)
    assert ari(halves.ravel(), euc.ravel()) < 0.5
    quad = lambda a: np.bincount(a.ravel()).argmax()  # noqa: E731 - majority label of a quadrant
    assert quad(euc[4:, :4]) != quad(euc[:4, :4]) == quad(euc[:4, 4:]) == quad(euc[4:, 4:])
    with pytest.raises(ValueError):
        ProposalConfig(metric="manhattan")


def test_class_specific_score_matches_a_hand_computed_example():
    partness = np.array([0.8, 0.5])
    feats = np.array([[2.0, 0.0], [0.6, 0.8]])  # length does not matter: cosine
    centroids = np.array([[1.0, 0.0], [0.0, 3.0]])
    s = class_part_scores(partness, feats, centroids, temperature=0.5)
    # part 1: cosines (1, 0) -> logits (2, 0); part 2: cosines (0.6, 0.8) -> logits (1.2, 1.6)
    e2 = math.exp(2.0)
    expected = [[0.8 * e2 / (e2 + 1), 0.8 / (e2 + 1)],
                [0.5 * math.exp(1.2) / (math.exp(1.2) + math.exp(1.6)), 0.5 * math.exp(1.6) / (math.exp(1.2) + math.exp(1.6))]]
    assert np.allclose(s, expected, atol=1e-9)
    assert np.allclose(s.sum(1), partness)  # the label probabilities sum to one
    with pytest.raises(ValueError):
        class_part_scores(partness, feats, centroids, temperature=0.0)


def test_average_recall_at_k_on_a_hand_made_case():
    gt = np.array([[0, 0, 1, 1]])
    exact0 = np.array([[True, True, False, False]])
    half1 = np.array([[False, False, True, False]])  # IoU 0.5 with part 1
    exact1 = np.array([[False, False, True, True]])
    pred = np.stack([exact0[0], half1[0], exact1[0]])[:, None, :]
    scores = np.array([0.9, 0.8, 0.1])
    assert average_recall([(gt, pred, scores)], k=1) == pytest.approx(0.5)  # part 0 at all ten thresholds
    # + part 1 at IoU threshold 0.5 only: (2 + 9 * 1) / (10 * 2)
    assert average_recall([(gt, pred, scores)], k=2) == pytest.approx(0.55)
    assert average_recall([(gt, pred, scores)], k=200) == pytest.approx(1.0)


def test_teacher_snapshot_is_not_updated_by_the_optimiser():
    torch.manual_seed(0)
    dec = PartDecoder(DecoderConfig(in_channels=3, dim=16, queries=3, layers=1, heads=2, grid=8))
    snap = TeacherSnapshot(dec, momentum=0.9)
    assert all(not p.requires_grad for p in snap.model.parameters())
    before = [p.clone() for p in snap.model.parameters()]
    opt = torch.optim.SGD(dec.parameters(), lr=0.5)
    obj = torch.ones(2, 8, 8, dtype=torch.bool)
    left = torch.zeros(1, 8, 8, dtype=torch.bool)
    left[:, :, :4] = True
    loss = set_loss(dec(torch.randn(2, 3, 8, 8), obj), obj, [left, ~left])
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, snap.model.parameters()))  # optimiser left it alone
    assert all(p.grad is None for p in snap.model.parameters())
    snap.update(dec)
    for t, b, s in zip(snap.model.parameters(), before, dec.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * s.detach(), atol=1e-6)  # moved by the EMA only
    assert not any(t.data_ptr() == s.data_ptr() for t, s in zip(snap.model.parameters(), dec.parameters()))


def test_self_training_draws_targets_from_the_snapshot():
    torch.manual_seed(0)
    f = np.zeros((2, 8, 8), np.float32)
    f[0, :, :4], f[1, :, 4:] = 1.0, 1.0
    crops = [_crop(f + 0.01 * np.random.default_rng(i).normal(size=f.shape)) for i in range(4)]
    dec = PartDecoder(DecoderConfig(in_channels=2, dim=16, queries=3, layers=1, heads=2, grid=8))
    snap = TeacherSnapshot(dec, momentum=0.5)
    seen = []

    def make_targets(model):
        seen.append(model)
        m = np.zeros((2, 8, 8), bool)
        m[0, :, :4], m[1, :, 4:] = True, True
        return [m] * len(crops), None

    losses = train_decoder(dec, crops, [], TrainConfig(steps=6, batch_size=2), progress=False,
                           augment=AugmentConfig(), teacher=snap, make_targets=make_targets, refresh_every=3)
    assert len(losses) == 6 and len(seen) == 2 and all(m is snap.model for m in seen)
    assert all(p.grad is None for p in snap.model.parameters())
    with pytest.raises(ValueError):
        train_decoder(dec, crops, [], TrainConfig(steps=1), progress=False, make_targets=make_targets)


def test_augmentation_moves_features_and_targets_together():
    S = 16
    ys, xs = np.mgrid[:S, :S]
    quad = torch.as_tensor((ys >= S // 2) * 2 + (xs >= S // 2))  # four quadrant parts
    targets = torch.stack([quad == k for k in range(4)])  # (4, S, S)
    feats = targets.float()[None].repeat(3, 1, 1, 1)  # features = one-hot of the part
    objs = torch.ones(3, S, S, dtype=torch.bool)
    labels = [torch.arange(4)] * 3
    cfg = AugmentConfig(jitter=0.0, channel_drop=0.0)
    f, o, t, lab = augment_batch(feats, objs, [targets] * 3, cfg, torch.Generator().manual_seed(1), labels)
    for b in range(3):
        inside = o[b]
        assert inside.any()
        # every kept target is exactly where its feature channel is the largest
        for mask, k in zip(t[b], lab[b]):
            assert bool((f[b].argmax(0)[mask] == k).float().mean() > 0.9)
        assert not (t[b] & ~inside).any()
    again = augment_batch(feats, objs, [targets] * 3, cfg, torch.Generator().manual_seed(1), labels)
    assert torch.equal(again[0], f)  # seeded


def test_labelled_partition_and_cluster_head():
    head = ClusterHead({"mug": np.array([[1.0, 0.0], [0.0, 1.0]]), "lamp": np.array([[1.0, 1.0]])}, 0.5)
    logits = head(torch.tensor([[[0.0, 2.0]], [[1.0, 0.0]]]), ["mug", "lamp"])
    assert logits.shape == (2, 1, 2)
    assert torch.allclose(logits[0, 0], torch.tensor([0.0, 2.0])) and logits[1, 0, 1] < -1e3  # lamp has one part
    back = ClusterHead.from_state(head.state())
    assert all(np.allclose(a, b) for a, b in zip(back.centroids().values(), head.centroids().values()))
    lg = np.stack([np.full((2, 2), 5.0), np.full((2, 2), -5.0)])
    lg[0, 1], lg[1, 1] = -5.0, 5.0
    masks, labels = labelled_partition(lg, np.array([0.9, 0.9]), np.array([[0.9, 0.1], [0.2, 0.8]]),
                                       np.ones((2, 2), bool), min_fraction=0.0)
    assert labels.tolist() == [0, 1] and masks[0, 0].all() and masks[1, 1].all()


@pytest.fixture(scope="module")
def toy_crops(toy_image):
    teacher = RenderInstanceTeacher()
    crops, images = [], []
    for kind in ("mug", "lamp"):
        for s in range(5):
            img, _ = toy_image(kind, s, 96)
            inst = teacher.instances(views_from_images([img]))[0]
            for c in crop_instances([inst], (96, 96), 24, classes=[kind]):
                crops.append(c.__class__(**{**c.__dict__, "image_index": len(images)}))
            images.append(inst)
    return crops, images


def test_fit_with_the_final_stage_round_trips(tmp_path, toy_crops):
    crops, insts = toy_crops
    cfg = PartDistillationConfig(grid=24, dim=32, queries=6, layers=2, heads=4, normalize_input=True,
                                 train=TrainConfig(steps=16, batch_size=8, lr=3e-3), rounds=2, final_steps=8,
                                 ranking=RankingConfig(clusters=3))
    model, history = PartDistillation.fit(crops, cfg, "offline", progress=False)
    assert model.head is not None and len(history.losses) == 3
    assert set(model.head.names) == {"mug", "lamp"}
    res = model.predict_image([c for c in crops if c.image_index == 0], insts[0].masks)
    named = res.part_classes[res.part_classes >= 0]
    assert len(named) and all(model.vocabulary[i].startswith("mug part") for i in np.unique(named))
    assert len(res.part_names) == len(set(res.part_names))  # one part per class-specific label
    back = PartDistillation.load(model.save(tmp_path / "m.pt"))
    again = back.predict_image([c for c in crops if c.image_index == 0], insts[0].masks)
    assert np.array_equal(again.parts, res.parts) and np.array_equal(again.part_classes, res.part_classes)
    assert back.config == model.config


def test_mask2former_teacher_gives_the_backbone_res3_res4_layer(toy_image):
    pytest.importorskip("transformers")
    from transformers import Mask2FormerImageProcessorPil

    from crossdistill.teachers.mask2former import Mask2FormerInstanceTeacher
    from crossdistill.teachers.testing import tiny_mask2former

    model = tiny_mask2former()
    proc = Mask2FormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32)
    img, _ = toy_image("mug", 0, 64)
    views = views_from_images([img])
    paper = Mask2FormerInstanceTeacher(model, proc, score_threshold=0.0, feature_layer="res3+res4")
    plain = Mask2FormerInstanceTeacher(model, proc, score_threshold=0.0)
    (a,), (b,) = paper.instances(views), plain.instances(views)
    widths = model.config.backbone_config.hidden_sizes if hasattr(model.config.backbone_config, "hidden_sizes") \
        else [model.config.backbone_config.embed_dim * 2 ** i for i in range(4)]
    assert a.features.shape == (widths[1] + widths[2], 8, 8)  # stride 8 of the 64 px input
    assert b.features.shape[1:] == (16, 16)  # the pixel decoder's map: stride 4
    assert np.array_equal(a.masks, b.masks) and "feat=res3+res4" in paper.teacher_id
    assert "feat=" not in plain.teacher_id
    with pytest.raises(ValueError):
        Mask2FormerInstanceTeacher(model, proc, feature_layer="res5")


def _mask_logits(dec: PartDecoder, feats: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return dec(feats, obj)[-1]["masks"][0]  # (Q, S, S)


def test_pixel_layers_give_each_cell_its_neighbours():
    """With pixel_layers a cell's pixel embedding follows a neighbour's features; without, only through
    the object-wide normalisation, which moves a far cell as much."""
    torch.manual_seed(0)
    S = 8
    obj = torch.ones(1, S, S, dtype=torch.bool)
    feats = torch.randn(1, 4, S, S)
    moved = feats.clone()
    moved[0, :, 3, 4] += 3.0  # the right neighbour of cell (3, 3); cell (7, 0) is far from it
    for layers, expect_local in ((0, False), (2, True)):
        torch.manual_seed(1)
        dec = PartDecoder(DecoderConfig(in_channels=4, dim=16, queries=3, layers=0, heads=2, grid=S,
                                        pixel_layers=layers)).eval()
        with torch.no_grad():
            change = (dec.pixel_embedding(feats, obj) - dec.pixel_embedding(moved, obj))[0].abs().amax(0)
        ratio = float(change[3, 3] / change[7, 0].clamp_min(1e-9))
        assert (ratio > 5.0) == expect_local, (layers, ratio)


def test_pixel_position_separates_cells_with_equal_features():
    """Cells with identical features get identical mask logits unless the position code is on."""
    S = 8
    obj = torch.ones(1, S, S, dtype=torch.bool)
    feats = torch.ones(1, 4, S, S)
    for channels in (0, 8):
        torch.manual_seed(0)
        dec = PartDecoder(DecoderConfig(in_channels=4, dim=16, queries=3, layers=1, heads=2, grid=S,
                                        pixel_position=channels)).eval()
        lg = _mask_logits(dec, feats, obj)
        spread = float((lg - lg[:, :1, :1]).abs().max())
        assert (spread > 1e-4) == (channels > 0), (channels, spread)


def test_old_decoder_weights_still_load():
    """Weights saved with the single ``pixel`` Sequential load into the current decoder."""
    dec = PartDecoder(DecoderConfig(in_channels=4, dim=16, queries=3, layers=1, heads=2, grid=8))
    sd = dec.state_dict()
    old = {("pixel.0." + k[len("pixel_in.0."):] if k.startswith("pixel_in.0.") else
            "pixel.1." + k[len("pixel_in.1."):] if k.startswith("pixel_in.1.") else
            "pixel.3." + k[len("pixel_out."):] if k.startswith("pixel_out.") else k): v.clone() + 1.0
           for k, v in sd.items()}
    fresh = PartDecoder(DecoderConfig(in_channels=4, dim=16, queries=3, layers=1, heads=2, grid=8))
    fresh.load_state_dict(old)
    assert torch.equal(fresh.pixel_out.weight, sd["pixel_out.weight"] + 1.0)


def test_min_parts_lets_the_next_queries_split_a_merged_part():
    from crossdistill.methods.partdistillation.inference import parts_partition

    lg = np.full((3, 4, 4), -9.0)
    lg[0] = 2.0  # query 0: the whole object, confident
    lg[0, 3] = -3.0  # ... weakly on the bottom row
    lg[1, 3] = 9.0  # query 1: the bottom row, below the part-ness threshold
    scores = np.array([0.9, 0.3, 0.1])
    obj = np.ones((4, 4), bool)
    bottom = np.zeros((4, 4), bool)
    bottom[3] = True
    # only query 0 is confident: it owns every cell
    assert (parts_partition(lg, scores, obj, 0.5, 0.0) == 0).all()
    # min_parts=2: query 1 competes; 0.3 * sigmoid(9) > 0.9 * sigmoid(-3) on the bottom row
    two = parts_partition(lg, scores, obj, 0.5, 0.0, min_parts=2)
    assert (two[bottom] == 1).all() and (two[~bottom] == 0).all()
    # query 2 competes too but wins no cell
    assert np.array_equal(parts_partition(lg, scores, obj, 0.5, 0.0, min_parts=3), two)
    # a minimum part of 5 cells folds query 1's 4 cells into query 0
    assert (parts_partition(lg, scores, obj, 0.5, 0.3, min_parts=2) == 0).all()
    masks, labels = labelled_partition(lg, scores, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), obj,
                                       0.5, 0.0, min_parts=2)
    assert labels.tolist() == [0, 1] and np.array_equal(masks[1], bottom)


def test_min_parts_reaches_the_reading_and_the_self_training_targets(toy_crops):
    from dataclasses import replace

    from crossdistill.methods.partdistillation.pipeline import SelfTrainConfig

    crops, _ = toy_crops
    # a part-ness threshold no query reaches: each object is read as one part unless min_parts lets more compete
    base = PartDistillationConfig(grid=24, dim=32, queries=6, layers=2, heads=4, score_threshold=0.999,
                                  train=TrainConfig(steps=12, batch_size=8, lr=3e-3), rounds=2)
    wide = replace(base, self_train=replace(base.self_train, min_parts=6))
    _, h0 = PartDistillation.fit(crops, base, "offline", progress=False)
    model, h1 = PartDistillation.fit(crops, wide, "offline", progress=False)
    # the first round is the same; the self-training targets of the wide run have more parts
    assert h1.parts_per_object[0] == h0.parts_per_object[0]
    assert h1.parts_per_object[1] > h0.parts_per_object[1]
    assert h0.parts_per_object[1] == 1.0
    assert all(len(d.part_queries) == 1 for d in model.decode(crops))
    model.config = replace(model.config, min_parts=6)
    assert np.mean([len(d.part_queries) for d in model.decode(crops)]) > 1.5
    assert PartDistillationConfig.from_dict(wide.to_dict()) == wide
    with pytest.raises(ValueError):
        PartDistillationConfig(min_parts=-1)
    with pytest.raises(ValueError):
        PartDistillationConfig(self_train=SelfTrainConfig(min_parts=-1))


def test_the_final_stage_follows_the_rounds_steps_unless_set():
    cfg = PartDistillationConfig(train=TrainConfig(steps=7))
    assert cfg.final_steps is None and cfg.final_stage_steps == 7
    assert PartDistillationConfig(train=TrainConfig(steps=7), final_steps=0).final_stage_steps == 0
    assert PartDistillationConfig(final_steps=5).final_stage_steps == 5
    assert PartDistillationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        PartDistillationConfig(final_steps=-1)


def test_embedding_targets_keep_the_proposals_part_count(toy_crops):
    from dataclasses import replace

    from crossdistill.methods.partdistillation.inference import embedding_crops
    from crossdistill.methods.partdistillation.pipeline import SelfTrainConfig

    crops, _ = toy_crops
    base = PartDistillationConfig(grid=24, dim=32, queries=6, layers=2, heads=4, proposals=ProposalConfig(ks=(3,)),
                                  train=TrainConfig(steps=12, batch_size=8, lr=3e-3), rounds=2)
    emb = replace(base, self_train=replace(base.self_train, targets="embedding"))
    model, history = PartDistillation.fit(crops, emb, "offline", progress=False)
    first = PartDecoder(model.decoder.config)
    e = embedding_crops(model.decoder, crops)
    assert e[0].features.shape == (32, 24, 24) and np.array_equal(e[0].mask, crops[0].mask)
    assert e[0].box is crops[0].box and e[0].object_class == crops[0].object_class
    # k-means with K = 3 of the embedding: the self-training targets have the proposals' count (up to tiny pieces)
    assert history.parts_per_object[1] > 2.5 and abs(history.parts_per_object[1] - history.parts_per_object[0]) < 0.5
    assert not np.array_equal(embedding_crops(first, crops[:1])[0].features, e[0].features)
    assert PartDistillationConfig.from_dict(emb.to_dict()) == emb
    with pytest.raises(ValueError):
        SelfTrainConfig(targets="other")
