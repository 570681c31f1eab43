"""Text teachers (CLIPSeg masks, OWLv2 and Grounding DINO boxes) on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.errors import InputError
from crossdistill.teachers import (
    ClipSegTextTeacher,
    GroundingDinoTextTeacher,
    Owlv2TextTeacher,
    PartPredictions,
    TeacherCache,
    TextTeacher,
    cached,
)

from .conftest import PART_NAMES, check_cache_hit, make_views


def _check_boxes(preds: list[PartPredictions], views) -> None:
    H, W = views.rgb.shape[1:3]
    assert len(preds) == len(views)
    for p in preds:
        P = len(p)
        assert p.masks is None and p.boxes.shape == (P, 4) and p.boxes.dtype == np.float32
        assert p.labels.dtype == np.int64 and ((p.labels >= 0) & (p.labels < len(PART_NAMES))).all()
        assert p.scores.dtype == np.float32 and ((p.scores >= 0) & (p.scores <= 1)).all()
        b = p.boxes
        assert ((b[:, 0] >= 0) & (b[:, 2] <= W) & (b[:, 1] >= 0) & (b[:, 3] <= H)).all()
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
        assert np.all(np.diff(p.scores) <= 1e-6), "detections are sorted best first"
        assert p.part_names == PART_NAMES


# --------------------------------------------------------------------------- CLIPSeg


@pytest.fixture
def clipseg(tiny_clipseg, clip_tokenizer, device):
    return ClipSegTextTeacher.from_model(tiny_clipseg, tokenizer=clip_tokenizer, threshold=0.5, batch_size=4,
                                         device=device)


def test_clipseg_masks(clipseg):
    views = make_views(2, (48, 72))
    assert isinstance(clipseg, TextTeacher)
    preds = clipseg.predict(views, PART_NAMES)
    probs = clipseg.probabilities(views, PART_NAMES)
    assert probs.shape == (2, 3, 48, 72) and 0 <= probs.min() and probs.max() <= 1
    for v, p in enumerate(preds):
        assert p.boxes is None and p.masks.shape == (3, 48, 72) and p.masks.dtype == bool
        assert p.labels.tolist() == [0, 1, 2] and p.scores.dtype == np.float32
        assert ((p.scores >= 0) & (p.scores <= 1)).all()
        assert not (p.masks & ~views.foreground[v]).any()
        for k in range(3):  # score = mean probability inside the mask, above the threshold
            if p.masks[k].any():
                assert p.scores[k] == pytest.approx(probs[v, k].numpy()[p.masks[k]].mean(), abs=1e-5)
                assert p.scores[k] > 0.5


def test_clipseg_threshold_zero_gives_foreground(tiny_clipseg, clip_tokenizer, views):
    t = ClipSegTextTeacher.from_model(tiny_clipseg, tokenizer=clip_tokenizer, threshold=0.0)
    p = t.predict(views, PART_NAMES[:1])[0]
    assert np.array_equal(p.masks[0], views.foreground[0])


def test_clipseg_cache_and_errors(tiny_clipseg, clip_tokenizer, tmp_path, views):
    teacher = cached(ClipSegTextTeacher.from_model(tiny_clipseg, tokenizer=clip_tokenizer), TeacherCache(tmp_path))
    first, second = check_cache_hit(lambda: teacher.predict(views, PART_NAMES), tiny_clipseg)
    assert all(np.array_equal(a.masks, b.masks) for a, b in zip(first, second))
    with pytest.raises(InputError, match="tokenizer"):
        ClipSegTextTeacher.from_model(tiny_clipseg).predict(views, PART_NAMES)
    with pytest.raises(InputError):
        teacher.predict(views, [])


# --------------------------------------------------------------------------- OWLv2


def test_owlv2_boxes(tiny_owlv2, clip_tokenizer, device):
    views = make_views(3, (48, 80))
    t = Owlv2TextTeacher.from_model(tiny_owlv2, tokenizer=clip_tokenizer, score_threshold=0.0, batch_size=2,
                                    device=device)
    probs, boxes = t.raw(views, PART_NAMES)
    assert probs.shape == (3, 16, 3) and boxes.shape == (3, 16, 4)  # 4x4 patches, 3 queries
    preds = t.predict(views, PART_NAMES)
    _check_boxes(preds, views)
    assert sum(len(p) for p in preds) > 0
    none = Owlv2TextTeacher.from_model(tiny_owlv2, tokenizer=clip_tokenizer, score_threshold=1.0)
    assert all(len(p) == 0 for p in none.predict(views, PART_NAMES))


def test_owlv2_cache(tiny_owlv2, clip_tokenizer, tmp_path, views):
    t = cached(Owlv2TextTeacher.from_model(tiny_owlv2, tokenizer=clip_tokenizer, score_threshold=0.0), tmp_path)
    first, second = check_cache_hit(lambda: t.predict(views, PART_NAMES), tiny_owlv2)
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(first, second))


# --------------------------------------------------------------------------- Grounding DINO


def test_grounding_dino_caption_spans(tiny_grounding_dino, bert_tokenizer):
    t = GroundingDinoTextTeacher.from_model(tiny_grounding_dino, tokenizer=bert_tokenizer)
    ids, spans = t.caption(["Wheel", "seat leg"])
    assert ids[0].tolist() == [101, 1014, 1012, 1015, 1016, 1012, 102]
    assert spans == [(1, 2), (3, 5)]
    with pytest.raises(InputError, match="caption"):
        t.caption(["seat leg"] * 20)


def test_grounding_dino_boxes_and_cache(tiny_grounding_dino, bert_tokenizer, tmp_path, device):
    from transformers import GroundingDinoImageProcessorPil

    views = make_views(2, (48, 64))
    proc = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    t = GroundingDinoTextTeacher.from_model(tiny_grounding_dino, proc, tokenizer=bert_tokenizer,
                                            box_threshold=0.0, nms_thresh=0.7, device=device)
    probs, boxes = t.raw(views, PART_NAMES)
    assert probs.shape == (2, 20, 3) and boxes.shape == (2, 20, 4)
    assert 0 <= probs.min() and probs.max() <= 1
    c = cached(t, tmp_path)
    first, second = check_cache_hit(lambda: c.predict(views, PART_NAMES), tiny_grounding_dino)
    _check_boxes(first, views)
    assert sum(len(p) for p in first) > 0
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(first, second))
