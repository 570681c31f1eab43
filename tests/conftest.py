"""Shared test fixtures: CPU device, one torch thread, the shared real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

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
