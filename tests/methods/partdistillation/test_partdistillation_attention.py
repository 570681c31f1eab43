"""The part decoder's query-side cross-attention computes what ``nn.MultiheadAttention`` computes."""

from __future__ import annotations

import torch
import torch.nn as nn

from crossdistill.methods.partdistillation.decoder import DecoderConfig, PartDecoder, cross_attention
from crossdistill.methods.partdistillation.training import set_loss


def _inputs(seed: int, B: int = 3, Q: int = 5, N: int = 40, D: int = 16):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Q, D, generator=g, requires_grad=True)
    keys = torch.randn(B, N, D, generator=g, requires_grad=True)
    values = torch.randn(B, N, D, generator=g, requires_grad=True)
    blocked = torch.rand(B, Q, N, generator=g) < 0.6
    blocked[..., 0] = False  # every query may attend somewhere
    return q, keys, values, blocked


def test_cross_attention_matches_multihead_attention_and_its_gradients():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():  # non-zero biases, so the dropped key bias and the moved value bias are exercised
        attn.in_proj_bias.normal_()
        attn.out_proj.bias.normal_()
    q, keys, values, blocked = _inputs(1)
    ref = attn(q, keys, values, attn_mask=blocked.repeat_interleave(4, 0), need_weights=False)[0]
    ref_grads = torch.autograd.grad(ref.square().sum(), [q, keys, values, *attn.parameters()])
    out = cross_attention(attn, q, keys.transpose(1, 2), values, blocked)
    grads = torch.autograd.grad(out.square().sum(), [q, keys, values, *attn.parameters()])
    assert torch.allclose(out, ref, atol=1e-5)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_cross_attention_follows_the_mask():
    attn = nn.MultiheadAttention(16, 4, batch_first=True)
    q, keys, values, blocked = _inputs(2)
    base = cross_attention(attn, q, keys.transpose(1, 2), values, blocked)
    changed = values.detach().clone()
    changed[blocked.all(1)] += 100.0  # cells no query may see
    assert torch.allclose(cross_attention(attn, q, keys.transpose(1, 2), changed, blocked), base, atol=1e-5)
    changed[0, 0] += 100.0  # a cell every query may see
    assert not torch.allclose(cross_attention(attn, q, keys.transpose(1, 2), changed, blocked), base, atol=1e-3)


def test_decoder_masks_stay_in_the_object_and_training_gradients_are_finite():
    torch.manual_seed(0)
    dec = PartDecoder(DecoderConfig(in_channels=6, dim=16, queries=4, layers=2, grid=8))
    feats = torch.randn(2, 6, 8, 8)
    obj = torch.zeros(2, 8, 8, dtype=torch.bool)
    obj[0, 2:6, 1:7] = True
    obj[1, :4] = True
    out = dec(feats, obj)
    for o in out:
        assert torch.isneginf(o["masks"][~obj[:, None].expand_as(o["masks"])]).all()
        assert torch.isfinite(o["masks"][obj[:, None].expand_as(o["masks"])]).all()
    targets = [torch.stack([obj[0] & (torch.arange(8) < 4)[None], obj[0] & (torch.arange(8) >= 4)[None]]), obj[1:2]]
    set_loss(out, obj, targets).backward()
    assert all(torch.isfinite(p.grad).all() for p in dec.parameters() if p.grad is not None)
