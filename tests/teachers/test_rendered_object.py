"""Teachers on a real rendered PartNet-Mobility object (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.teachers import Dinov2FeatureTeacher, SamMaskTeacher, TeacherCache, cached

from .conftest import check_cache_hit

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def rendered_views(shared_data):
    from crossdistill.geometry.io import load_shape
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.render import axis_rig, render_shape

    path = shared_data / "partnet_mobility_dev" / "TrashCan" / "102181.glb"  # 284 faces
    if not path.is_file():
        pytest.skip(f"{path} not found")
    shape, _ = normalize_shape(load_shape(path))
    return render_shape(shape, axis_rig(96).subset([0, 2]), progress=False, n_samples=500, threads=1).views


def test_sam_and_dinov2_on_rendered_object(rendered_views, tiny_sam, tiny_dinov2, tmp_path, device):
    views = rendered_views
    assert views.foreground.any(axis=(1, 2)).all()
    sam = cached(SamMaskTeacher.from_model(tiny_sam, points_per_side=6, pred_iou_thresh=-1.0, stability_score_thresh=-1.0,
                                           crop_to_foreground=True, device=device), TeacherCache(tmp_path))
    sets, again = check_cache_hit(lambda: sam.masks(views), tiny_sam.mask_decoder)
    for v, ms in enumerate(sets):
        assert len(ms) > 0 and ms.masks.shape[1:] == (96, 96)
        assert not (ms.masks & ~views.foreground[v]).any()
        assert np.array_equal(ms.masks, again[v].masks)
    dino = Dinov2FeatureTeacher.from_model(tiny_dinov2, image_size=96, upsample="jbu", device=device)
    fm = dino.features(views)
    assert fm.features.shape == (2, 32, 12, 12)
    px = fm.pixel_features(0).numpy()
    assert px.shape == (32, 96, 96) and np.isfinite(px).all()
