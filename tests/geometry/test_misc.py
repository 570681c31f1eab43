"""Normalisation, nearest neighbours and the demo object."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from crossdistill.errors import InputError
from crossdistill.geometry.demo import COARSE_PARTS, FINE_PARTS, demo_part_labels, demo_part_names, demo_shape
from crossdistill.geometry.io import validate_shape
from crossdistill.geometry.neighbors import knn, radius_neighbors
from crossdistill.geometry.normalize import normalize_shape, unit_box_transform
from crossdistill.types import Shape

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(arrays(np.float64, st.tuples(st.integers(2, 40), st.just(3)), elements=finite))
def test_normalize_round_trip(points: np.ndarray) -> None:
    shape = Shape(vertices=points)
    if np.ptp(points, axis=0).max() == 0:
        with pytest.raises(InputError):
            unit_box_transform(shape)
        return
    unit, tf = normalize_shape(shape)
    lo, hi = unit.bounds
    np.testing.assert_allclose((hi - lo).max(), 1.0, rtol=1e-9)
    np.testing.assert_allclose((hi + lo) / 2, 0.0, atol=1e-9)
    np.testing.assert_allclose(tf.invert(unit.vertices), points, atol=1e-9 * max(1.0, np.abs(points).max()))
    assert shape.vertices is points  # input untouched


def test_normalize_keeps_faces_and_attributes() -> None:
    shape = demo_shape()
    before = shape.vertices.copy()
    unit, tf = normalize_shape(shape)
    assert unit.faces is shape.faces and unit.face_colors is shape.face_colors
    assert unit.node_names == shape.node_names
    np.testing.assert_allclose(unit.face_normals, shape.face_normals, atol=1e-9)
    np.testing.assert_array_equal(shape.vertices, before)
    np.testing.assert_allclose(tf.apply(shape.vertices), unit.vertices)


def test_knn_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    ref, query = rng.normal(size=(200, 3)), rng.normal(size=(30, 3))
    dist, idx = knn(ref, query, k=5)
    assert dist.shape == idx.shape == (30, 5) and idx.dtype == np.int64
    brute = np.linalg.norm(query[:, None] - ref[None], axis=-1)
    np.testing.assert_array_equal(idx, np.argsort(brute, axis=1)[:, :5])
    np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :5])
    d1, i1 = knn(ref, query, k=1)
    assert i1.shape == (30, 1) and d1.shape == (30, 1)


def test_knn_pads_when_k_exceeds_points() -> None:
    dist, idx = knn(np.eye(3), np.zeros((2, 3)), k=5)
    assert (idx[:, 3:] == -1).all() and np.isinf(dist[:, 3:]).all() and (idx[:, :3] >= 0).all()


def test_radius_neighbors() -> None:
    ref = np.array([[0.0, 0, 0], [0.5, 0, 0], [2, 0, 0]])
    hits = radius_neighbors(ref, np.array([[0.0, 0, 0]]), radius=0.6)
    assert [h.tolist() for h in hits] == [[0, 1]]


def test_demo_shape_structure() -> None:
    shape = demo_shape()
    labels = demo_part_labels()
    names = demo_part_names()
    validate_shape(shape)
    assert 2000 <= shape.n_faces <= 10000
    assert shape.face_colors.shape == (shape.n_faces, 3) and shape.face_node.shape == (shape.n_faces,)
    assert len(shape.node_names) == len(set(shape.node_names)) == shape.face_node.max() + 1
    assert names == {"coarse": COARSE_PARTS, "fine": FINE_PARTS}
    for level, n_parts in (("coarse", len(COARSE_PARTS)), ("fine", len(FINE_PARTS))):
        assert labels[level].shape == (shape.n_faces,)
        assert set(np.unique(labels[level])) == set(range(n_parts))
    # every fine part lies inside one coarse part
    pairs = set(zip(labels["fine"].tolist(), labels["coarse"].tolist()))
    assert len(pairs) == len(FINE_PARTS)
    # connected components are not the parts: an arm is one piece holding two fine parts
    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
    comp = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=shape.n_faces)
    arm = comp[labels["fine"] == FINE_PARTS.index("left upper arm")][0]
    assert {FINE_PARTS[i] for i in np.unique(labels["fine"][comp == arm])} == {"left upper arm", "left forearm"}
    # some pieces touch (head on torso), some are separate (legs hang below the torso)
    head_lo = shape.vertices[shape.faces[labels["fine"] == FINE_PARTS.index("head")]][..., 1].min()
    torso_hi = shape.vertices[shape.faces[labels["fine"] == FINE_PARTS.index("torso")]][..., 1].max()
    leg_hi = shape.vertices[shape.faces[labels["fine"] == FINE_PARTS.index("left leg")]][..., 1].max()
    torso_lo = shape.vertices[shape.faces[labels["fine"] == FINE_PARTS.index("torso")]][..., 1].min()
    assert np.isclose(head_lo, torso_hi) and torso_lo - leg_hi > 0.01


def test_demo_is_deterministic_and_fresh() -> None:
    a, b = demo_shape(), demo_shape()
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert a.vertices is not b.vertices
