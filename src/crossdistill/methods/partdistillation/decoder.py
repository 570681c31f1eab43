"""The query-based part decoder of PartDistillation (a small Mask2Former decoder over one object).

PartDistillation re-purposes Mask2Former as a class-agnostic *part* segmenter: learned part
queries attend to the object's pixel features and each returns a mask, a part-ness score
and a query feature (the part's embedding, later clustered per object class). This module
is that decoder at CPU size, over the frozen teacher features of one :class:`InstanceCrop`:

* with ``normalize_input``, a copy of the teacher features standardised per channel over
  the object's cells (what k-means of the proposals sees: the parts of one object differ
  by small feature offsets that vary between objects) is concatenated to them (the raw
  values keep what a part is across objects, which the class-specific parts need);
* pixel embeddings ``E`` (B, D, S, S): two convolutions of the teacher features, 1x1 then
  ``pixel_kernel`` x ``pixel_kernel`` (1: per cell, the teacher already gives each cell its
  context; 3: a learnt smoothing over the neighbours, masked to the object). Masks are
  dot products with ``E``, so a part is a feature-coherent region; an explicit position
  code in ``E`` was measured and dropped (it let the decoder copy k-means' spatial cuts of
  uniform regions; docs/results/partdistillation_notes.md);
* a 2D sine positional code added to the attention keys;
* ``Q`` queries, each offset by the object token (the mean pixel embedding over the
  object), so the queries are object-aware;
* ``L`` layers of masked cross-attention (a query sees only object cells inside its own
  mask of the previous layer, as Mask2Former; all object cells when that mask is empty),
  self-attention and a feed-forward block, each residual with LayerNorm;
* per layer: part-ness logit ``Linear(D, 1)`` and mask logits ``<MLP(q), E>`` per cell,
  -inf outside the object: parts never leave their object.

Output of :meth:`PartDecoder.forward`: a list over layers of dicts with ``scores`` (B, Q)
logits, ``masks`` (B, Q, S, S) logits and ``queries`` (B, Q, D) hidden states; the last
is the prediction, the others feed the auxiliary losses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DecoderConfig", "PartDecoder", "cross_attention", "sine_position", "standardize_over_object"]


def standardize_over_object(features: torch.Tensor, object_mask: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) features standardised per crop and channel over the object cells; 0 elsewhere.

    Example:
        >>> f = torch.arange(8.0).view(1, 2, 2, 2); m = torch.ones(1, 2, 2, dtype=torch.bool)
        >>> standardize_over_object(f, m).mean((2, 3)).abs().max() < 1e-6
        tensor(True)
    """
    w = object_mask[:, None].to(features.dtype)  # (B, 1, S, S)
    n = w.sum((2, 3), keepdim=True).clamp_min(1.0)
    mean = (features * w).sum((2, 3), keepdim=True) / n
    var = (((features - mean) * w) ** 2).sum((2, 3), keepdim=True) / n
    return (features - mean) / var.add(1e-6).sqrt() * w


@dataclass(frozen=True)
class DecoderConfig:
    """Size of the part decoder.

    Attributes:
        in_channels: C, channels of the teacher features.
        dim: D, embedding width.
        queries: Q, part queries (at most Q parts per object).
        layers: L, decoder layers.
        heads: attention heads.
        grid: S, the crop grid the decoder runs on.
        normalize_input: also give the decoder the features standardised over the object, per crop.
        pixel_kernel: kernel of the pixel embedding's second convolution (1: per cell; 3: each
            cell also sees its 8 neighbours).
        pixel_layers: residual 3x3 convolution blocks between the two (0: none), masked to the
            object: a small pixel decoder giving each cell's embedding its surroundings.
        pixel_position: channels of a 2D sine code of the cell's place in the box appended to
            the input features (0: none), so masks can follow where a cell is in the object.
    """

    in_channels: int
    dim: int = 64
    queries: int = 12
    layers: int = 3
    heads: int = 4
    grid: int = 48
    normalize_input: bool = False
    pixel_kernel: int = 1
    pixel_layers: int = 0
    pixel_position: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def sine_position(dim: int, size: int) -> torch.Tensor:
    """(dim, size, size) 2D sine/cosine code of the cell centres (half the channels per axis).

    Example:
        >>> sine_position(8, 4).shape
        torch.Size([8, 4, 4])
    """
    half = dim // 2
    n_freq = max(1, half // 2)
    freq = torch.exp(torch.arange(n_freq, dtype=torch.float32) * (-math.log(100.0) / max(n_freq - 1, 1)))
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 * math.pi
    ang = t[:, None] * freq[None] * size / 4  # (size, n_freq)
    code = torch.cat([ang.sin(), ang.cos()], 1)[:, :half]  # (size, half)
    pos = torch.zeros(dim, size, size)
    pos[:half] = code.T[:, None, :].expand(half, size, size)          # x varies along width
    pos[half:2 * half] = code.T[:, :, None].expand(half, size, size)  # y varies along height
    return pos


def cross_attention(attn: nn.MultiheadAttention, q: torch.Tensor, keys_t: torch.Tensor, values: torch.Tensor,
                    blocked: torch.Tensor) -> torch.Tensor:
    """``attn(q, keys, values, attn_mask=blocked)`` computed on the queries' side (same weights, same result).

    With few queries (Q) and many cells (N), projecting every cell's key and value (N x D x D
    per layer) dominates the cost. Per head h, ``(W_q q + b_q)_h . (W_k k + b_k)_h`` equals
    ``(W_k,h^T (W_q q + b_q)_h) . k`` plus a term that does not depend on the key, which the
    softmax removes; and the attention-weighted sum of ``W_v v + b_v`` equals ``W_v`` applied to
    the weighted sum of ``v``, plus ``b_v`` (the weights sum to 1). So the keys and values are
    never projected: cost Q x H x N x D instead of N x D x D.

    Args:
        attn: its ``in_proj_weight`` / ``in_proj_bias`` / ``out_proj`` are used (no dropout).
        q: (B, Q, D) queries (position already added).
        keys_t: (B, D, N) keys, transposed.
        values: (B, N, D).
        blocked: (B, Q, N) bool, True where a query may not attend (no row all True).

    Returns:
        (B, Q, D), as ``nn.MultiheadAttention(..., batch_first=True)`` returns.
    """
    B, Q, D = q.shape
    H = attn.num_heads
    dh = D // H
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, _, b_v = attn.in_proj_bias.chunk(3)
    qh = F.linear(q, w_q, b_q).view(B, Q, H, dh) * dh ** -0.5
    q_in_keys = torch.einsum("bqhe,hed->bhqd", qh, w_k.view(H, dh, D)).reshape(B, H * Q, D)
    # an additive 0 / -inf mask: the same values as masked_fill, much faster when broadcast over heads
    block = torch.zeros(blocked.shape, dtype=q.dtype, device=q.device).masked_fill_(blocked, float("-inf"))
    logits = torch.bmm(q_in_keys, keys_t).view(B, H, Q, -1) + block[:, None]
    weights = logits.softmax(-1).view(B, H * Q, -1)
    mixed = torch.bmm(weights, values).view(B, H, Q, D)  # weighted sum of the raw values
    out = torch.einsum("bhqd,hed->bqhe", mixed, w_v.view(H, dh, D)).reshape(B, Q, D) + b_v
    return attn.out_proj(out)


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, q: torch.Tensor, qpos: torch.Tensor, keys_t: torch.Tensor, values: torch.Tensor,
                blocked: torch.Tensor) -> torch.Tensor:
        """q, qpos (B, Q, D); keys_t (B, D, N); values (B, N, D); blocked (B, Q, N) bool -> (B, Q, D)."""
        q = self.norms[0](q + cross_attention(self.cross, q + qpos, keys_t, values, blocked))
        q = self.norms[1](q + self.self_attn(q + qpos, q + qpos, q, need_weights=False)[0])
        return self.norms[2](q + self.ffn(q))


_OLD_PIXEL_KEYS = {"pixel.0.": "pixel_in.0.", "pixel.1.": "pixel_in.1.", "pixel.3.": "pixel_out."}


def _rename_old_pixel_keys(state_dict: dict, prefix: str, *args) -> None:
    """Reads weights saved when the pixel embedding was one ``nn.Sequential`` named ``pixel``."""
    for key in [k for k in state_dict if k.startswith(prefix + "pixel.")]:
        for old, new in _OLD_PIXEL_KEYS.items():
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)


class PartDecoder(nn.Module):
    """Class-agnostic part decoder over one object's teacher features (see the module docstring).

    Example:
        >>> dec = PartDecoder(DecoderConfig(in_channels=16, dim=32, queries=4, layers=2, grid=8))
        >>> out = dec(torch.randn(2, 16, 8, 8), torch.ones(2, 8, 8, dtype=torch.bool))
        >>> out[-1]["masks"].shape, out[-1]["scores"].shape, out[-1]["queries"].shape
        (torch.Size([2, 4, 8, 8]), torch.Size([2, 4]), torch.Size([2, 4, 32]))
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        D = config.dim
        c_in = config.in_channels * (2 if config.normalize_input else 1) + config.pixel_position
        k = config.pixel_kernel
        groups = 8 if D % 8 == 0 else 1
        self.pixel_in = nn.Sequential(nn.Conv2d(c_in, D, 1), nn.GroupNorm(groups, D), nn.GELU())
        self.pixel_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(D, D, 3, padding=1), nn.GroupNorm(groups, D), nn.GELU())
            for _ in range(config.pixel_layers))
        self.pixel_out = nn.Conv2d(D, D, k, padding=k // 2)
        if config.pixel_position:
            self.register_buffer("cell_pos", sine_position(config.pixel_position, config.grid), persistent=False)
        self._register_load_state_dict_pre_hook(_rename_old_pixel_keys)
        self.register_buffer("pos", sine_position(D, config.grid), persistent=False)
        self.query_content = nn.Embedding(config.queries, D)
        self.query_pos = nn.Embedding(config.queries, D)
        self.object_proj = nn.Linear(D, D)
        self.layers = nn.ModuleList(_Layer(D, config.heads) for _ in range(config.layers))
        self.out_norm = nn.LayerNorm(D)
        self.score_head = nn.Linear(D, 1)
        self.mask_head = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D))

    def _predict(self, q: torch.Tensor, emb: torch.Tensor, outside: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of one layer; ``outside`` (B, 1, N) is 0 on object cells and -inf elsewhere."""
        h = self.out_norm(q)
        masks = torch.einsum("bqd,bdn->bqn", self.mask_head(h), emb) / math.sqrt(emb.shape[1]) + outside
        return {"scores": self.score_head(h)[..., 0], "masks": masks, "queries": h}

    def pixel_embedding(self, features: torch.Tensor, object_mask: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) features, (B, S, S) bool object mask -> (B, D, S, S) pixel embeddings ``E``."""
        if self.config.normalize_input:
            features = torch.cat([features, standardize_over_object(features, object_mask)], 1)
        inside = object_mask[:, None].to(features.dtype)  # (B, 1, S, S)
        if self.config.pixel_position:
            B = features.shape[0]
            features = torch.cat([features, self.cell_pos[None].expand(B, -1, -1, -1).to(features.dtype)], 1)
        spatial = self.config.pixel_kernel > 1 or self.config.pixel_layers > 0
        if spatial:  # neighbours outside the object add nothing
            features = features * inside
        h = self.pixel_in(features)
        for block in self.pixel_blocks:
            h = h + block(h * inside) * inside
        return self.pixel_out(h * inside if self.config.pixel_layers else h)

    def forward(self, features: torch.Tensor, object_mask: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """features (B, C, S, S), object_mask (B, S, S) bool -> per-layer outputs (see module docstring)."""
        B, _, S, _ = features.shape
        if S != self.config.grid or features.shape[3] != S:
            raise ValueError(f"features must be on the {self.config.grid}x{self.config.grid} grid, got {S}")
        emb = self.pixel_embedding(features, object_mask).flatten(2)  # (B, D, N): content only; position enters the attention keys
        obj = object_mask.flatten(1)  # (B, N)
        keys_v = emb.transpose(1, 2)  # (B, N, D)
        keys_t = emb + self.pos.flatten(1)[None]  # (B, D, N): the attention keys, transposed
        w = obj.float()
        obj_token = (keys_v * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)  # (B, D)
        q = self.query_content.weight[None].expand(B, -1, -1) + self.object_proj(obj_token)[:, None]
        qpos = self.query_pos.weight[None].expand(B, -1, -1)
        outside = torch.zeros_like(w).masked_fill_(~obj, float("-inf"))[:, None]  # (B, 1, N)
        outputs = [self._predict(q, emb, outside)]
        for layer in self.layers:
            allowed = (outputs[-1]["masks"] > 0).detach()  # (B, Q, N), only object cells can be > 0
            empty = ~allowed.any(-1, keepdim=True)
            allowed = torch.where(empty, obj[:, None, :].expand_as(allowed), allowed)
            allowed = allowed | ~obj.any(-1)[:, None, None]  # an empty object attends everywhere (no NaN)
            q = layer(q, qpos, keys_t, keys_v, ~allowed)
            outputs.append(self._predict(q, emb, outside))
        return [{**o, "masks": o["masks"].view(B, -1, S, S)} for o in outputs]
