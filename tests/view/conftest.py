"""Shared inputs of the viewer tests: one small segmented, named object and a running viewer server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main

#: `crossdistill segment` options small enough for a unit test (as tests/cli/conftest.py's)
FAST = ["--points", "3000", "--views", "10", "--size", "96", "--iterations", "60", "--quiet"]


def make_primitives() -> tuple[trimesh.Trimesh, np.ndarray]:
    """A box, a sphere and a cylinder, well apart along x; (mesh, (F,) primitive id per face)."""
    parts = [trimesh.creation.box(extents=(1, 1, 1)),
             trimesh.creation.icosphere(subdivisions=2, radius=0.6),
             trimesh.creation.cylinder(radius=0.4, height=1.2, sections=24)]
    for p, x in zip(parts, (-2.0, 0.0, 2.0)):
        p.apply_translation((x, 0, 0))
    gt = np.concatenate([np.full(len(p.faces), k) for k, p in enumerate(parts)])
    return trimesh.util.concatenate(parts), gt


@pytest.fixture(scope="session")
def fast_args() -> list[str]:
    """:data:`FAST`: `crossdistill segment` options for a unit test."""
    return list(FAST)


@pytest.fixture
def primitives() -> tuple[trimesh.Trimesh, np.ndarray]:
    """:func:`make_primitives`."""
    return make_primitives()


@pytest.fixture(scope="session")
def viewed(tmp_path_factory) -> tuple[Path, trimesh.Trimesh, np.ndarray, Path]:
    """A segmented three-primitive mesh, named offline at scale 1: (object dir, mesh, gt, input path)."""
    root = tmp_path_factory.mktemp("view")
    mesh, gt = make_primitives()
    src = root / "prims.ply"
    mesh.export(src)
    assert main(["segment", str(src), "-o", str(root / "out"), *FAST]) == 0
    obj = root / "out" / "prims"
    assert main(["name", str(obj), "--offline", "--scale", "1", "--views", "2", "--size", "64", "--quiet"]) == 0
    return obj, mesh, gt, src


@pytest.fixture(scope="module")
def server(viewed, tmp_path_factory):
    """A running viewer server on a free port (no background precompute), stopped after the module."""
    from crossdistill.view.server import ViewerServer
    from crossdistill.view.session import ViewerSession

    exports = tmp_path_factory.mktemp("exports")
    srv = ViewerServer(ViewerSession.open(viewed[0], export_dir=exports), port=0, precompute=False).start()
    yield srv
    srv.stop()
