"""SAM automatic mask generation (``transformers.SamModel``) as a :class:`MaskTeacher`.

For every view (optionally cropped to the rendered object) and every crop of SAM's crop
layers (:mod:`.sam_automatic`):

1. the image processor resizes the longer side to the model's input size and pads it to a
   square; the ViT image encoder runs once per image (images batched);
2. a regular grid of point prompts (only points on the object when
   ``restrict_to_foreground``) is decoded in batches of ``points_per_batch`` prompts, each
   with SAM's three multimask outputs, every one of which is a candidate mask (no levels
   are forced on them: ``MaskSet.level`` only records which output a mask was);
3. low-resolution logits are mapped back to image pixels in one interpolation; masks pass
   SAM's filters (predicted IoU, stability score, not touching an inner crop edge), then
   box NMS over all masks of the crop, NMS across crops, and the small-region clean-up;
4. SAMPart3D's own filter (masks covering too much background) and the cut to the object.

Memory: one batch holds ``3 * points_per_batch`` float masks at crop resolution.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers._ops import foreground_box, masks_to_boxes, resize_padded
from crossdistill.teachers.sam_automatic import (crop_boxes, filter_outputs, near_crop_edge, point_grid,
                                                 remove_small_regions, suppress)
from crossdistill.teachers.base import MaskSet
from crossdistill.teachers.sam_settings import SAMPART3D_SAM_SETTINGS, AutoMaskSettings
from crossdistill.types import Views

__all__ = ["SamMaskTeacher", "AutoMaskSettings", "SAMPART3D_SAM_SETTINGS"]


class SamMaskTeacher(HFTeacher):
    """Class-agnostic masks at every granularity from SAM's point-grid automatic mask generation.

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
        >>> sets[0].masks.shape, sets[0].scores.shape                          # doctest: +SKIP
        ((M, H, W), (M,))
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

    def prompt_grid(self, foreground: np.ndarray, n_per_side: int | None = None) -> np.ndarray:
        """(N, 2) float32 (x, y) pixel prompts on an H x W image (object pixels only if asked)."""
        H, W = foreground.shape
        n = n_per_side or self.settings.points_per_side
        pts = point_grid(n) * np.array([W, H], dtype=np.float32)
        if self.settings.restrict_to_foreground:
            on = foreground[pts[:, 1].astype(int), pts[:, 0].astype(int)]
            pts = pts[on]
        return pts

    @torch.no_grad()
    def decode(self, embedding: torch.Tensor, points: np.ndarray, reshaped: tuple[int, int],
               padded: tuple[int, int], out_hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """Decode point prompts on one image and apply SAM's per-mask filters.

        Args:
            embedding: (C, h, w) image embedding.
            points: (N, 2) (x, y) prompts in image pixels of an ``out_hw`` image.
            reshaped: (rh, rw) size of the image inside the network input.
            padded: (S, S) network input size.
            out_hw: (H, W) image size.

        Returns:
            masks (K, H, W) bool, predicted IoUs (K,), output index (K,) int8 (which of the
            prompt's three outputs) of the masks that pass the IoU and stability filters.
        """
        s = self.settings
        H, W = out_hw
        scale = torch.tensor([reshaped[1] / W, reshaped[0] / H], device=self.device)
        keep_masks, keep_scores, keep_outputs = [], [], []
        for sl in batches(len(points), s.points_per_batch):
            pts = torch.as_tensor(points[sl], device=self.device) * scale  # (P, 2) network coords
            out = self.model(
                image_embeddings=embedding[None],
                input_points=pts[None, :, None, :].to(self._model_dtype()),
                input_labels=torch.ones((1, len(pts), 1), dtype=torch.long, device=self.device),
                multimask_output=True,
            )
            low = out.pred_masks[0]  # (P, K, L, L)
            P, K = low.shape[:2]
            logits = resize_padded(low.reshape(P * K, 1, *low.shape[-2:]), reshaped, padded, out_hw)[:, 0]
            iou = out.iou_scores[0].reshape(P * K).float()
            ok, masks, _, _ = filter_outputs(logits, iou, s.pred_iou_thresh, s.stability_score_thresh,
                                             s.mask_threshold, s.stability_score_offset)
            keep_masks.append(masks[ok])
            keep_scores.append(iou[ok])
            keep_outputs.append(torch.arange(K, device=self.device).repeat(P)[ok].to(torch.int8))
        if not keep_masks:
            return (torch.zeros((0, H, W), dtype=torch.bool, device=self.device),
                    torch.zeros(0, device=self.device), torch.zeros(0, dtype=torch.int8, device=self.device))
        return torch.cat(keep_masks), torch.cat(keep_scores), torch.cat(keep_outputs)

    # ------------------------------------------------------------------ teacher API
    def masks(self, views: Views) -> list[MaskSet]:
        """One :class:`MaskSet` per view: (M, H, W) bool masks, predicted IoUs, output index."""
        s = self.settings
        V, H, W = views.rgb.shape[:3]
        fg_all = views.foreground
        jobs: list[tuple[int, tuple[int, int, int, int], tuple[int, int, int, int], int]] = []
        for v in range(V):
            if s.restrict_to_foreground and not fg_all[v].any():
                continue
            base = foreground_box(fg_all[v], s.crop_margin) if s.crop_to_foreground else (0, 0, W, H)
            if base is None:
                continue
            bw, bh = base[2] - base[0], base[3] - base[1]
            boxes, layers = crop_boxes(bh, bw, s.crop_n_layers, s.crop_overlap_ratio)
            for box, layer in zip(boxes, layers):
                crop = (base[0] + box[0], base[1] + box[1], base[0] + box[2], base[1] + box[3])
                jobs.append((v, crop, base, layer))
        found: dict[int, list] = {v: [] for v in range(V)}
        for sl in batches(len(jobs), self.batch_size):
            group = jobs[sl]
            images = [views.rgb[v, c[1]:c[3], c[0]:c[2]] for v, c, _, _ in group]
            emb, reshaped, padded = self.embed(images)
            for i, (v, crop, base, layer) in enumerate(group):
                found[v].append(self._one_crop(emb[i], reshaped[i], padded, crop, base, layer, fg_all[v], (H, W)))
        return [self._merge_view(found[v], fg_all[v], (H, W)) for v in range(V)]

    def _one_crop(self, emb, reshaped, padded, crop, base, layer, fg, hw):
        """Masks of one crop, filtered and suppressed, pasted into the full view."""
        s = self.settings
        x0, y0, x1, y1 = crop
        fg_crop = fg[y0:y1, x0:x1]
        n_side = max(1, s.points_per_side // (s.crop_n_points_downscale_factor ** layer))
        points = self.prompt_grid(fg_crop, n_side)
        if len(points) == 0:
            return None
        masks, scores, outputs = self.decode(emb, points, reshaped, padded, fg_crop.shape)
        keep = suppress(masks, scores, s.box_nms_thresh)
        masks, scores, outputs = masks[keep], scores[keep], outputs[keep]
        if crop != base and len(masks):
            local_base = (base[0] - x0, base[1] - y0, base[2] - x0, base[3] - y0)
            inner = ~near_crop_edge(masks_to_boxes(masks), (0, 0, x1 - x0, y1 - y0), local_base)
            masks, scores, outputs = masks[inner], scores[inner], outputs[inner]
        full = torch.zeros((len(masks), *hw), dtype=torch.bool, device=masks.device)
        full[:, y0:y1, x0:x1] = masks
        area = float((x1 - x0) * (y1 - y0))
        return full, scores, outputs, torch.full((len(masks),), 1.0 / area, device=masks.device)

    def _merge_view(self, parts: list, fg: np.ndarray, hw: tuple[int, int]) -> MaskSet:
        """NMS across crops, small-region clean-up, SAMPart3D's background filter, the cut to the object."""
        s = self.settings
        parts = [p for p in parts if p is not None and len(p[0])]
        if not parts:
            return MaskSet.empty(*hw)
        masks = torch.cat([p[0] for p in parts])
        scores = torch.cat([p[1] for p in parts])
        outputs = torch.cat([p[2] for p in parts])
        if len(parts) > 1:
            keep = suppress(masks, torch.cat([p[3] for p in parts]), s.crop_nms_thresh)
            masks, scores, outputs = masks[keep], scores[keep], outputs[keep]
        m = masks.cpu().numpy()
        if s.min_mask_region_area > 0 and len(m):
            cleaned = [remove_small_regions(x, s.min_mask_region_area) for x in m]
            m = np.stack([c[0] for c in cleaned])
            unchanged = torch.tensor([0.0 if c[1] else 1.0 for c in cleaned])
            keep = suppress(torch.as_tensor(m), unchanged, s.box_nms_thresh).numpy()
            m, scores, outputs = m[keep], scores.cpu()[keep], outputs.cpu()[keep]
        scores, outputs = scores.float().cpu().numpy(), outputs.cpu().numpy()
        if s.max_background_cover is not None and len(m):
            bg = ~fg
            cover = (m & bg).reshape(len(m), -1).sum(1) / max(int(bg.sum()), 1)
            ok = cover <= s.max_background_cover
            m, scores, outputs = m[ok], scores[ok], outputs[ok]
        m = m & fg
        ok = m.reshape(len(m), -1).any(1)
        m, scores, outputs = m[ok], scores[ok], outputs[ok]
        order = np.argsort(-scores, kind="stable")
        if s.max_masks is not None:
            order = order[: s.max_masks]
        return MaskSet(masks=m[order], scores=np.clip(scores[order], 0, 1).astype(np.float32),
                       level=outputs[order].astype(np.int8))
