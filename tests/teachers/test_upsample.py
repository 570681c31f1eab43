"""Bilinear and joint-bilateral upsampling of teacher features."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from crossdistill.teachers.upsample import (
    BilinearUpsampler,
    JointBilateralUpsampler,
    make_upsampler,
    upsampler_from_spec,
)


def test_jbu_preserves_constant_features():
    g = torch.Generator().manual_seed(0)
    guide = torch.randint(0, 256, (2, 48, 40, 3), generator=g, dtype=torch.uint8)
    const = torch.tensor([1.5, -2.0, 0.25]).view(1, 3, 1, 1).expand(2, 3, 6, 5)
    out = JointBilateralUpsampler(chunk_rows=16)(const, (48, 40), guide)
    assert out.shape == (2, 3, 48, 40)
    torch.testing.assert_close(out, const[:, :, :1, :1].expand_as(out), atol=1e-5, rtol=0)


def _step_scene(edge_x: int = 27, size: int = 64, cells: int = 8):
    """Guide with a vertical black/white edge off the cell grid; feature = which side."""
    truth = torch.zeros(1, 1, size, size)
    truth[..., edge_x:] = 1.0
    guide = (truth[0, 0, :, :, None].expand(size, size, 3) * 255).to(torch.uint8)[None]
    low = F.adaptive_avg_pool2d(truth, (cells, cells))  # what a patch model "sees"
    return truth, guide, low


def test_jbu_follows_rgb_edge_better_than_bilinear():
    truth, guide, low = _step_scene()
    bil = BilinearUpsampler()(low, (64, 64), guide)
    jbu = JointBilateralUpsampler()(low, (64, 64), guide)
    err_bil = (bil - truth).abs().mean().item()
    err_jbu = (jbu - truth).abs().mean().item()
    assert err_jbu < 0.5 * err_bil, (err_jbu, err_bil)
    # the edge in the JBU output sits at the RGB edge: sides are separated by > 0.5
    row = jbu[0, 0, 32]
    assert row[:26].max() < 0.5 < row[28:].min()


def test_upsampler_specs_roundtrip_and_chunking_is_exact():
    jbu = JointBilateralUpsampler(sigma_spatial=0.8, radius=3, chunk_rows=7)
    assert upsampler_from_spec(jbu.spec()) == jbu
    assert upsampler_from_spec(BilinearUpsampler().spec()) == BilinearUpsampler()
    assert make_upsampler("jbu") == JointBilateralUpsampler()
    truth, guide, low = _step_scene()
    a = JointBilateralUpsampler(chunk_rows=7)(low, (64, 64), guide)
    b = JointBilateralUpsampler(chunk_rows=64)(low, (64, 64), guide)
    torch.testing.assert_close(a, b)
    assert np.isfinite(a.numpy()).all()
