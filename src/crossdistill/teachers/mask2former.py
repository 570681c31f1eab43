"""Mask2Former instance teacher (``transformers.Mask2FormerForUniversalSegmentation``).

Views go through the Mask2Former image processor (resize + pad to a multiple of 32, with a
pixel mask). Each query gives a class distribution (last class = "no object") and a mask
logit map at 1/4 of the network input. A query becomes an instance when
``p(best class) * mean mask probability inside its mask`` exceeds ``score_threshold``
(Mask2Former's own instance scoring). Masks are mapped back to the view in one
interpolation.

Pixel features (``feature_layer``), cropped to the unpadded image:

* ``"res3+res4"``: the layer PartDistillation groups into parts. Its released
  pixel-grouping configuration (``configs/PixelGrouping.yaml``, ``PixelGroupingModel``)
  takes the *backbone* stages ``res3`` and ``res4`` of the COCO-instance Mask2Former
  (Swin-L, ImageNet-21K pre-trained, 200 queries; inputs resized to 640 px): ``res3`` is at
  stride 8, ``res4`` at stride 16 and is resized bilinearly to ``res3``'s grid, and the two
  are concatenated along channels (Swin-L: 384 + 768 = 1152 channels, an 80 x 80 map for a
  640 px input). Here they are the second and third of ``encoder_hidden_states``
  (``output_hidden_states=True``), the backbone feature maps, so ``C`` = the two stages'
  widths and the map is at 1/8 of the network input.
* ``"pixel_decoder"`` (default, kept for existing users and caches): the pixel decoder's
  last map, the per-pixel mask embedding
  (``pixel_decoder_last_hidden_state``, ``mask_feature_size`` channels, 1/4 of the input),
  what Mask2Former's own queries' masks are dot products with.
"""

from __future__ import annotations

import numpy as np
import torch

from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers._ops import resize_padded
from crossdistill.teachers.base import InstanceSet
from crossdistill.types import Views

__all__ = ["Mask2FormerInstanceTeacher", "FEATURE_LAYERS"]

#: pixel feature layers the teacher can return (module docstring)
FEATURE_LAYERS = ("res3+res4", "pixel_decoder")


class Mask2FormerInstanceTeacher(HFTeacher):
    """Instance masks, scores, classes and pixel-decoder features from Mask2Former.

    Args:
        model: a ``Mask2FormerForUniversalSegmentation``.
        processor: its image processor, or None for a default PIL
            ``Mask2FormerImageProcessor`` (shortest edge 384, longest 1333).
        score_threshold: minimum instance score.
        mask_threshold: mask logit threshold.
        max_instances: most instances kept per view (best scores).
        feature_dtype: numpy dtype of the returned pixel features.
        feature_layer: ``"pixel_decoder"`` (default) or ``"res3+res4"`` (the layer
            PartDistillation clusters; see the module docstring).
        batch_size: views per forward pass.
        device, dtype, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.
    """

    backend = "mask2former"
    default_model_id = "facebook/mask2former-swin-tiny-coco-instance"
    model_class = "Mask2FormerForUniversalSegmentation"
    processor_class = "AutoImageProcessor"

    def __init__(self, model, processor=None, *, score_threshold: float = 0.5, mask_threshold: float = 0.0,
                 max_instances: int | None = 100, feature_dtype: type = np.float32, device: str = "cpu",
                 dtype=None, batch_size: int = 2, name: str | None = None,
                 feature_layer: str = "pixel_decoder") -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
        if feature_layer not in FEATURE_LAYERS:
            raise ValueError(f"feature_layer must be one of {FEATURE_LAYERS}, got {feature_layer!r}")
        self.feature_layer = feature_layer
        self.score_threshold = float(score_threshold)
        self.mask_threshold = float(mask_threshold)
        self.max_instances = max_instances
        self.feature_dtype = np.dtype(feature_dtype)
        if self.processor is None:
            from transformers import Mask2FormerImageProcessorPil

            # transformers 5 needs both edges (a lone shortest_edge raises in resize)
            self.processor = Mask2FormerImageProcessorPil(size={"shortest_edge": 384, "longest_edge": 1333},
                                                          size_divisor=32)

    @property
    def teacher_id(self) -> str:
        return (f"mask2former:{self.model_tag}:thr={self.score_threshold}:mthr={self.mask_threshold}"
                f":max={self.max_instances}:{self.feature_dtype.name}"
                + ("" if self.feature_layer == "pixel_decoder" else f":feat={self.feature_layer}"))

    def instances(self, views: Views) -> list[InstanceSet]:
        """Per view: masks (M, H, W) bool, scores (M,), classes (M,), features (C, h, w)."""
        out: list[InstanceSet] = []
        for sl in batches(len(views), self.batch_size):
            out.extend(self._batch(views.rgb[sl]))
        return out

    @torch.no_grad()
    def _batch(self, rgb: np.ndarray) -> list[InstanceSet]:
        H, W = rgb.shape[1:3]
        enc = self.image_processor(images=self._images(rgb), return_tensors="pt")
        pixel_values = enc["pixel_values"].to(self.device, self._model_dtype())
        pixel_mask = enc.get("pixel_mask")
        if pixel_mask is None:
            pixel_mask = torch.ones((len(rgb), *pixel_values.shape[-2:]), dtype=torch.long)
        out = self.model(pixel_values=pixel_values, pixel_mask=pixel_mask.to(self.device),
                         output_hidden_states=self.feature_layer != "pixel_decoder")
        padded = tuple(pixel_values.shape[-2:])
        results = []
        for i in range(len(rgb)):
            valid = (int(pixel_mask[i].any(1).sum()), int(pixel_mask[i].any(0).sum()))  # (vh, vw) input pixels
            probs = out.class_queries_logits[i].float().softmax(-1)[:, :-1]  # (Q, K)
            cls_prob, classes = probs.max(-1)
            logits = out.masks_queries_logits[i].float()  # (Q, h4, w4)
            # score on the network-resolution masks, then map the kept ones to the view
            mask_lr = logits > self.mask_threshold
            area = mask_lr.flatten(1).sum(1)
            mean_in = (logits.sigmoid() * mask_lr).flatten(1).sum(1) / area.clamp_min(1)
            scores = cls_prob * mean_in
            keep = torch.nonzero((scores > self.score_threshold) & (area > 0)).flatten()
            keep = keep[torch.argsort(scores[keep], descending=True)][: self.max_instances]
            masks = resize_padded(logits[keep][:, None], valid, padded, (H, W))[:, 0] > self.mask_threshold
            nonempty = masks.flatten(1).any(1)
            keep, masks = keep[nonempty], masks[nonempty]
            feats = self._pixel_features(out, i)  # (C, h, w) over the padded input
            fh = max(1, round(feats.shape[1] * valid[0] / padded[0]))
            fw = max(1, round(feats.shape[2] * valid[1] / padded[1]))
            results.append(InstanceSet(
                masks=masks.cpu().numpy(),
                scores=scores[keep].clamp(0, 1).cpu().numpy().astype(np.float32),
                classes=classes[keep].cpu().numpy().astype(np.int64),
                features=feats[:, :fh, :fw].cpu().numpy().astype(self.feature_dtype),
            ))
        return results

    def _pixel_features(self, out, i: int) -> torch.Tensor:
        """(C, h, w) float features of image i over the padded input (module docstring)."""
        if self.feature_layer == "pixel_decoder":
            return out.pixel_decoder_last_hidden_state[i].float()
        res3, res4 = out.encoder_hidden_states[1][i].float(), out.encoder_hidden_states[2][i].float()
        res4 = torch.nn.functional.interpolate(res4[None], size=res3.shape[-2:], mode="bilinear",
                                               align_corners=False)[0]
        return torch.cat([res3, res4], 0)
