"""PartDistillation: proposals, decoder, set loss, self-training, ranking, image prediction, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdistill.eval.metrics.clustering import ari
from crossdistill.methods.partdistillation.crops import InstanceCrop, crop_instances, paste_partition
from crossdistill.methods.partdistillation.decoder import DecoderConfig, PartDecoder
from crossdistill.methods.partdistillation.pipeline import PartDistillation, PartDistillationConfig
from crossdistill.methods.partdistillation.proposals import ProposalConfig, kmeans_partition, part_proposals
from crossdistill.methods.partdistillation.ranking import PartRanking, RankingConfig
from crossdistill.methods.partdistillation.training import TrainConfig, set_loss
from crossdistill.render.images import views_from_images
from crossdistill.teachers.offline_instances import RenderInstanceTeacher

GRID = 24


def _toy_collection(toy_part_image, n_per_kind: int = 6, size: int = 96, seed0: int = 0):
    """Images, GT part maps, object classes, instance sets and crops of mugs and lamps."""
    teacher = RenderInstanceTeacher()
    images, gts, classes, insts, crops = [], [], [], [], []
    for kind in ("mug", "lamp"):
        for s in range(n_per_kind):
            img, gt = toy_part_image(kind, seed0 + s, size)
            inst = teacher.instances(views_from_images([img]))[0]
            c = crop_instances([inst], (size, size), GRID, classes=[kind])
            for ci in c:
                crops.append(ci.__class__(**{**ci.__dict__, "image_index": len(images)}))
            images.append(img)
            gts.append(gt)
            classes.append(kind)
            insts.append(inst)
    return images, gts, classes, insts, crops


@pytest.fixture(scope="module")
def toy(toy_image):
    return _toy_collection(toy_image)


FAST = PartDistillationConfig(grid=GRID, dim=32, queries=6, layers=2, heads=4,
                              train=TrainConfig(steps=120, batch_size=8, lr=3e-3), rounds=2,
                              ranking=RankingConfig(clusters=4))


@pytest.fixture(scope="module")
def fitted(toy):
    torch.manual_seed(0)
    return PartDistillation.fit(toy[4], FAST, "offline", progress=False)


def test_kmeans_partition_recovers_feature_regions():
    f = np.zeros((3, 16, 16), np.float32)
    f[0, :, :5], f[1, :, 5:11], f[2, :, 11:] = 1.0, 1.0, 1.0
    gt = np.repeat(np.array([0] * 5 + [1] * 6 + [2] * 5)[None], 16, 0)
    crop = InstanceCrop(f, np.ones((16, 16), bool), np.array([0, 0, 16, 16]), (16, 16), 0, 0, "", 1.0)
    lab = kmeans_partition(crop, 3, ProposalConfig(spatial_weight=0.0))
    assert ari(gt.ravel(), lab.ravel()) == pytest.approx(1.0)
    assert np.array_equal(lab, kmeans_partition(crop, 3, ProposalConfig(spatial_weight=0.0)))  # seeded
    # outside the object stays -1, K larger than the distinct features is clipped
    crop2 = InstanceCrop(f, np.pad(np.ones((8, 8), bool), 4), np.array([0, 0, 16, 16]), (16, 16), 0, 0, "", 1.0)
    lab2 = kmeans_partition(crop2, 8)
    assert (lab2[~crop2.mask] == -1).all() and (lab2[crop2.mask] >= 0).all()


def test_proposals_of_several_k_are_deduplicated(toy):
    crop = next(c for c in toy[4] if c.object_class == "lamp")  # three flat-coloured parts
    three = part_proposals(crop, ProposalConfig(ks=(3,)))
    assert len(three) == 3
    assert len(part_proposals(crop, ProposalConfig(ks=(3, 3)))) == 3  # a repeated K adds nothing
    many = part_proposals(crop, ProposalConfig(ks=(2, 3)))
    assert 3 < len(many) <= 5
    assert not (many & ~crop.mask).any()


def test_crop_and_paste_round_trip(toy):
    images, gts, _, insts, crops = toy
    crop = crops[0]
    obj = insts[0].masks[crop.instance_index]
    fg = gts[0] >= 0  # the offline teacher's instance is the object (up to its corner cleaning)
    assert (obj & fg).sum() / (obj | fg).sum() > 0.99
    grid_gt = np.full((GRID, GRID), -1)
    ys, xs = np.nonzero(crop.mask)
    # sample the image's GT at the crop cells' centres and paste back
    x0, y0, x1, y1 = crop.box
    cy = (y0 + (ys + 0.5) * (y1 - y0) / GRID).astype(int)
    cx = (x0 + (xs + 0.5) * (x1 - x0) / GRID).astype(int)
    grid_gt[ys, xs] = np.maximum(gts[0][cy, cx], 0)
    back = paste_partition(grid_gt, crop.box, images[0].shape[:2], obj)
    agree = (back[obj] == gts[0][obj]).mean()
    assert agree > 0.93


def test_decoder_masks_stay_inside_the_object():
    dec = PartDecoder(DecoderConfig(in_channels=5, dim=16, queries=3, layers=2, heads=2, grid=8))
    obj = torch.zeros(2, 8, 8, dtype=torch.bool)
    obj[:, 2:6, 2:6] = True
    out = dec(torch.randn(2, 5, 8, 8), obj)
    assert len(out) == 3  # initial prediction + one per layer
    masks = out[-1]["masks"]
    assert torch.isinf(masks[:, :, ~obj[0]]).all() and torch.isfinite(masks[:, :, obj[0]]).all()
    loss = set_loss(out, obj, [obj[0:1].clone(), obj[1:2].clone()])
    loss.backward()
    assert all(p.grad is not None for p in dec.parameters() if p.requires_grad)


def test_set_loss_prefers_the_right_masks():
    obj = torch.ones(1, 4, 4, dtype=torch.bool)
    left = torch.zeros(4, 4, dtype=torch.bool)
    left[:, :2] = True
    target = [torch.stack([left, ~left])]
    good = torch.stack([torch.where(left, 8.0, -8.0), torch.where(~left, 8.0, -8.0), torch.full((4, 4), -8.0)])
    bad = torch.stack([torch.where(left.T, 8.0, -8.0), torch.where(~left.T, 8.0, -8.0), torch.full((4, 4), -8.0)])
    scores = torch.tensor([[6.0, 6.0, -6.0]])
    lg = set_loss([{"masks": good[None], "scores": scores}], obj, target)
    lb = set_loss([{"masks": bad[None], "scores": scores}], obj, target)
    # the matching makes the order of the queries irrelevant
    swapped = set_loss([{"masks": good[[1, 0, 2]][None], "scores": scores}], obj, target)
    assert float(lg) < 0.1 < float(lb)
    assert float(swapped) == pytest.approx(float(lg), abs=1e-6)
    # a query with no target is pushed to a low part-ness, but only by the no-part weight
    loud = set_loss([{"masks": good[None], "scores": torch.tensor([[6.0, 6.0, 6.0]])}], obj, target)
    assert float(loud) > float(lg)


def test_fit_learns_the_toy_parts_and_names_them(toy, fitted):
    images, gts, classes, insts, crops = toy
    model, history = fitted
    assert len(history.losses) == 3 and history.losses[0][-1] < history.losses[0][0]  # 2 rounds + the final stage
    assert model.head is not None
    scores = []
    for i in range(len(images)):
        res = model.predict_image([c for c in crops if c.image_index == i], insts[i].masks)
        fg = gts[i] >= 0
        assert (res.parts[~insts[i].masks.any(0)] == -1).all()
        scores.append(ari(gts[i][fg], res.parts[fg]))
        assert res.proposals.shape[1:] == images[i].shape[:2] and len(res.proposals) == len(res.proposal_scores)
    assert np.mean(scores) > 0.6  # 0.76 at seeds 0 and 1; random labels score about 0
    assert set(model.ranking.classes) == {"mug", "lamp"}
    assert all(n.startswith(("mug part", "lamp part")) for n in model.vocabulary)


def test_class_specific_parts_are_consistent_across_instances(toy, fitted):
    images, gts, classes, insts, crops = toy
    model, _ = fitted
    # the class-specific label a GT part gets most often should be the same on every mug
    per_part: dict[tuple[str, int], list[int]] = {}
    for i in range(len(images)):
        res = model.predict_image([c for c in crops if c.image_index == i], insts[i].masks)
        for g in np.unique(gts[i][gts[i] >= 0]):
            lab = res.part_classes[gts[i] == g]
            lab = lab[lab >= 0]
            if len(lab):
                per_part.setdefault((classes[i], int(g)), []).append(int(np.bincount(lab).argmax()))
    consistent = [np.bincount(v).max() / len(v) for v in per_part.values()]
    assert np.mean(consistent) >= 0.8


def test_fit_is_deterministic_and_round_trips(tmp_path, toy, fitted):
    model, _ = fitted
    crops = toy[4][:4]
    cfg = PartDistillationConfig(**{**FAST.__dict__, "train": TrainConfig(steps=5, batch_size=4)})
    a, _ = PartDistillation.fit(crops, cfg, progress=False)
    b, _ = PartDistillation.fit(crops, cfg, progress=False)
    for x, y in zip(a.decoder.state_dict().values(), b.decoder.state_dict().values()):
        assert torch.equal(x, y)
    path = model.save(tmp_path / "m.pt")
    back = PartDistillation.load(path)
    d0, d1 = model.decode(toy[4][:3]), back.decode(toy[4][:3])
    for x, y in zip(d0, d1):
        assert np.array_equal(x.labels, y.labels) and np.allclose(x.scores, y.scores)
    assert back.vocabulary == model.vocabulary and back.config == model.config


def test_load_rejects_a_foreign_file(tmp_path):
    from crossdistill.errors import InputError

    bad = tmp_path / "x.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(InputError):
        PartDistillation.load(bad)
    with pytest.raises(InputError):
        PartDistillation.load(tmp_path / "missing.pt")


def test_ranking_puts_recurring_parts_first():
    rng = np.random.default_rng(0)
    handle, body = np.eye(6)[0], np.eye(6)[1]
    feats = [handle + 0.02 * rng.normal(size=(20, 6)), body + 0.02 * rng.normal(size=(20, 6)),
             rng.normal(size=(3, 6))]  # three one-off segments, scattered
    owner = np.concatenate([np.arange(20), np.arange(20), np.array([0, 5, 9])])
    rank = PartRanking.fit({"mug": (np.concatenate(feats), owner)}, RankingConfig(clusters=5, min_coverage=0.5))
    parts = rank.classes["mug"]
    assert len(parts.names) == 2 and (parts.coverage >= 0.5).all()
    labels = rank.assign("mug", np.stack([handle, body]))
    assert labels[0] != labels[1]
    assert (rank.assign("lamp", np.stack([handle])) == -1).all()
    back = PartRanking.from_dict(rank.to_dict())
    assert np.array_equal(back.assign("mug", np.stack([handle, body])), labels)


def test_the_pipeline_runs_on_mask2former_features(toy_image):
    pytest.importorskip("transformers")
    from crossdistill.teachers.mask2former import Mask2FormerInstanceTeacher
    from crossdistill.teachers.testing import tiny_mask2former

    teacher = Mask2FormerInstanceTeacher(tiny_mask2former(), score_threshold=0.0, max_instances=2)
    img, _ = toy_image("mug", 0, 64)
    inst = teacher.instances(views_from_images([img]))[0]
    assert len(inst) >= 1
    crops = crop_instances([inst], (64, 64), 16, class_names={0: "zero"}, min_pixels=1)
    assert crops and crops[0].features.shape[0] == inst.features.shape[0]
    cfg = PartDistillationConfig(grid=16, dim=16, queries=4, layers=1, heads=2, train=TrainConfig(steps=3, batch_size=2),
                                 rounds=1)
    model, _ = PartDistillation.fit(crops, cfg, teacher.teacher_id, progress=False)
    res = model.predict_image(crops, inst.masks)
    assert res.parts.shape == (64, 64)


@pytest.mark.gpu
def test_fit_and_decode_on_cuda(toy):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    crops = toy[4][:4]
    cfg = PartDistillationConfig(**{**FAST.__dict__, "train": TrainConfig(steps=3, batch_size=4)})
    model, _ = PartDistillation.fit(crops, cfg, device="cuda", progress=False)
    on_gpu = model.decode(crops, device="cuda")
    on_cpu = model.decode(crops, device="cpu")
    for a, b in zip(on_gpu, on_cpu):
        assert np.allclose(a.scores, b.scores, atol=1e-4)


def test_each_query_offers_its_mask_at_every_proposal_threshold(toy, fitted):
    from dataclasses import replace

    images, gts, classes, insts, crops = toy
    model, _ = fitted
    mine = [c for c in crops if c.image_index == 0]
    assert model.config.proposal_thresholds == (0.0, -2.0, 2.0)  # the default
    one = type(model)(model.decoder, model.ranking, replace(model.config, proposal_thresholds=(0.0,)),
                      model.teacher_id, model.head).predict_image(mine, insts[0].masks)
    three = model.predict_image(mine, insts[0].masks)
    n_parts = len(np.unique(one.parts[one.parts >= 0]))
    q = len(one.proposals) - n_parts  # query masks at logit > 0, after the parts
    assert len(three.proposals) == n_parts + 3 * q
    # the partition does not change; per crop the masks come threshold by threshold, nested
    assert np.array_equal(one.parts, three.parts)
    base, loose, tight = (three.proposals[n_parts + j * q:n_parts + (j + 1) * q] for j in range(3))
    assert np.array_equal(base, one.proposals[n_parts:])
    assert (tight <= base).all() and (base <= loose).all() and (loose.sum() > base.sum() > tight.sum())
    # a query's other masks rank just below its own mask, above every lower-scored query's mask
    s = three.proposal_scores[n_parts:]
    assert (s[q:2 * q] < s[:q]).all() and (s[:q] - s[q:2 * q] < 0.01).all()
