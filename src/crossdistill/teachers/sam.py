"""SAM automatic mask generation (``transformers.SamModel``) as a :class:`MaskTeacher`.

For every view (optionally cropped to the rendered object):

1. the image processor resizes the longer side to the model's input size and pads it to a
   square; the ViT image encoder runs once per view (views batched);
2. a regular grid of ``points_per_side`` x ``points_per_side`` point prompts (only points
   on the object when ``restrict_to_foreground``) is decoded in batches of
   ``points_per_batch`` prompts, each with SAM's three multimask outputs;
3. low-resolution logits are mapped back to view pixels in one interpolation; each mask
   gets SAM's predicted IoU and a stability score (IoU of the masks thresholded at
   ``mask_threshold +- stability_offset``); masks below ``pred_iou_thresh`` or
   ``stability_thresh`` are dropped;
4. the three outputs of each prompt are ranked by area: largest = level 0 (whole),
   middle = 1 (part), smallest = 2 (subpart), so the level does not depend on the
   checkpoint's output order;
5. box NMS (per level by default, so coarse and fine masks survive together) removes
   duplicates; masks are intersected with the foreground when asked.

Memory: one batch holds ``3 * points_per_batch`` float masks at crop resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers._ops import batched_nms, foreground_box, masks_to_boxes, nms, resize_padded, stability_score
from crossdistill.teachers.base import MaskSet
from crossdistill.types import Views

__all__ = ["SamMaskTeacher", "AutoMaskSettings"]


@dataclass(frozen=True)
class AutoMaskSettings:
    """Automatic-mask-generation settings (defaults follow SAM's generator).

    Attributes:
        points_per_side: the prompt grid is points_per_side x points_per_side per view (or crop).
        points_per_batch: prompts decoded per mask-decoder call.
        pred_iou_thresh: minimum predicted IoU.
        stability_thresh: minimum stability score.
        stability_offset: logit offset of the stability score.
        mask_threshold: logit threshold of a mask.
        nms_thresh: box IoU above which the lower-scoring mask is dropped.
        nms_per_level: run NMS within each granularity level only.
        min_mask_area: drop masks smaller than this many pixels.
        restrict_to_foreground: prompts only on object pixels; masks cut to the object.
        crop_to_foreground: run SAM on the object's bounding box (+ crop_margin) instead of
            the whole view: more input pixels on small objects.
        crop_margin: margin of that crop, as a fraction of the box size.
        max_masks: keep at most this many masks per view (highest scores), None = all.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_thresh: float = 0.95
    stability_offset: float = 1.0
    mask_threshold: float = 0.0
    nms_thresh: float = 0.7
    nms_per_level: bool = True
    min_mask_area: int = 0
    restrict_to_foreground: bool = True
    crop_to_foreground: bool = False
    crop_margin: float = 0.1
    max_masks: int | None = None

    def short(self) -> str:
        d = asdict(self)
        return ",".join(f"{k}={v}" for k, v in d.items())


class SamMaskTeacher(HFTeacher):
    """Multi-granularity masks from SAM's point-grid automatic mask generation.

    Args:
        model: a ``SamModel``.
        processor: ``SamProcessor`` or ``SamImageProcessor``; None builds a PIL
            ``SamImageProcessor`` sized to ``model.config.vision_config.image_size``.
        settings: :class:`AutoMaskSettings`; keyword overrides (``points_per_side=16``...)
            are applied on top.
        batch_size: views per image-encoder call.
        device, dtype, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.

    Example:
        >>> teacher = SamMaskTeacher.from_pretrained("facebook/sam-vit-base")  # doctest: +SKIP
        >>> sets = teacher.masks(views)                                        # doctest: +SKIP
        >>> sets[0].masks.shape, sets[0].level[:5]                             # doctest: +SKIP
        ((M, H, W), array([0, 1, 2, 0, 2], dtype=int8))
    """

    backend = "sam"
    default_model_id = "facebook/sam-vit-base"
    model_class = "SamModel"
    processor_class = "SamProcessor"

    def __init__(self, model, processor=None, *, settings: AutoMaskSettings | None = None,
                 device: str = "cpu", dtype=None, batch_size: int = 4, name: str | None = None,
                 **overrides) -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
        self.settings = replace(settings or AutoMaskSettings(), **overrides)
        if self.processor is None:
            from transformers import SamImageProcessorPil

            size = int(model.config.vision_config.image_size)
            self.processor = SamImageProcessorPil(size={"longest_edge": size}, pad_size={"height": size, "width": size})

    @property
    def teacher_id(self) -> str:
        return f"sam:{self.model_tag}:{self.settings.short()}"

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def embed(self, images: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]], tuple[int, int]]:
        """Encode images: (B, C, h, w) embeddings, per-image resized (rh, rw), padded input size."""
        inputs = self.image_processor(images=images, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self._model_dtype())
        emb = self.model.get_image_embeddings(pixel_values)
        reshaped = [(int(h), int(w)) for h, w in inputs["reshaped_input_sizes"]]
        return emb, reshaped, tuple(pixel_values.shape[-2:])

    def prompt_grid(self, foreground: np.ndarray) -> np.ndarray:
        """(N, 2) float32 (x, y) pixel prompts on an H x W image (object pixels only if asked)."""
        H, W = foreground.shape
        n = self.settings.points_per_side
        xs = (np.arange(n) + 0.5) / n * W
        ys = (np.arange(n) + 0.5) / n * H
        pts = np.stack(np.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2).astype(np.float32)
        if self.settings.restrict_to_foreground:
            on = foreground[pts[:, 1].astype(int), pts[:, 0].astype(int)]
            pts = pts[on]
        return pts

    @torch.no_grad()
    def decode(self, embedding: torch.Tensor, points: np.ndarray, reshaped: tuple[int, int],
               padded: tuple[int, int], out_hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """Decode point prompts on one image.

        Args:
            embedding: (C, h, w) image embedding.
            points: (N, 2) (x, y) prompts in image pixels of an ``out_hw`` image.
            reshaped: (rh, rw) size of the image inside the network input.
            padded: (S, S) network input size.
            out_hw: (H, W) image size.

        Returns:
            masks (K, H, W) bool, scores (K,), levels (K,) int8 of the masks that pass the
            IoU / stability / area filters.
        """
        s = self.settings
        H, W = out_hw
        scale = torch.tensor([reshaped[1] / W, reshaped[0] / H], device=self.device)
        keep_masks, keep_scores, keep_levels = [], [], []
        for sl in batches(len(points), s.points_per_batch):
            pts = torch.as_tensor(points[sl], device=self.device) * scale  # (P, 2) network coords
            out = self.model(
                image_embeddings=embedding[None],
                input_points=pts[None, :, None, :].to(self._model_dtype()),
                input_labels=torch.ones((1, len(pts), 1), dtype=torch.long, device=self.device),
                multimask_output=True,
            )
            low = out.pred_masks[0]  # (P, 3, L, L)
            P, K = low.shape[:2]
            logits = resize_padded(low.reshape(P * K, 1, *low.shape[-2:]), reshaped, padded, out_hw)[:, 0]
            iou = out.iou_scores[0].reshape(P * K).float()
            stab = stability_score(logits, s.mask_threshold, s.stability_offset)
            masks = logits > s.mask_threshold  # (P*K, H, W)
            area = masks.flatten(1).sum(1)
            # rank the K outputs of each prompt by area: largest -> level 0 (whole)
            rank = torch.argsort(torch.argsort(area.view(P, K), dim=1, descending=True), dim=1)
            levels = rank.reshape(-1).clamp_max(2).to(torch.int8)
            ok = (iou > s.pred_iou_thresh) & (stab > s.stability_thresh) & (area >= max(1, s.min_mask_area))
            keep_masks.append(masks[ok])
            keep_scores.append(iou[ok].clamp(0, 1))
            keep_levels.append(levels[ok])
        if not keep_masks:
            return (torch.zeros((0, H, W), dtype=torch.bool, device=self.device),
                    torch.zeros(0, device=self.device), torch.zeros(0, dtype=torch.int8, device=self.device))
        return torch.cat(keep_masks), torch.cat(keep_scores), torch.cat(keep_levels)

    def suppress(self, masks: torch.Tensor, scores: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Indices kept by box NMS (per level when ``nms_per_level``), by decreasing score."""
        boxes = masks_to_boxes(masks)
        if self.settings.nms_per_level:
            return batched_nms(boxes, scores, levels.long(), self.settings.nms_thresh)
        return nms(boxes, scores, self.settings.nms_thresh)

    # ------------------------------------------------------------------ teacher API
    def masks(self, views: Views) -> list[MaskSet]:
        """One :class:`MaskSet` per view: (M, H, W) bool masks, scores, levels 0/1/2."""
        s = self.settings
        V, H, W = views.rgb.shape[:3]
        fg_all = views.foreground
        crops: list[tuple[int, int, int, int] | None] = []
        for v in range(V):
            box = foreground_box(fg_all[v], s.crop_margin) if s.crop_to_foreground else (0, 0, W, H)
            if s.restrict_to_foreground and not fg_all[v].any():
                box = None
            crops.append(box)
        results: list[MaskSet] = [MaskSet.empty(H, W) for _ in range(V)]
        todo = [v for v in range(V) if crops[v] is not None]
        for sl in batches(len(todo), self.batch_size):
            ids = todo[sl]
            images = [views.rgb[v, crops[v][1]:crops[v][3], crops[v][0]:crops[v][2]] for v in ids]
            emb, reshaped, padded = self.embed(images)
            for i, v in enumerate(ids):
                results[v] = self._one_view(emb[i], reshaped[i], padded, crops[v], fg_all[v], (H, W))
        return results

    def _one_view(self, emb, reshaped, padded, crop, fg, hw) -> MaskSet:
        s = self.settings
        x0, y0, x1, y1 = crop
        fg_crop = fg[y0:y1, x0:x1]
        points = self.prompt_grid(fg_crop)
        if len(points) == 0:
            return MaskSet.empty(*hw)
        masks, scores, levels = self.decode(emb, points, reshaped, padded, fg_crop.shape)
        if s.restrict_to_foreground and len(masks):
            masks = masks & torch.as_tensor(fg_crop, device=masks.device)
            nonempty = masks.flatten(1).sum(1) >= max(1, s.min_mask_area)
            masks, scores, levels = masks[nonempty], scores[nonempty], levels[nonempty]
        keep = self.suppress(masks, scores, levels)
        if s.max_masks is not None:
            keep = keep[: s.max_masks]
        full = np.zeros((len(keep), *hw), dtype=bool)
        full[:, y0:y1, x0:x1] = masks[keep].cpu().numpy()
        return MaskSet(
            masks=full,
            scores=scores[keep].float().cpu().numpy().astype(np.float32),
            level=levels[keep].cpu().numpy().astype(np.int8),
        )
