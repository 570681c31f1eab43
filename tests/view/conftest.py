"""Shared inputs of the viewer tests: one small segmented, named object and a running viewer server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main


@pytest.fixture(scope="session")
def viewed(tmp_path_factory, three_primitives_session, fast_segment_args
           ) -> tuple[Path, trimesh.Trimesh, np.ndarray, Path]:
    """A segmented three-primitive mesh, named offline at scale 1: (object dir, mesh, gt, input path)."""
    root = tmp_path_factory.mktemp("view")
    mesh, gt = three_primitives_session
    src = root / "prims.ply"
    mesh.export(src)
    assert main(["segment", str(src), "-o", str(root / "out"), *fast_segment_args]) == 0
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
