"""Mesh pieces: faces joined through a shared vertex or through a shared edge."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.geometry import topology
from crossdistill.geometry.demo import demo_shape
from crossdistill.geometry.topology import face_components


def test_surfaces_touching_at_one_point_are_one_piece_by_vertex_and_two_by_edge():
    # two triangles meeting at the point (1, 0, 0) only; the second's copy of it is a separate vertex
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [2, 0, 0], [2, 1, 0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    assert face_components(v, f, connect="vertex").tolist() == [0, 0]
    assert sorted(face_components(v, f, connect="edge").tolist()) == [0, 1]
    # sharing an edge (welded from duplicated vertices) joins them under both definitions
    v2 = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    f2 = np.array([[0, 1, 2], [3, 5, 4]])
    for connect in ("vertex", "edge"):
        assert face_components(v2, f2, connect=connect).tolist() == [0, 0]
    # without welding the duplicated vertices, nothing is shared
    assert sorted(face_components(v2, f2, weld=False, connect="edge").tolist()) == [0, 1]


def test_edge_pieces_of_the_demo_are_its_primitives():
    shape = demo_shape()
    by_edge = face_components(shape.vertices, shape.faces, connect="edge")
    by_vertex = face_components(shape.vertices, shape.faces, connect="vertex")
    # each of the 15 primitives is one edge-connected piece; touching at a point welds some by vertex
    assert len(np.unique(by_edge)) == 15
    for node in range(len(shape.node_names)):
        assert len(np.unique(by_edge[shape.face_node == node])) == 1
    assert len(np.unique(by_vertex)) < 15


def test_connect_defaults_to_the_module_setting_and_is_validated(monkeypatch):
    shape = demo_shape()
    assert topology.PIECE_CONNECT == "edge"  # the shipped definition (segment_notes.md item 31)
    assert len(np.unique(face_components(shape.vertices, shape.faces))) == 15
    monkeypatch.setattr(topology, "PIECE_CONNECT", "vertex")
    assert np.array_equal(face_components(shape.vertices, shape.faces),
                          face_components(shape.vertices, shape.faces, connect="vertex"))
    with pytest.raises(ValueError, match="connect"):
        face_components(shape.vertices, shape.faces, connect="face")


def test_connected_components_baseline_joins_faces_through_edges():
    from crossdistill.eval.baselines import connected_component_labels

    shape = demo_shape()
    labels = connected_component_labels(shape)
    assert np.array_equal(labels, face_components(shape.vertices, shape.faces, connect="edge"))
    assert len(np.unique(labels)) == len(shape.node_names)  # head and torso touch at a point: two parts
