"""The scale an object's parts are first shown at (``segment.json`` meta.default_scale, viewer, API)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main
from crossdistill.export.parts import scale_dirname
from crossdistill.methods.sampart3d.default_scale import (FIXED_DEFAULT, TARGET_PARTS, default_scale_index,
                                                          default_scale_of)

SCALES = (0.0, 0.5, 1.0, 1.5, 2.0)


def test_closed_surfaces_with_geometric_masks_open_at_the_part_count_nearest_the_target():
    counts = [TARGET_PARTS + 7, TARGET_PARTS + 2, TARGET_PARTS - 5, 3, 1]
    assert default_scale_index(SCALES, counts, "closed_surface", "geometric-parts") == 1
    tie = [TARGET_PARTS + 2, TARGET_PARTS - 2, 2, 1, 1]  # equally near: the finer scale
    assert default_scale_index(SCALES, tie, "closed_surface", "geometric-parts") == 0
    labels = [np.arange(n) % n for n in counts]
    assert default_scale_of(SCALES, labels, "closed_surface", "geometric-parts") == SCALES[1]
    assert default_scale_of(SCALES, labels, "pieces", "geometric-parts") == FIXED_DEFAULT


@pytest.mark.parametrize("kind,mask_kind", [("pieces", "render-cues"), ("points", "geometric-parts"),
                                            ("closed_surface", "sam-like")])
def test_elsewhere_the_default_is_scale_1_or_the_middle_one(kind, mask_kind):
    counts = [TARGET_PARTS, 6, 4, 3, 1]
    assert SCALES[default_scale_index(SCALES, counts, kind, mask_kind)] == FIXED_DEFAULT
    assert default_scale_index((0.0, 0.5, 2.0), [9, 5, 1], kind, mask_kind) == 1
    with pytest.raises(ValueError, match="one part count per scale"):
        default_scale_index(SCALES, counts[:3], kind, mask_kind)


def test_segment_records_the_default_scale_of_a_closed_surface(tmp_path, fast_segment_args):
    mesh = trimesh.creation.capsule(height=1.2, radius=0.25, count=[16, 16])  # one closed surface
    mesh.vertices[:, 0] *= 1.0 + 0.6 * np.cos(3 * mesh.vertices[:, 2])  # bulges and waists: parts to find
    src = tmp_path / "figure.ply"
    mesh.export(src)
    assert main(["segment", str(src), "-o", str(tmp_path / "out"), *fast_segment_args]) == 0
    doc = json.loads((tmp_path / "out" / "figure" / "segment.json").read_text())
    meta = doc["meta"]
    assert meta["shape_kind"] == "closed_surface" and meta["mask_kind"] == "geometric-parts"
    labels = [np.load(tmp_path / "out" / "figure" / scale_dirname(s) / "labels.npy") for s in doc["scales"]]
    assert [int(l.max()) + 1 for l in labels] == [doc["n_parts"][scale_dirname(s)] for s in doc["scales"]]
    expected = default_scale_of(doc["scales"], labels, "closed_surface", "geometric-parts")
    assert meta["default_scale"] == expected
