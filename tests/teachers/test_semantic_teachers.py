"""Semantic teachers for LiDAR distillation: SegFormer (tiny random model) and the box-supervised offline teacher."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.errors import InputError
from crossdistill.teachers.base import SemanticTeacher
from crossdistill.teachers.box2d import BoxSupervisedTeacher, BoxTeacherConfig, box_pixel_labels
from crossdistill.teachers.registry import load_teacher


def test_segformer_maps_and_shared_classifier(tmp_path):
    pytest.importorskip("transformers")
    from crossdistill.teachers.segformer import SegformerSemanticTeacher
    from crossdistill.teachers.testing import tiny_segformer

    model = tiny_segformer()
    t = SegformerSemanticTeacher(model, image_size=(64, 128))
    assert isinstance(t, SemanticTeacher) and not t.is_offline_default
    assert t.class_names == ("road", "car", "person", "rider", "sky")
    images = [np.zeros((40, 90, 3), np.uint8), np.full((40, 90, 3), 200, np.uint8)]
    maps = t.segment(images)
    W, b = t.classifier()
    for m in maps:
        assert m.image_size == (40, 90) and m.features.shape == (16, 16, 32) and m.logits.shape == (5, 16, 32)
        assert np.allclose(np.einsum("kc,chw->khw", W, m.features) + b[:, None, None], m.logits, atol=1e-4)
    assert not np.allclose(maps[0].logits, maps[1].logits)
    # real loading code: a saved model folder through the registry, no network
    model.save_pretrained(tmp_path / "seg")
    from transformers import SegformerImageProcessorPil

    SegformerImageProcessorPil(size={"height": 64, "width": 128}).save_pretrained(tmp_path / "seg")
    loaded = load_teacher("segformer", tmp_path / "seg")
    assert np.allclose(loaded.segment(images[:1])[0].logits, maps[0].logits, atol=1e-4)


def test_box_pixel_labels_smallest_box_wins_and_dontcare_is_ignored():
    lab = box_pixel_labels((10, 10), np.array([[0, 0, 8, 8], [2, 2, 4, 4], [6, 6, 10, 10]]), np.array([1, 2, 0]),
                           ignore=np.array([False, False, True]))
    assert lab[3, 3] == 2 and lab[1, 1] == 1 and lab[9, 9] == -1 and lab[7, 7] == -1 and lab[9, 0] == 0


def _scene(seed: int):
    """A grey road image with a red 'car' rectangle at a random place; its 2D box."""
    rng = np.random.default_rng(seed)
    img = np.full((64, 128, 3), 110, np.uint8)
    img[:20] = (150, 190, 230)  # sky
    x0, y0 = int(rng.integers(5, 90)), int(rng.integers(25, 40))
    img[y0:y0 + 18, x0:x0 + 30] = (200, 30, 30)
    return img, np.array([[x0, y0, x0 + 30, y0 + 18]], float)


def test_box_teacher_learns_what_the_boxes_show(tmp_path):
    names = ("background", "car")
    train = [_scene(s) for s in range(4)]
    labels = [box_pixel_labels(i.shape[:2], b, np.array([1])) for i, b in train]
    t = BoxSupervisedTeacher.fit([i for i, _ in train], labels, names,
                                 BoxTeacherConfig(iterations=80, crop=32, scale=1.0, width=8), progress=False)
    assert isinstance(t, SemanticTeacher) and t.is_offline_default
    img, box = _scene(99)
    m = t.segment([img])[0]
    pred = m.logits.argmax(0)
    x0, y0, x1, y1 = box[0].astype(int)
    inside = pred[y0 + 3:y1 - 3, x0 + 3:x1 - 3]
    outside = np.ones_like(pred, bool)
    outside[y0 - 4:y1 + 4, x0 - 4:x1 + 4] = False
    assert (inside == 1).mean() > 0.8 and (pred[outside] == 0).mean() > 0.9
    W, b = t.classifier()
    assert np.allclose(np.einsum("kc,chw->khw", W, m.features) + b[:, None, None], m.logits, atol=1e-4)
    path = t.save(tmp_path / "teacher.pt")
    back = load_teacher("box2d", path)
    assert np.allclose(back.segment([img])[0].logits, m.logits, atol=1e-5) and back.teacher_id == t.teacher_id
    with pytest.raises(InputError):
        BoxSupervisedTeacher.fit([img], [np.zeros((3, 3), np.int64)], names)
