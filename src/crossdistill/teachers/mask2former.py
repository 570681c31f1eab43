"""Mask2Former instance teacher (``transformers.Mask2FormerForUniversalSegmentation``).

Views go through the Mask2Former image processor (resize + pad to a multiple of 32, with a
pixel mask). Each query gives a class distribution (last class = "no object") and a mask
logit map at 1/4 of the network input. A query becomes an instance when
``p(best class) * mean mask probability inside its mask`` exceeds ``score_threshold``
(Mask2Former's own instance scoring). Masks are mapped back to the view in one
interpolation; the pixel decoder's last feature map -- the per-pixel mask embedding that
PartDistillation builds its part queries on -- is returned cropped to the unpadded image,
at the network's 1/4 resolution.
"""

from __future__ import annotations

import numpy as np
import torch

from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers._ops import resize_padded
from crossdistill.teachers.base import InstanceSet
from crossdistill.types import Views

__all__ = ["Mask2FormerInstanceTeacher"]


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
        batch_size: views per forward pass.
        device, dtype, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.
    """

    backend = "mask2former"
    default_model_id = "facebook/mask2former-swin-tiny-coco-instance"
    model_class = "Mask2FormerForUniversalSegmentation"
    processor_class = "AutoImageProcessor"

    def __init__(self, model, processor=None, *, score_threshold: float = 0.5, mask_threshold: float = 0.0,
                 max_instances: int | None = 100, feature_dtype: type = np.float32, device: str = "cpu",
                 dtype=None, batch_size: int = 2, name: str | None = None) -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
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
                f":max={self.max_instances}:{self.feature_dtype.name}")

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
        out = self.model(pixel_values=pixel_values, pixel_mask=pixel_mask.to(self.device))
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
            feats = out.pixel_decoder_last_hidden_state[i].float()  # (C, h4, w4) over the padded input
            fh = max(1, round(feats.shape[1] * valid[0] / padded[0]))
            fw = max(1, round(feats.shape[2] * valid[1] / padded[1]))
            results.append(InstanceSet(
                masks=masks.cpu().numpy(),
                scores=scores[keep].clamp(0, 1).cpu().numpy().astype(np.float32),
                classes=classes[keep].cpu().numpy().astype(np.int64),
                features=feats[:, :fh, :fw].cpu().numpy().astype(self.feature_dtype),
            ))
        return results
