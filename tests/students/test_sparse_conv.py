"""Sparse voxel convolution, U-Net and the self-calibrated domain-adaptation module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crossdistill.students.sparse_conv import SubMConv3d, VoxelLevel, pool, unpool, voxelize
from crossdistill.students.sparse_unet import (DomainAdaptationModule, SelfCalibratedConv3d, SparseUNet,
                                               VoxelPyramid)


def _random_level(seed: int = 0, shape=(6, 7, 5), p=0.35) -> VoxelLevel:
    g = torch.Generator().manual_seed(seed)
    idx = (torch.rand(shape, generator=g) < p).nonzero()
    return VoxelLevel.build(torch.cat([torch.zeros(len(idx), 1, dtype=torch.long), idx], 1))


def test_submanifold_conv_equals_dense_conv_at_occupied_voxels():
    lvl = _random_level()
    feats = torch.randn(len(lvl), 4, generator=torch.Generator().manual_seed(1))
    conv = SubMConv3d(4, 3)
    feats.requires_grad_(True)
    out = conv(feats, lvl)
    grid = torch.zeros(1, 4, 6, 7, 5)
    x, y, z = lvl.coords[:, 1], lvl.coords[:, 2], lvl.coords[:, 3]
    grid[0, :, x, y, z] = feats.T
    weight = conv.weight.view(3, 3, 3, 4, 3).permute(4, 3, 0, 1, 2)
    ref = F.conv3d(grid, weight, conv.bias, padding=1)[0][:, x, y, z].T
    assert torch.allclose(out, ref, atol=1e-5)
    # the rulebook's gradients are the dense convolution's, at the occupied voxels
    (g_sparse,) = torch.autograd.grad(out.square().sum(), feats)
    dense_in = torch.zeros(1, 4, 6, 7, 5)
    dense_in[0, :, x, y, z] = feats.detach().T
    dense_in.requires_grad_(True)
    dense_out = F.conv3d(dense_in, weight.detach(), conv.bias.detach(), padding=1)[0][:, x, y, z].T
    (g_dense,) = torch.autograd.grad(dense_out.square().sum(), dense_in)
    assert torch.allclose(g_sparse, g_dense[0][:, x, y, z].T, atol=1e-4)


def test_voxelize_and_parent_maps():
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.3, 0.1], [1.4, 0.1, 0.1], [3.9, 0.0, 0.0]])
    coords, pv = voxelize(pts, torch.zeros(4, dtype=torch.long), 1.0)
    assert coords[:, 1].tolist() == [0, 1, 3] and pv.tolist() == [0, 0, 1, 2]
    lvl = VoxelLevel.build(coords)
    assert lvl.neighbours[0, 13] == 0 and lvl.neighbours[0, 22] == 1  # centre, and +x neighbour
    assert (lvl.neighbours[2] == -1).sum() == 26  # the voxel at x=3 is alone
    coarse, parent = lvl.coarser()
    assert len(coarse) == 2 and parent.tolist() == [0, 0, 1]
    f = torch.tensor([[1.0], [3.0], [5.0]])
    assert pool(f, parent, 2).flatten().tolist() == [2.0, 5.0]
    assert unpool(pool(f, parent, 2), parent).flatten().tolist() == [2.0, 2.0, 5.0]


def test_two_clouds_in_a_batch_do_not_touch():
    pts = torch.tensor([[0.0, 0, 0], [0.0, 0, 0]])
    coords, _ = voxelize(pts, torch.tensor([0, 1]), 1.0)
    lvl = VoxelLevel.build(coords)
    assert len(lvl) == 2 and (lvl.neighbours[:, 13] == torch.arange(2)).all()
    assert (lvl.neighbours >= 0).sum() == 2  # only themselves


def test_unet_and_da_module_shapes_and_gradients():
    g = torch.Generator().manual_seed(0)
    coords, _ = voxelize(torch.rand(400, 3, generator=g) * 4, torch.zeros(400, dtype=torch.long), 0.25)
    pyr = VoxelPyramid.build(coords, 3)
    net, da = SparseUNet(4, (8, 16, 32)), DomainAdaptationModule(8)
    x = torch.randn(len(coords), 4, generator=g)
    out = da(net(x, pyr), pyr)
    assert out.shape == (len(coords), 8)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in [*net.parameters(), *da.parameters()])


def test_self_calibration_widens_the_receptive_field():
    # a line of voxels along x: a plain 3x3x3 conv at voxel 0 sees voxels 0..1 only; the calibrated
    # half also sees the coarse level's neighbours, i.e. voxels 0..3
    coords = torch.tensor([[0, i, 0, 0] for i in range(8)])
    pyr = VoxelPyramid.build(coords, 2)
    torch.manual_seed(0)
    sc = SelfCalibratedConv3d(4)
    x = torch.randn(8, 4)
    x2 = x.clone()
    x2[3] += 5.0  # three voxels away from voxel 0
    y, y2 = sc(x, pyr), sc(x2, pyr)
    assert not torch.allclose(y[0, :2], y2[0, :2])  # calibrated half reacts
    assert torch.allclose(y[0, 2:], y2[0, 2:])  # the plain half cannot see that far


def test_packing_keeps_300_clouds_apart():
    """Clouds at the same coordinates stay distinct voxels for any batch size (keys used to merge
    clouds past the 16th), and neighbour tables never cross from one cloud to another."""
    import pytest

    g = torch.Generator().manual_seed(0)
    n_clouds, per = 300, 5
    pts = torch.rand(n_clouds * per, 3, generator=g) * 4.0
    pts[:per * 2] = pts[:per].repeat(2, 1)  # clouds 0 and 1 share their points exactly
    batch = torch.arange(n_clouds).repeat_interleave(per)
    coords, pv = voxelize(pts, batch, 1.0)
    assert torch.equal(coords[pv, 0], batch)  # every point's voxel is in its own cloud
    for b in (0, 16, 17, 255, 299):
        want = {tuple(v) for v in torch.floor(pts[batch == b] / 1.0).long().tolist()}
        assert len(want) == int((coords[:, 0] == b).sum())
    lvl = VoxelLevel.build(coords)
    rows = lvl.neighbours.clamp_min(0)
    same = lvl.coords[rows, 0] == lvl.coords[:, :1]
    assert bool(same[lvl.neighbours >= 0].all())
    assert int((lvl.neighbours[:, 13] == torch.arange(len(lvl))).sum()) == len(lvl)  # the centre is itself
    coarse, parent = lvl.coarser()
    assert torch.equal(coarse.coords[parent, 0], lvl.coords[:, 0])
    huge = torch.tensor([[0.0, 0.0, 0.0], [2.0**19, 2.0**19, 2.0**19]])
    with pytest.raises(ValueError, match="clouds"):
        voxelize(huge, torch.tensor([0, 9]), 1.0)  # 20-bit axes leave 3 bits: 8 clouds


def _needs_spconv():
    from crossdistill.students.sparse_conv import spconv_available

    if not spconv_available():
        pytest.skip("spconv is not installed (pip install 'crossdistill[lidar]'); the torch backend is tested alone")


def test_spconv_backend_equals_the_torch_one_to_1e5():
    """Same weights, two clouds in one batch: outputs and weight gradients of one convolution and of the
    whole LiDAR student (U-Net + DA module) agree to 1e-5 between the rulebook and spconv."""
    _needs_spconv()
    from crossdistill.methods.lidar_kd.student import LidarStudent, StudentConfig, prepare_batch
    from crossdistill.students.sparse_conv import set_backend

    lvl = _random_level(3)
    conv = SubMConv3d(5, 7)
    x = torch.randn(len(lvl), 5)
    outs, grads = [], []
    for backend in ("torch", "spconv"):
        set_backend(conv, backend)
        conv.zero_grad()
        y = conv(x, lvl)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append(conv.weight.grad.clone())
    assert (outs[0] - outs[1]).abs().max() < 1e-5 and (grads[0] - grads[1]).abs().max() < 1e-5
    rng = np.random.default_rng(0)
    xyz = [rng.uniform(-10, 10, (3000, 3)).astype(np.float32) for _ in range(2)]
    feats = [rng.uniform(0, 1, (3000, 4)).astype(np.float32) for _ in range(2)]
    cfg = StudentConfig(voxel_size=0.5, widths=(8, 16, 16), backend="torch")
    torch.manual_seed(0)
    student = LidarStudent(cfg, np.eye(3, 6, dtype=np.float32), np.zeros(3, np.float32))
    scan = prepare_batch(feats, xyz, cfg)
    res = []
    for backend in ("torch", "spconv"):
        set_backend(student, backend)
        student.zero_grad()
        f, z = student(scan)
        (f.square().mean() + z.mean()).backward()
        res.append((f.detach(), z.detach(), [p.grad.clone() for p in student.parameters() if p.grad is not None]))
    assert (res[0][0] - res[1][0]).abs().max() < 1e-5 and (res[0][1] - res[1][1]).abs().max() < 1e-5
    assert max(float((a - b).abs().max()) for a, b in zip(res[0][2], res[1][2])) < 1e-5
    assert student.state_dict().keys() == LidarStudent(cfg, np.eye(3, 6), np.zeros(3)).state_dict().keys()


def test_backend_names_are_checked():
    from crossdistill.students.sparse_conv import resolve_backend, spconv_available

    assert resolve_backend("auto") == ("spconv" if spconv_available() else "torch")
    assert resolve_backend("torch") == "torch"
    with pytest.raises(ValueError, match="unknown sparse backend"):
        resolve_backend("minkowski")
