"""The offline instance teacher and photos as Views."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.errors import InputError
from crossdistill.render.images import plain_background_mask, read_rgb, views_from_images
from crossdistill.teachers.base import InstanceTeacher
from crossdistill.teachers.cache import cached
from crossdistill.teachers.offline_instances import N_CHANNELS, RenderInstanceTeacher
from crossdistill.teachers.registry import load_teacher


def _two_objects() -> np.ndarray:
    img = np.full((64, 80, 3), 250, np.uint8)
    img[10:40, 5:30] = (200, 30, 30)
    img[20:60, 45:75] = (30, 30, 200)
    img[25:30, 55:60] = (250, 250, 250)  # a background-coloured hole inside the second object
    return img


def test_background_is_the_border_colour_connected_to_the_border():
    fg = plain_background_mask(_two_objects())
    assert fg[15, 10] and fg[30, 60] and not fg[0, 0] and not fg[62, 40]
    assert fg[27, 57]  # the white patch inside the object is not background


def test_instances_are_the_foreground_components_with_image_features():
    teacher = RenderInstanceTeacher()
    assert isinstance(teacher, InstanceTeacher) and teacher.is_offline_default
    sets = teacher.instances(views_from_images([_two_objects()]))
    inst = sets[0]
    assert len(inst) == 2 and inst.masks.shape == (2, 64, 80)
    assert inst.masks[0].sum() > inst.masks[1].sum() * 0.5  # largest first
    assert inst.masks[1][15, 10] or inst.masks[0][15, 10]
    assert inst.features.shape == (N_CHANNELS, 16, 20)
    assert np.all(inst.features[:, 0, 0] == 0)  # background cell
    red, blue = inst.features[4:7, 6, 4], inst.features[4:7, 10, 15]  # colour channels inside each object
    assert red[0] > red[2] and blue[2] > blue[0]


def test_through_the_registry_and_the_cache(tmp_path, toy_image):
    teacher = cached(load_teacher("offline_instances"), tmp_path)
    views = views_from_images([toy_image("mug", 0, 64)[0]])
    a = teacher.instances(views)
    b = teacher.instances(views)
    assert np.array_equal(a[0].masks, b[0].masks) and np.allclose(a[0].features, b[0].features)


def test_read_rgb_shrinks_and_rejects_bad_files(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((100, 300, 3), np.uint8)).save(tmp_path / "wide.png")
    rgb, alpha = read_rgb(tmp_path / "wide.png", max_side=150)
    assert rgb.shape == (50, 150, 3) and alpha is None
    Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(tmp_path / "a.png")
    assert read_rgb(tmp_path / "a.png")[1].shape == (10, 10)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable image"):
        read_rgb(tmp_path / "bad.png")
    with pytest.raises(InputError, match="no such file"):
        read_rgb(tmp_path / "none.png")
    with pytest.raises(InputError):
        views_from_images([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])
