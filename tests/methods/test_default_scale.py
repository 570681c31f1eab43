"""The scale an object's parts are first shown at (``segment.json`` meta.default_scale, viewer, API)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main
from crossdistill.export.parts import scale_dirname
from crossdistill.geometry.io import load_shape
from crossdistill.methods.sampart3d.default_scale import (CONCAVE_CUT_SHARE, FIXED_DEFAULT, TARGET_PARTS,
                                                          concave_cut_shares, concave_gated_index,
                                                          default_scale_index, default_scale_of)
from crossdistill.types import Shape

SCALES = (0.0, 0.5, 1.0, 1.5, 2.0)


def test_closed_surfaces_with_geometric_masks_open_at_the_concave_gated_part_count():
    counts = [TARGET_PARTS + 7, TARGET_PARTS + 2, TARGET_PARTS - 1, 3, 1]
    high, low = [CONCAVE_CUT_SHARE * 2] * 5, [CONCAVE_CUT_SHARE / 2] * 5
    assert default_scale_index(SCALES, counts, "closed_surface", "geometric-parts", high) == 2
    assert default_scale_index(SCALES, counts, "closed_surface", "geometric-parts", low) == 3  # no crease cut
    with pytest.raises(ValueError, match="concave cut shares"):
        default_scale_index(SCALES, counts, "closed_surface", "geometric-parts")
    # from labels and the mesh: a waisted body cut at its groove at the coarser scale, sliced into
    # wedges (convex cuts) at the finer one
    shape, z, angle = _waisted_body()
    labels = [_wedges(angle, TARGET_PARTS), (z > 0).astype(np.int64), np.zeros(len(z), np.int64)]
    assert default_scale_of((0.0, 1.0, 2.0), labels, "closed_surface", "geometric-parts", shape=shape) == 1.0
    with pytest.raises(ValueError, match="needs its mesh"):
        default_scale_of((0.0, 1.0, 2.0), labels, "closed_surface", "geometric-parts")
    assert default_scale_of((0.0, 1.0, 2.0), labels, "pieces", "geometric-parts") == FIXED_DEFAULT


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
    expected = default_scale_of(doc["scales"], labels, "closed_surface", "geometric-parts", shape=load_shape(src))
    assert meta["default_scale"] == expected


def _waisted_body() -> tuple[Shape, np.ndarray, np.ndarray]:
    """A closed surface of revolution about z with one concave groove (a waist) at z = 0, and its
    face centroids' z and angle about the axis."""
    t = np.linspace(0.0, np.pi, 81)
    z = -np.cos(t)
    r = np.sin(t) * 0.4 * (1.0 - 0.5 * np.exp(-(z / 0.2) ** 2))
    mesh = trimesh.creation.revolve(np.c_[r, z], sections=48)
    mesh.merge_vertices()
    assert mesh.is_watertight
    c = mesh.triangles_center
    return (Shape(vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces)), c[:, 2],
            np.arctan2(c[:, 1], c[:, 0]))


def _wedges(angle: np.ndarray, k: int) -> np.ndarray:
    """k parts cut along meridians (convex cuts: they slice the body, they do not follow a crease)."""
    return (np.floor((angle + np.pi) / (2 * np.pi) * k) % k).astype(np.int64)


def test_concave_cut_share_is_high_along_a_groove_and_low_across_flat_or_convex_surface():
    shape, z, angle = _waisted_body()
    at_waist, on_flank = (z > 0).astype(int), (z > 0.6).astype(int)
    shares = concave_cut_shares([at_waist, on_flank, _wedges(angle, 10), np.zeros_like(at_waist)], shape)
    assert shares[0] > 0.9  # the groove is a concave crease all round
    assert shares[1] < 0.05 and shares[2] < CONCAVE_CUT_SHARE  # flank and meridians: no concave crease
    assert shares[3] == 0.0  # no cut at all
    with pytest.raises(ValueError, match="labels for"):
        concave_cut_shares([at_waist[:-1]], shape)


def test_gate_passes_over_scales_whose_cuts_miss_concave_creases_are_passed_over():
    counts = [TARGET_PARTS, TARGET_PARTS + 1, TARGET_PARTS - 3, 3, 2]
    low, high = CONCAVE_CUT_SHARE / 2, CONCAVE_CUT_SHARE * 2
    gate = lambda shares: concave_gated_index(counts, shares)  # noqa: E731
    assert gate([low, high, high, high, high]) == 1  # the nearest count among the scales that cut parts
    assert gate([low, low, low, high, high]) == 3
    assert gate([high] * 5) == 0  # every scale cuts along creases: the count rule decides
    # a near-convex shape (no scale cuts along concave creases): the coarsest with two parts or more
    assert gate([low] * 5) == 4
    assert concave_gated_index([18, 20, 15, 2, 1], [0.0] * 5) == 3
    with pytest.raises(ValueError, match="one concave share per scale"):
        gate([high] * 3)
