"""The learned class-agnostic mask teacher: its loss, its read-out, training on labelled shapes, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from crossdistill.errors import InputError
from crossdistill.render import render_shape
from crossdistill.render.cameras import random_rig
from crossdistill.teachers import registry
from crossdistill.types import Shape
from crossdistill.teachers.learned_masks import (
    LearnedMaskConfig,
    LearnedMaskTeacher,
    discriminative_loss,
    greedy_clusters,
)


def test_discriminative_loss_matches_hand_computation():
    emb = torch.tensor([[0.0, 1.0, 5.0]])  # D = 1, three pixels
    lab = torch.tensor([0, 0, 1])
    # part 0: mean 0.5, both pixels 0.5 away -> (0.5 - 0.25)^2 each; part 1 alone: 0; pull = mean(0.0625, 0)
    # means 0.5 and 5.0 are 4.5 apart: push (2 * 3 - 4.5)^2 = 2.25 for each ordered pair
    got = discriminative_loss(emb, lab, delta_var=0.25, delta_dist=3.0, reg=0.0)
    assert got.item() == pytest.approx(0.03125 + 2.25)
    got = discriminative_loss(emb, lab, delta_var=0.25, delta_dist=2.0, reg=0.1)  # 4.5 > 4: no push
    assert got.item() == pytest.approx(0.03125 + 0.1 * (0.5 + 5.0) / 2)


def test_discriminative_loss_ignores_unlabelled_pixels():
    emb = torch.tensor([[0.0, 1.0, 5.0, 100.0]], requires_grad=True)
    base = discriminative_loss(emb[:, :3], torch.tensor([0, 0, 1]), 0.25, 3.0)
    assert discriminative_loss(emb, torch.tensor([0, 0, 1, -1]), 0.25, 3.0).item() == pytest.approx(base.item())
    none = discriminative_loss(emb, torch.full((4,), -1), 0.25, 3.0)
    none.backward()
    assert none.item() == 0.0 and emb.grad is not None and not emb.grad.any()


def test_greedy_clusters_recovers_separated_blobs_and_drops_small_ones():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    truth = np.repeat([0, 1, 2], [50, 40, 3])
    emb = centres[truth] + rng.normal(0, 0.2, (len(truth), 2))
    lab = greedy_clusters(emb, radius=1.5, min_size=5)
    assert (lab[truth == 2] == -1).all()  # the 3-point blob is below min_size
    big = truth < 2
    assert len(np.unique(lab[big])) == 2
    for t in (0, 1):
        assert len(np.unique(lab[truth == t])) == 1


def _stacked_boxes():
    """A wide low box with a narrow tall box standing on it (touching, one colour): (shape, (F,) part id)."""
    base = trimesh.creation.box([0.8, 0.8, 0.2])
    post = trimesh.creation.box([0.2, 0.2, 0.6])
    post.apply_translation([0.0, 0.0, 0.4])
    mesh = trimesh.util.concatenate([base, post])
    labels = np.repeat([0, 1], [len(base.faces), len(post.faces)])
    shape = Shape(vertices=np.asarray(mesh.vertices, np.float64), faces=np.asarray(mesh.faces, np.int64))
    return shape, labels


@pytest.fixture(scope="module")
def trained():
    shape, labels = _stacked_boxes()
    cfg = LearnedMaskConfig(views_per_shape=48, size=64, crop=48, iterations=200, seed=0)
    return LearnedMaskTeacher.fit([shape], [[labels, labels]], cfg, progress=False), shape, labels


def test_trained_teacher_separates_touching_parts_in_new_views(trained):
    teacher, shape, labels = trained
    views = render_shape(shape, random_rig(4, 96, seed=123), progress=False).views
    sets = teacher.masks(views)
    assert len(sets) == 4
    ious = []
    for v, ms in enumerate(sets):
        fg = views.face_id[v] >= 0
        assert ms.masks.shape[1:] == fg.shape and not (ms.masks & ~fg).any()
        assert set(ms.level.tolist()) >= {0, 1}
        assert (ms.masks[ms.level == 0].sum(0) > 0).sum() == fg.sum()  # level 0 covers the object
        part = np.where(fg, labels[np.clip(views.face_id[v], 0, None)], -1)
        coarse = ms.masks[ms.level == 1]
        for p in np.unique(part[part >= 0]):
            gt = part == p
            ious.append(max((gt & m).sum() / (gt | m).sum() for m in coarse))
    # one connected object: only the learnt embedding can split it into its two boxes
    assert np.mean(ious) > 0.7, ious


def test_save_load_round_trip_and_registry(trained, tmp_path):
    teacher, shape, _ = trained
    path = teacher.save(tmp_path / "masks.pt")
    again = registry.load_mask_teacher("learned", path)
    assert isinstance(again, LearnedMaskTeacher) and again.teacher_id == teacher.teacher_id
    views = render_shape(shape, random_rig(2, 64, seed=5), progress=False).views
    a, b = teacher.masks(views), again.masks(views)
    assert all(np.array_equal(x.masks, y.masks) and np.array_equal(x.level, y.level) for x, y in zip(a, b))
    with pytest.raises(InputError, match="mask-model"):
        registry.load_mask_teacher("learned", None)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="learned mask teacher"):
        LearnedMaskTeacher.load(tmp_path / "junk.pt")


def test_fit_rejects_mismatched_labels():
    shape, labels = _stacked_boxes()
    with pytest.raises(InputError, match="label levels"):
        LearnedMaskTeacher.fit([shape], [[labels]], LearnedMaskConfig(iterations=1), progress=False)
    with pytest.raises(InputError):
        LearnedMaskConfig(delta_var=2.0, delta_dist=1.0)


def test_segment_cli_uses_a_learned_teacher_file(trained, tmp_path, capsys):
    import json

    from crossdistill.cli.main import main

    teacher, _, _ = trained
    model = teacher.save(tmp_path / "masks.pt")
    mesh = trimesh.util.concatenate([trimesh.creation.box([0.8, 0.8, 0.2]),
                                     trimesh.creation.box([0.2, 0.2, 0.6]).apply_translation([0, 0, 0.4])])
    src = tmp_path / "post.ply"
    mesh.export(src)
    fast = ["--points", "3000", "--views", "10", "--size", "96", "--iterations", "60", "--quiet"]
    out = tmp_path / "out"
    assert main(["segment", str(src), "-o", str(out), *fast, "--mask-teacher", "learned",
                 "--mask-model", str(model)]) == 0
    meta = json.loads((out / "post" / "segment.json").read_text())["meta"]
    assert meta["mask_teacher"] == teacher.teacher_id and meta["mask_teacher_offline"] is False
    assert np.load(out / "post" / "scale_1.0" / "labels.npy").shape == (len(mesh.faces),)
    capsys.readouterr()
    assert main(["segment", str(src), "-o", str(tmp_path / "out2"), *fast, "--mask-teacher", "learned"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mask-model" in err[0]
