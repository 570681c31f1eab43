"""OWLv2 open-vocabulary box teacher (``transformers.Owlv2ForObjectDetection``).

Views are padded to a square (bottom/right) and resized by the OWLv2 image processor;
part names become text queries (``prompt_template``, default "a photo of a {}"). Every
image patch predicts one box and a logit per query; a box's label is its best query and
its score the sigmoid of that logit. Boxes (normalised to the padded square) are scaled by
the view's longer side, clipped to the view, thresholded, de-duplicated by per-label NMS
and returned as pixel xyxy.
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

__all__ = ["Owlv2TextTeacher"]


class Owlv2TextTeacher(HFTeacher):
    """Part boxes from OWLv2 text queries.

    Args:
        model: an ``Owlv2ForObjectDetection``.
        processor: ``Owlv2Processor`` (image processor + CLIP tokenizer), or None: a PIL
            ``Owlv2ImageProcessor`` sized to the model, and ``tokenizer`` must be given.
        tokenizer: overrides the processor's tokenizer.
        score_threshold: minimum box score.
        nms_thresh: per-label box NMS IoU (None: no NMS).
        max_detections: most boxes kept per view.
        prompt_template: format string turning a part name into a query.
        batch_size: views per forward pass.
        device, dtype, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.
    """

    backend = "owlv2"
    default_model_id = "google/owlv2-base-patch16-ensemble"
    model_class = "Owlv2ForObjectDetection"
    processor_class = "Owlv2Processor"
    #: what :meth:`predict` returns per part: boxes or pixel masks (PartDistill picks its defaults by it)
    prediction_output = "box"

    def __init__(self, model, processor=None, *, tokenizer=None, score_threshold: float = 0.1,
                 nms_thresh: float | None = 0.5, max_detections: int | None = 100,
                 prompt_template: str = "a photo of a {}", device: str = "cpu", dtype=None,
                 batch_size: int = 4, name: str | None = None) -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
        self._tokenizer = tokenizer
        self.score_threshold = float(score_threshold)
        self.nms_thresh = nms_thresh
        self.max_detections = max_detections
        self.prompt_template = prompt_template
        if self.image_processor is None:
            from transformers import Owlv2ImageProcessorPil

            size = int(model.config.vision_config.image_size)
            self._image_processor = Owlv2ImageProcessorPil(size={"height": size, "width": size})
        else:
            self._image_processor = self.image_processor

    @property
    def teacher_id(self) -> str:
        return (f"owlv2:{self.model_tag}:thr={self.score_threshold}:nms={self.nms_thresh}"
                f":max={self.max_detections}:prompt={self.prompt_template}")

    def tokenize(self, part_names: Sequence[str]) -> dict[str, torch.Tensor]:
        """(P, L) input_ids / attention_mask of the queries, padded to the text context length."""
        tok = self._tokenizer or self.tokenizer
        if tok is None:
            raise InputError("the OWLv2 teacher needs a tokenizer (load it with from_pretrained or pass tokenizer=)")
        max_len = int(self.model.config.text_config.max_position_embeddings)
        enc = tok([self.prompt_template.format(n) for n in part_names], padding="max_length",
                  truncation=True, max_length=max_len, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    @torch.no_grad()
    def raw(self, views: Views, part_names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(V, N, P) query probabilities and (V, N, 4) pixel xyxy boxes of every patch (CPU)."""
        text = self.tokenize(part_names)
        H, W = views.rgb.shape[1:3]
        probs, boxes = [], []
        for sl in batches(len(views), self.batch_size):
            images = self._images(views.rgb[sl])
            pix = self._image_processor(images=images, return_tensors="pt")["pixel_values"]
            b = len(images)
            out = self.model(
                input_ids=text["input_ids"].repeat(b, 1),
                attention_mask=text["attention_mask"].repeat(b, 1),
                pixel_values=pix.to(self.device, self._model_dtype()),
            )
            probs.append(torch.sigmoid(out.logits.float()).cpu())
            side = float(max(H, W))  # boxes are relative to the padded square
            boxes.append(clip_boxes(cxcywh_to_xyxy(out.pred_boxes.float()) * side, H, W).cpu())
        return torch.cat(probs), torch.cat(boxes)

    def predict(self, views: Views, part_names: Sequence[str]) -> list[PartPredictions]:
        """Per view: labels (P,), scores (P,), boxes (P, 4) xyxy pixels, masks None."""
        names = tuple(str(n) for n in part_names)
        if not names:
            raise InputError("OWLv2 needs at least one part name")
        probs, boxes = self.raw(views, names)
        out = []
        for v in range(len(views)):
            scores, labels = probs[v].max(-1)
            keep = select_detections(scores, labels, boxes[v], self.score_threshold, self.nms_thresh,
                                     self.max_detections)
            out.append(PartPredictions(
                labels=labels[keep].numpy().astype(np.int64),
                scores=scores[keep].numpy().astype(np.float32),
                boxes=boxes[v][keep].numpy().astype(np.float32),
                masks=None,
                part_names=names,
            ))
        return out
