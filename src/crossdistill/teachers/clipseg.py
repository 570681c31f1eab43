"""CLIPSeg pixel-level text teacher (``transformers.CLIPSegForImageSegmentation``).

Every part name is embedded once by CLIP's text tower; every (view, part) pair then goes
through the image tower and CLIPSeg's decoder (pairs batched), giving a logit map at the
network input size that is resized to the view. A part's mask is
``sigmoid(logits) > threshold`` (intersected with the rendered object when
``restrict_to_foreground``) and its score the mean probability inside the mask (0 for an
empty mask). Each view returns one entry per part: ``labels == arange(P)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from crossdistill.errors import InputError
from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers.base import PartPredictions
from crossdistill.types import Views

__all__ = ["ClipSegTextTeacher"]

_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


class ClipSegTextTeacher(HFTeacher):
    """Per-part probability masks from CLIPSeg.

    Args:
        model: a ``CLIPSegForImageSegmentation``.
        processor: ``CLIPSegProcessor`` (image processor + CLIP tokenizer), or None: a PIL
            ``ViTImageProcessor`` sized to the model, and ``tokenizer`` must be given.
        tokenizer: overrides the processor's tokenizer (tests build a tiny one).
        threshold: probability threshold of a mask.
        prompt_template: format string turning a part name into the text prompt.
        restrict_to_foreground: cut masks to rendered object pixels.
        batch_size: (view, part) pairs per forward pass.
        device, dtype, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.
    """

    backend = "clipseg"
    default_model_id = "CIDAS/clipseg-rd64-refined"
    model_class = "CLIPSegForImageSegmentation"
    processor_class = "CLIPSegProcessor"
    #: what :meth:`predict` returns per part: boxes or pixel masks (PartDistill picks its defaults by it)
    prediction_output = "mask"

    def __init__(self, model, processor=None, *, tokenizer=None, threshold: float = 0.5,
                 prompt_template: str = "{}", restrict_to_foreground: bool = True, device: str = "cpu",
                 dtype=None, batch_size: int = 8, name: str | None = None) -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
        self._tokenizer = tokenizer
        self.threshold = float(threshold)
        self.prompt_template = prompt_template
        self.restrict_to_foreground = bool(restrict_to_foreground)
        if self.image_processor is None:
            from transformers import ViTImageProcessorPil

            size = int(model.config.vision_config.image_size)
            self._image_processor = ViTImageProcessorPil(size={"height": size, "width": size},
                                                         image_mean=_IMAGENET_MEAN, image_std=_IMAGENET_STD)
        else:
            self._image_processor = self.image_processor

    @property
    def teacher_id(self) -> str:
        return (f"clipseg:{self.model_tag}:thr={self.threshold}:prompt={self.prompt_template}"
                f":fg={int(self.restrict_to_foreground)}")

    @torch.no_grad()
    def text_embeddings(self, part_names: Sequence[str]) -> torch.Tensor:
        """(P, D) conditional embeddings of the prompts."""
        tok = self._tokenizer or self.tokenizer
        if tok is None:
            raise InputError("the CLIPSeg teacher needs a tokenizer (load it with from_pretrained or pass tokenizer=)")
        max_len = int(self.model.config.text_config.max_position_embeddings)
        enc = tok([self.prompt_template.format(n) for n in part_names], padding=True, truncation=True,
                  max_length=max_len, return_tensors="pt")
        return self.model.get_conditional_embeddings(
            batch_size=len(part_names),
            input_ids=enc["input_ids"].to(self.device),
            attention_mask=enc["attention_mask"].to(self.device),
        )

    @torch.no_grad()
    def probabilities(self, views: Views, part_names: Sequence[str]) -> torch.Tensor:
        """(V, P, H, W) float32 per-part probabilities at view resolution (on CPU)."""
        V, H, W = views.rgb.shape[:3]
        P = len(part_names)
        cond = self.text_embeddings(part_names).to(self._model_dtype())
        pixels = self._image_processor(images=self._images(views.rgb), return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self._model_dtype())
        probs = torch.empty((V * P, H, W), dtype=torch.float32)
        pairs = torch.arange(V * P)
        for sl in batches(V * P, self.batch_size):
            idx = pairs[sl]
            out = self.model(pixel_values=pixels[idx // P], conditional_embeddings=cond[idx % P])
            logits = out.logits.reshape(len(idx), 1, *pixels.shape[-2:]).float()
            probs[sl] = torch.sigmoid(F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False))[:, 0].cpu()
        return probs.view(V, P, H, W)

    def predict(self, views: Views, part_names: Sequence[str]) -> list[PartPredictions]:
        """One mask per part per view: labels (P,), scores (P,), masks (P, H, W) bool, boxes None."""
        names = tuple(str(n) for n in part_names)
        if not names:
            raise InputError("CLIPSeg needs at least one part name")
        probs = self.probabilities(views, names).numpy()
        fg = views.foreground
        out = []
        for v in range(len(views)):
            masks = probs[v] > self.threshold
            if self.restrict_to_foreground:
                masks &= fg[v][None]
            area = masks.reshape(len(names), -1).sum(1)
            inside = (probs[v] * masks).reshape(len(names), -1).sum(1)
            scores = np.where(area > 0, inside / np.maximum(area, 1), 0.0).astype(np.float32)
            out.append(PartPredictions(labels=np.arange(len(names), dtype=np.int64), scores=scores,
                                       boxes=None, masks=masks, part_names=names))
        return out
