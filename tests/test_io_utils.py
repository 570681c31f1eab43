"""Atomic writes: complete file or no file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from crossdistill.io_utils import atomic_write, export_trimesh, save_image, save_npy, save_npz, write_json, write_text


def test_atomic_write_success_and_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # temp removed
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "never.txt"):
            pass
    assert not (tmp_path / "never.txt").exists()


def test_writers_keep_suffix_semantics(tmp_path: Path) -> None:
    save_npy(tmp_path / "a.npy", np.arange(3))
    save_npz(tmp_path / "b.npz", {"x": np.ones(2)})
    write_json(tmp_path / "c.json", {"a": np.float32(1.5), "b": np.arange(2)})
    save_image(tmp_path / "d.png", np.zeros((4, 5, 3), np.uint8))
    export_trimesh(tmp_path / "e.glb", trimesh.creation.box())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npz", "c.json", "d.png", "e.glb"]
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]
    assert np.load(tmp_path / "b.npz")["x"].tolist() == [1.0, 1.0]
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": 1.5, "b": [0, 1]}
    assert Image.open(tmp_path / "d.png").size == (5, 4)
    assert len(trimesh.load(tmp_path / "e.glb", force="mesh").faces) == 12
