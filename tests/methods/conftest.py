"""Shapes shared by the method tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import trimesh

from crossdistill.types import Shape


def _two_box_shape(height: float = 1.0) -> tuple[Shape, np.ndarray]:
    """A flat base box under a taller top box of the given height, and the part (0 base, 1 top) of each face."""
    a = trimesh.creation.box((1.0, 0.4, 1.0))
    b = trimesh.creation.box((0.5, height, 0.5))
    b.apply_translation((0, 0.2 + height / 2 + 0.05, 0))
    faces = np.concatenate([a.faces, b.faces + len(a.vertices)])
    shape = Shape(np.concatenate([a.vertices, b.vertices]), faces)
    return shape, np.concatenate([np.zeros(len(a.faces), np.int64), np.ones(len(b.faces), np.int64)])


@pytest.fixture(scope="session")
def two_box_shape() -> Callable[[float], tuple[Shape, np.ndarray]]:
    """Builder of the two-box shape (height of the top box) -> (shape, face part ids)."""
    return _two_box_shape
