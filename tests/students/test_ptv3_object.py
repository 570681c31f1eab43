"""PTv3-object network: shapes, per-point behaviour, gradients, determinism, devices, selection by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdistill.students.backbones import BACKBONES, make_point_net
from crossdistill.students.point_student import knn_graph
from crossdistill.students.ptv3_object import PTv3Config, PTv3Object, voxel_grid

TINY = dict(grid_size=0.1, enc_channels=(8, 16, 16), enc_heads=(2, 2, 4), enc_patch=(16, 16, 8),
            dec_channels=(8, 16), dec_heads=(2, 2), dec_patch=(16, 16))


def _feats(B: int = 2, N: int = 150, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(B, N, 3, generator=g) - 0.5
    return torch.cat([xyz, torch.randn(B, N, 6, generator=g)], -1)


def _net(seed: int = 0, **overrides) -> PTv3Object:
    torch.manual_seed(seed)
    return PTv3Object(5, PTv3Config.small(**{**TINY, **overrides}))


def test_output_shape_and_voxels_of_each_shape_start_at_its_own_corner():
    x = _feats()
    x[1, :, :3] += 3.0  # the second shape far away: its voxels must not depend on that
    coords, pv = voxel_grid(x[..., :3], 0.1)
    first = coords[coords[:, 0] == 0, 1:]
    second = coords[coords[:, 0] == 1, 1:]
    assert int(first.min()) == 0 and int(second.min()) == 0 and int(second.max()) < 11
    assert pv.shape == (300,)
    assert _net()(x).shape == (2, 150, 5)


@pytest.mark.parametrize("overrides", [{}, dict(stride=(), dec_channels=(), dec_heads=(), dec_patch=(),
                                                dec_depths=())])
def test_output_per_point_does_not_depend_on_input_order(overrides):
    net = _net(**overrides).eval()
    x = _feats()
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
        out_perm = net(x[:, perm])
    assert torch.allclose(out_perm, out[:, perm], atol=1e-5)


def test_output_of_a_shape_does_not_depend_on_its_batch_companions():
    net = _net().eval()
    x = _feats(B=2)
    with torch.no_grad():
        alone = net(x[:1])
        together = net(x)
    assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_gradient_reaches_every_parameter():
    net = _net(drop_path=0.2).train()
    out = net(_feats())
    out.pow(2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or float(p.grad.abs().sum()) == 0.0]
    assert not missing


def test_training_steps_are_deterministic_under_a_seed():
    def run() -> torch.Tensor:
        net = _net(seed=7, drop_path=0.1).train()  # shuffled curves and stochastic depth draw from the seed
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
        torch.manual_seed(11)
        for _ in range(2):
            loss = net(_feats()).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    assert torch.equal(run(), run())


def test_fits_a_per_point_target():
    x = _feats(B=1, N=200)
    target = torch.sin(6 * x[..., :3]).sum(-1, keepdim=True).expand(-1, -1, 5)
    net = _net(seed=2).train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = (net(x) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def _run_on(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    net = _net().eval()
    x = _feats()
    with torch.no_grad():
        ref = net(x)
        out = net.to(device)(x.to(device)).cpu()
    return ref, out


def test_runs_on_the_given_device(device):
    ref, out = _run_on(device)
    assert torch.allclose(ref, out, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    ref, out = _run_on("cuda")
    assert torch.allclose(ref, out, atol=1e-3)


def test_bad_configs_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="stride"):
        PTv3Config.small(stride=(2,))
    with pytest.raises(ValueError, match="heads"):
        PTv3Config.small(enc_heads=(3, 4, 6))
    with pytest.raises(ValueError, match="input features"):
        _net()(torch.rand(1, 10, 6))


def test_presets_follow_their_sources():
    paper = PTv3Config.paper()
    assert paper.stride == () and paper.enc_depths == (3, 3, 3, 6, 16)
    assert paper.enc_channels[-1] == 384 and paper.enc_patch == (1024,) * 5
    seg = PTv3Config.ptv3_segmentation()
    assert seg.stride == (2, 2, 2, 2) and seg.dec_channels == (64, 64, 128, 256)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbones_by_name_share_the_light_networks_call(name):
    pts = np.random.default_rng(0).random((64, 3)).astype(np.float32) - 0.5
    knn = torch.from_numpy(knn_graph(pts, 4))[None]
    feats = torch.cat([torch.from_numpy(pts)[None], torch.zeros(1, 64, 6)], -1)
    if name == "ptv3-paper":  # construction only: the full-size network is for GPUs
        net = make_point_net(name, 7)
        assert net.n_classes == 7 and net.config == PTv3Config.paper()
        return
    net = make_point_net(name, 7, width=16, n_blocks=2).eval()
    with torch.no_grad():
        assert net(feats, knn).shape == (1, 64, 7)
    with pytest.raises(ValueError, match="unknown point backbone"):
        make_point_net("pointnet", 7)
