"""Tiny random teacher models, tokenizers and synthetic views (tests and benchmarks).

Everything here is built in code from small seeded configs; nothing touches a hub or the
network. The models exercise every code path of the real backends but predict noise.

Example:
    >>> from crossdistill.teachers import SamMaskTeacher                 # doctest: +SKIP
    >>> teacher = SamMaskTeacher.from_model(tiny_sam(), points_per_side=4)  # doctest: +SKIP
    >>> teacher.masks(make_views(2))                                      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crossdistill.types import Cameras, Views

__all__ = [
    "PART_NAMES",
    "make_views",
    "clip_tokenizer",
    "bert_tokenizer",
    "text_token_ids",
    "CallCounter",
    "tiny_dinov2",
    "tiny_sam",
    "tiny_clipseg",
    "tiny_owlv2",
    "tiny_grounding_dino",
    "tiny_mask2former",
    "tiny_segformer",
]

PART_NAMES = ("wheel", "seat", "leg")
_WORDS = ["wheel", "seat", "leg", "back", "arm", "a", "photo", "of", "chair"]


def make_views(n_views: int = 2, size: tuple[int, int] = (64, 64)) -> Views:
    """V views of coloured rectangles on white, with matching face_id/depth/normal buffers."""
    H, W = size
    rng = np.random.default_rng(0)
    rgb = np.full((n_views, H, W, 3), 255, np.uint8)
    face_id = np.full((n_views, H, W), -1, np.int32)
    for v in range(n_views):
        rects = [(0.15, 0.2, 0.55, 0.7), (0.5, 0.3, 0.85, 0.8), (0.3, 0.65, 0.7, 0.9)]
        for i, (x0, y0, x1, y1) in enumerate(rects):
            sl = (slice(int((y0 + 0.02 * v) * H), int(y1 * H)), slice(int(x0 * W), int((x1 - 0.03 * v) * W)))
            rgb[v][sl] = rng.integers(0, 200, 3)
            face_id[v][sl] = i
    fg = face_id >= 0
    depth = np.where(fg, 1.0, np.inf).astype(np.float32)
    normal = np.zeros((n_views, H, W, 3), np.float32)
    normal[fg] = (0.0, 0.0, -1.0)
    K = np.tile(np.array([[W, 0, W / 2], [0, W, H / 2], [0, 0, 1]], float), (n_views, 1, 1))
    w2c = np.tile(np.eye(4), (n_views, 1, 1))
    w2c[:, 2, 3] = 2.0 + np.arange(n_views)
    cams = Cameras(K, w2c, W, H, tuple(f"v{i}" for i in range(n_views)))
    return Views(cams, face_id, depth, normal, rgb)


# --------------------------------------------------------------------------- tokenizers


def clip_tokenizer():
    """A CLIP BPE tokenizer over a handful of words (transformers 5 takes vocab/merges objects)."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for c in sorted(set("".join(_WORDS))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges: list[tuple[str, str]] = []
    for w in _WORDS:
        toks = list(w[:-1]) + [w[-1] + "</w>"]
        while len(toks) > 1:
            pair = (toks[0], toks[1])
            if pair not in merges:
                merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
            toks = [pair[0] + pair[1]] + toks[2:]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges)


def bert_tokenizer():
    """A BERT WordPiece tokenizer with [CLS]=101, [SEP]=102, '.'=1012 as Grounding DINO expects."""
    from transformers import BertTokenizer

    v = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    v += [f"[unused{i}]" for i in range(len(v), 1012)] + [".", "?"] + _WORDS
    return BertTokenizer(vocab={w: i for i, w in enumerate(v)})


def text_token_ids(tokenizer) -> dict[str, int]:
    """bos/eos/pad ids of ``tokenizer`` as text-config keyword arguments."""
    return dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)


class CallCounter:
    """Counts forward calls of a torch module (via a forward pre-hook)."""

    def __init__(self, module: Any) -> None:
        self.n = 0
        self._handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.n += 1

    def remove(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- tiny models
# Seeded tiny random configs; each call builds a fresh model in eval mode.

_TEXT = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             max_position_embeddings=16)


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def tiny_dinov2():
    """Dinov2Model: hidden 32, 2 layers, patch 8, 64 px."""
    from transformers import Dinov2Config, Dinov2Model

    _seed()
    return Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, patch_size=8, image_size=64)).eval()


def tiny_sam():
    """SamModel: ViT hidden 32, 2 layers, patch 8, 64 px input."""
    from transformers import SamConfig, SamModel

    _seed()
    cfg = SamConfig(
        vision_config=dict(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1],
                           num_pos_feats=8, mlp_dim=64),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16),
    )
    return SamModel(cfg).eval()


def tiny_clipseg(tokenizer):
    """CLIPSegForImageSegmentation: 2-layer towers of width 32, 64 px, patch 16; ids from ``tokenizer``."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    _seed()
    cfg = CLIPSegConfig(
        text_config=dict(_TEXT, **text_token_ids(tokenizer)),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=16),
        projection_dim=16, extract_layers=[0, 1], reduce_dim=16, decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    return CLIPSegForImageSegmentation(cfg).eval()


def tiny_owlv2(tokenizer):
    """Owlv2ForObjectDetection: 2-layer towers, 64 px, patch 16; ids from ``tokenizer``."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection

    _seed()
    cfg = Owlv2Config(  # projection_dim must equal the text hidden size
        text_config=dict(_TEXT, **text_token_ids(tokenizer), hidden_size=16, intermediate_size=32),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=16),
        projection_dim=16,
    )
    return Owlv2ForObjectDetection(cfg).eval()


def _tiny_swin(stages):
    from transformers import SwinConfig

    return SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64,
                      out_features=stages)


def tiny_grounding_dino():
    """GroundingDinoForObjectDetection: tiny Swin, 1-layer BERT (vocab 1100), d_model 32, 20 queries."""
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection

    _seed()
    cfg = GroundingDinoConfig(
        backbone_config=_tiny_swin(["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=1100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=20, num_feature_levels=3, encoder_n_points=2,
        decoder_n_points=2, max_text_len=32, use_timm_backbone=False,
    )
    return GroundingDinoForObjectDetection(cfg).eval()


def tiny_mask2former():
    """Mask2FormerForUniversalSegmentation: tiny Swin, hidden 32, 10 queries, 5 labels."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

    _seed()
    cfg = Mask2FormerConfig(
        backbone_config=_tiny_swin(["stage1", "stage2", "stage3", "stage4"]), num_labels=5, hidden_dim=32,
        mask_feature_size=32, feature_size=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
        encoder_feedforward_dim=64, dim_feedforward=64, num_queries=10, common_stride=4, use_timm_backbone=False,
    )
    return Mask2FormerForUniversalSegmentation(cfg).eval()


def tiny_segformer():
    """SegformerForSemanticSegmentation: 2 stages (8, 16 channels), decoder 16, 5 labels."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    _seed()
    cfg = SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                          patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2],
                          decoder_hidden_size=16, num_labels=5,
                          id2label={0: "road", 1: "car", 2: "person", 3: "rider", 4: "sky"})
    return SegformerForSemanticSegmentation(cfg).eval()
