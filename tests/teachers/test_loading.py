"""Weight lookup: one-line errors on a miss, local model directories, the backend table."""

from __future__ import annotations

import time

import pytest

from crossdistill.errors import InputError
from crossdistill.teachers import (
    BACKENDS,
    Dinov2FeatureTeacher,
    WeightsNotFoundError,
    load_teacher,
    local_model_dir,
    teacher_status,
)
from crossdistill.teachers._hf import downloads_allowed, resolve_source


def _one_line_error(fn) -> str:
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as info:
        fn()
    assert time.perf_counter() - t0 < 10.0, "a missing model must fail fast, not hang"
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, InputError)
    return msg


def test_missing_local_path_names_hub_id_and_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSDISTILL_MODELS", str(tmp_path / "models"))
    msg = _one_line_error(lambda: Dinov2FeatureTeacher.from_pretrained(tmp_path / "nope"))
    assert "facebook/dinov2-small" in msg and str(tmp_path / "nope") in msg
    assert str(tmp_path / "models" / "facebook" / "dinov2-small") in msg
    (tmp_path / "empty").mkdir()
    msg = _one_line_error(lambda: Dinov2FeatureTeacher.from_pretrained(tmp_path / "empty"))
    assert str(tmp_path / "empty") in msg


@pytest.mark.parametrize("info", [b for b in BACKENDS if b.hub_id is not None], ids=lambda b: b.name)
def test_missing_hub_model_is_one_line_for_every_backend(info, monkeypatch, tmp_path):
    monkeypatch.setenv("CROSSDISTILL_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = _one_line_error(lambda: load_teacher(info.name, "nobody/no-such-model", allow_download=True))
    assert "nobody/no-such-model" in msg and str(tmp_path / "nobody" / "no-such-model") in msg


def test_download_policy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not downloads_allowed(True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert downloads_allowed(True) and not downloads_allowed(False)


def test_models_dir_copy_is_found_and_loaded(tiny_dinov2, tmp_path, monkeypatch, views):
    monkeypatch.setenv("CROSSDISTILL_MODELS", str(tmp_path))
    target = local_model_dir("facebook/dinov2-small")
    assert target == tmp_path / "facebook" / "dinov2-small"
    rows = {r.name: r for r in teacher_status()}
    assert set(rows) == {b.name for b in BACKENDS} and not rows["dinov2"].weights_found
    assert "facebook/dinov2-small" in rows["dinov2"].hint
    tiny_dinov2.save_pretrained(target)
    assert resolve_source("facebook/dinov2-small") == (str(target), True)
    rows = {r.name: r for r in teacher_status()}
    assert rows["dinov2"].available and rows["dinov2"].where == str(target)
    assert not rows["sam"].weights_found and rows["sam"].deps_ok
    # no preprocessor config saved: the model loads, the processor lookup fails with one line
    msg = _one_line_error(lambda: load_teacher("dinov2"))
    assert "processor" in msg
    from transformers import BitImageProcessorPil

    BitImageProcessorPil().save_pretrained(target)
    teacher = load_teacher("dinov2", image_size=32, upsample="bilinear")
    assert teacher.name == "facebook/dinov2-small"
    assert teacher.features(views).features.shape == (2, 32, 4, 4)


def test_unknown_backend():
    with pytest.raises(InputError, match="known: dinov2, sam"):
        load_teacher("nope")
