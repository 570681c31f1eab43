"""The concave-cut gate, a default-scale candidate measured by the single-surface bench
(``bench/default_scale_candidates.py``; not the shipped rule)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from default_scale_candidates import CONCAVE_CUT_SHARE, concave_cut_shares, concave_gated_index  # noqa: E402

from crossdistill.methods.sampart3d.default_scale import TARGET_PARTS  # noqa: E402
from crossdistill.types import Shape  # noqa: E402


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


def test_scales_whose_cuts_miss_concave_creases_are_passed_over():
    counts = [TARGET_PARTS, TARGET_PARTS + 3, 6, 4, 2]
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
