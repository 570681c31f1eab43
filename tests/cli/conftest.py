"""Shared inputs of the CLI tests: a shape whose parts are unambiguous, and fast segment settings."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh


@pytest.fixture(scope="session")
def fast_segment_args() -> list[str]:
    """`crossdistill segment` options small enough for a unit test (a few seconds per object)."""
    return ["--points", "3000", "--views", "10", "--size", "96", "--iterations", "60", "--quiet"]


@pytest.fixture
def three_primitives() -> tuple[trimesh.Trimesh, np.ndarray]:
    """A box, a sphere and a cylinder, well apart along x; (mesh, (F,) primitive id per face)."""
    return make_three_primitives()


def make_three_primitives() -> tuple[trimesh.Trimesh, np.ndarray]:
    parts = [trimesh.creation.box(extents=(1, 1, 1)),
             trimesh.creation.icosphere(subdivisions=2, radius=0.6),
             trimesh.creation.cylinder(radius=0.4, height=1.2, sections=24)]
    for p, x in zip(parts, (-2.0, 0.0, 2.0)):
        p.apply_translation((x, 0, 0))
    gt = np.concatenate([np.full(len(p.faces), k) for k, p in enumerate(parts)])
    return trimesh.util.concatenate(parts), gt


@pytest.fixture(scope="module")
def three_primitives_module() -> tuple[trimesh.Trimesh, np.ndarray]:
    """:func:`three_primitives` for module-scoped fixtures."""
    return make_three_primitives()
