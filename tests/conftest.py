"""Shared test fixtures: CPU device, one torch thread, the shared real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:  # small-op loops slow down a lot when torch's 2 threads fight another process
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data (read-only real data); skips the test when it is absent."""
    if not (SHARED_DATA / "partnet_mobility_dev").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture
def device() -> str:
    """Torch device under test: CPU unless CROSSDISTILL_TEST_DEVICE says otherwise."""
    return os.environ.get("CROSSDISTILL_TEST_DEVICE", "cpu")


def toy_part_image(kind: str, seed: int, size: int = 96):
    """A flat-coloured object on white with known parts: ((H, W, 3) uint8 image, (H, W) int part map, -1 bg).

    ``kind`` "mug": body + handle; "lamp": shade + pole + base. Position, size and colours
    are jittered by ``seed``; every part has its own colour family, so any image model can
    tell the parts apart.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 255, np.uint8)
    parts = np.full((size, size), -1, np.int64)
    s = size / 96.0
    ox, oy = (rng.integers(-8, 9, 2) * s).astype(int)

    def rect(x0, y0, x1, y1, label, colour):
        sl = (slice(int(y0 * s) + oy, int(y1 * s) + oy), slice(int(x0 * s) + ox, int(x1 * s) + ox))
        img[sl] = np.clip(np.asarray(colour) + rng.integers(-15, 16, 3), 0, 255)
        parts[sl] = label

    if kind == "mug":
        rect(28, 28, 58, 72, 0, (200, 40, 40))
        rect(58, 38, 70, 62, 1, (40, 40, 200))
    elif kind == "lamp":
        rect(30, 16, 66, 36, 0, (230, 200, 30))
        rect(45, 36, 51, 68, 1, (60, 160, 60))
        rect(32, 68, 64, 80, 2, (120, 60, 160))
    else:
        raise ValueError(kind)
    return img, parts


@pytest.fixture(scope="session")
def toy_image():
    """:func:`toy_part_image`, for tests (test modules cannot import conftest under plain `pytest`)."""
    return toy_part_image


def make_three_primitives():
    """A box, a sphere and a cylinder, well apart along x: (trimesh mesh, (F,) primitive id per face)."""
    import trimesh

    parts = [trimesh.creation.box(extents=(1, 1, 1)),
             trimesh.creation.icosphere(subdivisions=2, radius=0.6),
             trimesh.creation.cylinder(radius=0.4, height=1.2, sections=24)]
    for p, x in zip(parts, (-2.0, 0.0, 2.0)):
        p.apply_translation((x, 0, 0))
    gt = np.concatenate([np.full(len(p.faces), k) for k, p in enumerate(parts)])
    return trimesh.util.concatenate(parts), gt


@pytest.fixture
def three_primitives():
    """:func:`make_three_primitives`: a shape whose parts are unambiguous."""
    return make_three_primitives()


@pytest.fixture(scope="module")
def three_primitives_module():
    """:func:`make_three_primitives` for module-scoped fixtures."""
    return make_three_primitives()


@pytest.fixture(scope="session")
def three_primitives_session():
    """:func:`make_three_primitives` for session-scoped fixtures."""
    return make_three_primitives()


@pytest.fixture(scope="session")
def fast_segment_args() -> list[str]:
    """`crossdistill segment` options small enough for a unit test (a few seconds per object)."""
    return ["--points", "3000", "--views", "10", "--size", "96", "--iterations", "60", "--quiet"]


@pytest.fixture(scope="session")
def tiny_segment_args() -> list[str]:
    """The smallest `crossdistill segment` run the CLI accepts, for tests of who computes which object
    (batches, resuming, workers), not of the parts."""
    return ["--points", "1000", "--views", "6", "--size", "64", "--iterations", "20", "--quiet"]
