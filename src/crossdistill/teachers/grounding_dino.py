"""Grounding DINO open-set box teacher (``transformers.GroundingDinoForObjectDetection``).

The part names are joined into one caption, ``"[CLS] wheel . seat . [SEP]"``, built
token by token so the span of every part in the caption is known exactly. Each of the
model's queries predicts a box and a logit per caption token; a part's probability for a
query is the highest sigmoid over its span's tokens, the box's label the best part and its
score that probability. Boxes (normalised to the unpadded image) become pixel xyxy, are
thresholded (``box_threshold``), de-duplicated by per-label NMS and clipped to the view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from crossdistill.errors import InputError
from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers._ops import clip_boxes, cxcywh_to_xyxy, select_detections
from crossdistill.teachers.base import PartPredictions
from crossdistill.types import Views

__all__ = ["GroundingDinoTextTeacher"]


class GroundingDinoTextTeacher(HFTeacher):
    """Part boxes from Grounding DINO with a "part . part ." caption.

    Args:
        model: a ``GroundingDinoForObjectDetection``.
        processor: ``GroundingDinoProcessor`` (image processor + BERT tokenizer), or None:
            a default PIL ``GroundingDinoImageProcessor``, and ``tokenizer`` must be given.
        tokenizer: overrides the processor's tokenizer.
        box_threshold: minimum box score.
        nms_thresh: per-label box NMS IoU (None: no NMS).
        max_detections: most boxes kept per view.
        batch_size: views per forward pass.
        device, dtype, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.
    """

    backend = "grounding_dino"
    default_model_id = "IDEA-Research/grounding-dino-tiny"
    model_class = "GroundingDinoForObjectDetection"
    processor_class = "GroundingDinoProcessor"
    #: what :meth:`predict` returns per part: boxes or pixel masks (PartDistill picks its defaults by it)
    prediction_output = "box"

    def __init__(self, model, processor=None, *, tokenizer=None, box_threshold: float = 0.3,
                 nms_thresh: float | None = 0.5, max_detections: int | None = 100, device: str = "cpu",
                 dtype=None, batch_size: int = 2, name: str | None = None) -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
        self._tokenizer = tokenizer
        self.box_threshold = float(box_threshold)
        self.nms_thresh = nms_thresh
        self.max_detections = max_detections
        if self.image_processor is None:
            from transformers import GroundingDinoImageProcessorPil

            self._image_processor = GroundingDinoImageProcessorPil()
        else:
            self._image_processor = self.image_processor

    @property
    def teacher_id(self) -> str:
        return f"grounding_dino:{self.model_tag}:thr={self.box_threshold}:nms={self.nms_thresh}:max={self.max_detections}"

    def caption(self, part_names: Sequence[str]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """(1, T) caption token ids and each part's [start, end) token span."""
        tok = self._tokenizer or self.tokenizer
        if tok is None:
            raise InputError("the Grounding DINO teacher needs a tokenizer (load it with from_pretrained or pass tokenizer=)")
        dot = tok.convert_tokens_to_ids(".")
        ids, spans = [tok.cls_token_id], []
        for name in part_names:
            toks = tok(name.strip().lower(), add_special_tokens=False)["input_ids"]
            if not toks:
                raise InputError(f"part name {name!r} gives no tokens")
            spans.append((len(ids), len(ids) + len(toks)))
            ids += list(toks) + [dot]
        ids.append(tok.sep_token_id)
        max_len = int(getattr(self.model.config, "max_text_len", 256))
        if len(ids) > max_len:
            raise InputError(f"{len(part_names)} part names make a {len(ids)}-token caption; Grounding DINO takes {max_len}")
        return torch.tensor([ids], dtype=torch.long), spans

    @torch.no_grad()
    def raw(self, views: Views, part_names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(V, Q, P) part probabilities and (V, Q, 4) pixel xyxy boxes of every query (CPU)."""
        ids, spans = self.caption(part_names)
        ids = ids.to(self.device)
        H, W = views.rgb.shape[1:3]
        scale = torch.tensor([W, H, W, H], dtype=torch.float32)
        probs, boxes = [], []
        for sl in batches(len(views), self.batch_size):
            images = self._images(views.rgb[sl])
            enc = self._image_processor(images=images, return_tensors="pt")
            b = len(images)
            out = self.model(
                pixel_values=enc["pixel_values"].to(self.device, self._model_dtype()),
                pixel_mask=enc["pixel_mask"].to(self.device) if "pixel_mask" in enc else None,
                input_ids=ids.repeat(b, 1),
                token_type_ids=torch.zeros_like(ids).repeat(b, 1),
                attention_mask=torch.ones_like(ids).repeat(b, 1),
            )
            tok_probs = torch.sigmoid(out.logits[..., : ids.shape[1]].float()).cpu()  # (b, Q, T)
            probs.append(torch.stack([tok_probs[..., s:e].amax(-1) for s, e in spans], -1))
            boxes.append(clip_boxes(cxcywh_to_xyxy(out.pred_boxes.float().cpu()) * scale, H, W))
        return torch.cat(probs), torch.cat(boxes)

    def predict(self, views: Views, part_names: Sequence[str]) -> list[PartPredictions]:
        """Per view: labels (P,), scores (P,), boxes (P, 4) xyxy pixels, masks None."""
        names = tuple(str(n) for n in part_names)
        if not names:
            raise InputError("Grounding DINO needs at least one part name")
        probs, boxes = self.raw(views, names)
        out = []
        for v in range(len(views)):
            scores, labels = probs[v].max(-1)
            keep = select_detections(scores, labels, boxes[v], self.box_threshold, self.nms_thresh,
                                     self.max_detections)
            out.append(PartPredictions(
                labels=labels[keep].numpy().astype(np.int64),
                scores=scores[keep].numpy().astype(np.float32),
                boxes=boxes[v][keep].numpy().astype(np.float32),
                masks=None,
                part_names=names,
            ))
        return out
