"""Cache shards made by Ray tasks equal those made in one process (needs ray, the [scale] extra)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from crossdistill.methods.sampart3d.pretrain import PretrainConfig
from crossdistill.methods.sampart3d.pretrain_cache import build_cache, shard_path

CFG = PretrainConfig(n_points=128, n_views=6, image_size=32, k=8, seed=1)


@pytest.mark.slow  # ~20 s (Ray's start); test_worker_processes_write_the_same_shards covers the shard path
def test_ray_tasks_write_the_same_shards_as_one_process(tmp_path):
    pytest.importorskip("ray", reason="Ray tasks need ray ([scale] extra)")
    torch.set_num_threads(1)
    files = []
    for i, m in enumerate([trimesh.creation.box(), trimesh.creation.icosphere(subdivisions=1),
                           trimesh.creation.cylinder(radius=0.3, height=1.0)]):
        m.export(tmp_path / f"s{i}.ply")
        files.append((f"s{i}", tmp_path / f"s{i}.ply"))
    one = build_cache(files, tmp_path / "one", CFG, shard_size=2, progress=False)
    ray_cache = build_cache(files, tmp_path / "ray", CFG, shard_size=2, workers=2, executor="ray", progress=False)
    assert ray_cache.counts == one.counts == [2, 1]
    for i in range(2):
        with np.load(shard_path(tmp_path / "one", i)) as a, np.load(shard_path(tmp_path / "ray", i)) as b:
            for k in a.files:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
