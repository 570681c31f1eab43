"""SegFormer semantic teacher (``transformers.SegformerForSemanticSegmentation``).

The 2D network of the LiDAR distillation methods: a driving-scene segmenter (default
weights ``nvidia/segformer-b0-finetuned-cityscapes-1024-1024``, 19 Cityscapes classes).
Images go through the SegFormer image processor (resize + normalise); the decode head's
fused features (the input of its 1x1 classifier, ``decoder_hidden_size`` channels at 1/4
of the network input) are captured with a forward hook and returned with the logits, and
:meth:`SegformerSemanticTeacher.classifier` exposes that 1x1 classifier as a matrix, so a
LiDAR student can share it (FSKD) and be read out in the teacher's label space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers.base import SemanticMap

__all__ = ["SegformerSemanticTeacher"]


class SegformerSemanticTeacher(HFTeacher):
    """Per-pixel Cityscapes classes and decode-head features from SegFormer.

    Args:
        model: a ``SegformerForSemanticSegmentation``.
        processor: its image processor, or None for a PIL ``SegformerImageProcessor``
            resizing to ``image_size``.
        image_size: (H, W) network input when no processor is given (default 512 x 1024,
            the Cityscapes aspect).
        device, dtype, batch_size, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.
    """

    backend = "segformer"
    default_model_id = "nvidia/segformer-b0-finetuned-cityscapes-1024-1024"
    model_class = "SegformerForSemanticSegmentation"
    processor_class = "AutoImageProcessor"

    def __init__(self, model, processor=None, *, image_size: tuple[int, int] = (512, 1024), device: str = "cpu",
                 dtype=None, batch_size: int = 2, name: str | None = None) -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
        if self.processor is None:
            from transformers import SegformerImageProcessorPil

            self.processor = SegformerImageProcessorPil(size={"height": int(image_size[0]),
                                                              "width": int(image_size[1])})
        labels = getattr(self.model.config, "id2label", None) or {}
        n = self.model.config.num_labels
        self.class_names = tuple(str(labels.get(i, labels.get(str(i), f"class{i}"))) for i in range(n))

    @property
    def teacher_id(self) -> str:
        return f"segformer:{self.model_tag}"

    def classifier(self) -> tuple[np.ndarray, np.ndarray]:
        """((K, C) weight, (K,) bias) of the decode head's 1x1 classifier."""
        conv = self.model.decode_head.classifier
        return (conv.weight.detach().float().cpu().numpy()[:, :, 0, 0],
                conv.bias.detach().float().cpu().numpy())

    def segment(self, images: Sequence[np.ndarray]) -> list[SemanticMap]:
        """Per image (H, W, 3) uint8: features (C, h, w), logits (K, h, w)."""
        out: list[SemanticMap] = []
        for sl in batches(len(images), self.batch_size):
            out.extend(self._batch([np.ascontiguousarray(im) for im in images[sl]]))
        return out

    @torch.no_grad()
    def _batch(self, images: list[np.ndarray]) -> list[SemanticMap]:
        captured: dict[str, torch.Tensor] = {}
        hook = self.model.decode_head.classifier.register_forward_hook(
            lambda _m, args, _out: captured.__setitem__("features", args[0]))
        try:
            enc = self.image_processor(images=images, return_tensors="pt")
            logits = self.model(pixel_values=enc["pixel_values"].to(self.device, self._model_dtype())).logits
        finally:
            hook.remove()
        feats = captured["features"].float().cpu().numpy()
        logits = logits.float().cpu().numpy()
        return [SemanticMap(feats[i], logits[i], tuple(images[i].shape[:2])) for i in range(len(images))]
