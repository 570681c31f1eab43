"""The pretraining cache: npz shards made once (resumable, same content whoever made them), streamed."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from crossdistill.engine.distributed import World
from crossdistill.errors import InputError
from crossdistill.geometry.io import load_shape
from crossdistill.methods.sampart3d.pretrain import PretrainConfig, prepare_shape, pretrain_backbone
from crossdistill.methods.sampart3d.pretrain_cache import CacheStream, ShapeCache, TeacherSpec, build_cache, shard_path
from crossdistill.teachers.offline_features import RenderFeatureTeacher

CFG = PretrainConfig(n_points=256, n_views=6, image_size=48, width=16, n_blocks=1, k=8, steps=6, batch=2, seed=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    meshes = [trimesh.creation.box(extents=(1.0, 0.5, 0.3)), trimesh.creation.icosphere(subdivisions=1),
              trimesh.creation.cylinder(radius=0.3, height=1.0), trimesh.creation.cone(radius=0.4, height=0.8),
              trimesh.creation.capsule(height=0.6, radius=0.2)]
    out = []
    for i, m in enumerate(meshes):
        path = folder / f"s{i}.ply"
        m.export(path)
        out.append((f"s{i}", path))
    (folder / "bad.ply").write_bytes(b"not a mesh")
    return [*out[:3], ("bad", folder / "bad.ply"), *out[3:]]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _arrays(root, i):
    with np.load(shard_path(root, i)) as z:
        return {k: z[k] for k in z.files}


def test_shards_hold_what_prepare_shape_gives_and_the_statistics(files, tmp_path):
    cache = build_cache(files, tmp_path / "c", CFG, shard_size=2, progress=False)
    assert cache.counts == [2, 1, 2] and len(cache) == 5 and set(cache.failures) == {"bad"}
    assert cache.names() == [str(p) for n, p in files if n != "bad"]
    teacher = RenderFeatureTeacher()
    first = _arrays(tmp_path / "c", 1)  # shard 1: the third shape (index 2) and the broken one (index 3)
    ref = prepare_shape(load_shape(files[2][1]), teacher, CFG, seed=CFG.seed + 2)
    np.testing.assert_array_equal(first["inputs"][0], ref.inputs)
    np.testing.assert_array_equal(first["target"][0], ref.target)
    np.testing.assert_array_equal(first["knn"][0], ref.knn)
    seen = np.concatenate([_arrays(tmp_path / "c", i)["target"][_arrays(tmp_path / "c", i)["seen"]] for i in range(3)])
    np.testing.assert_allclose(cache.mean, seen.astype(np.float64).mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cache.std, np.maximum(seen.astype(np.float64).std(0), 1e-4), rtol=1e-3, atol=1e-5)


def test_a_rerun_keeps_finished_shards_and_makes_only_the_missing_ones(files, tmp_path):
    root = tmp_path / "c"
    build_cache(files, root, CFG, shard_size=2, progress=False)
    before = {i: (shard_path(root, i).stat().st_mtime_ns, _arrays(root, i)) for i in range(3)}
    # as after a kill between shards: shard 1 and the manifest were never written
    shard_path(root, 1).unlink()
    (root / "manifest.json").unlink()
    again = build_cache(files, root, CFG, shard_size=2, progress=False)
    assert shard_path(root, 0).stat().st_mtime_ns == before[0][0]
    assert shard_path(root, 2).stat().st_mtime_ns == before[2][0]
    for k, v in before[1][1].items():
        np.testing.assert_array_equal(_arrays(root, 1)[k], v)
    assert len(again) == 5
    with pytest.raises(InputError, match="other settings"):
        build_cache(files, root, replace(CFG, n_views=7), shard_size=2, progress=False)
    with pytest.raises(InputError, match="other settings"):
        build_cache(files[:4], root, CFG, shard_size=2, progress=False)


def test_worker_processes_write_the_same_shards(files, tmp_path):
    build_cache(files, tmp_path / "one", CFG, shard_size=2, progress=False)
    build_cache(files, tmp_path / "two", CFG, shard_size=2, workers=2, executor="processes", progress=False)
    for i in range(3):
        a, b = _arrays(tmp_path / "one", i), _arrays(tmp_path / "two", i)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["mean"] == \
        json.loads((tmp_path / "two" / "manifest.json").read_text())["mean"]


def test_stream_shares_batches_between_ranks_resumes_and_reads_each_shard_once(files, tmp_path):
    cache = build_cache(files, tmp_path / "c", CFG, shard_size=1, progress=False)  # 5 one-shape shards
    one = CacheStream(cache, 4, seed=1, window=2)
    it = one.batches(0, World())
    full = [next(it) for _ in range(3)]  # 5 // 4 = 1 batch per epoch: three epochs
    assert one.shards_loaded <= 3 * 5
    parts = [CacheStream(cache, 4, seed=1, window=2).batches(0, World(r, 2, r, 2)) for r in range(2)]
    for j in range(3):
        halves = [next(p) for p in parts]
        for t in range(4):
            np.testing.assert_array_equal(torch.cat([h[t] for h in halves]).numpy(), full[j][t].numpy())
    late = next(CacheStream(cache, 4, seed=1, window=2).batches(2, World()))
    for t in range(4):
        np.testing.assert_array_equal(late[t].numpy(), full[2][t].numpy())
    epochs = {tuple(b[0][:, 0, 0].tolist()) for b in full}
    assert len(epochs) > 1  # each epoch is another order
    with pytest.raises(InputError):
        CacheStream(cache, 6)


def test_pretraining_streams_from_the_cache_and_resumes(files, tmp_path):
    cache = ShapeCache(build_cache(files, tmp_path / "c", CFG, shard_size=2, progress=False).root)
    a = pretrain_backbone(cache, None, CFG, progress=False, run_dir=tmp_path / "run", checkpoint_every=2)
    assert a.backbone.teacher_id == cache.teacher_id and np.isfinite(a.losses).all()
    assert len(a.backbone.meta["shapes"]) == 5
    b = pretrain_backbone(cache, None, CFG, progress=False, run_dir=tmp_path / "run")  # finished: resumes to the end
    np.testing.assert_array_equal(a.losses, b.losses)
    for p, q in zip(a.backbone.net.parameters(), b.backbone.net.parameters()):
        assert torch.equal(p, q)
    assert (tmp_path / "run" / "scalars.csv").is_file()
