"""Settings of SAM's automatic mask generator (no torch import: the CLI builds its flags from them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["AutoMaskSettings", "SAMPART3D_SAM_SETTINGS"]


@dataclass(frozen=True)
class AutoMaskSettings:
    """Automatic-mask-generation settings; the first twelve are SAM's generator's, with its defaults.

    Attributes:
        points_per_side: the prompt grid is points_per_side x points_per_side per image (crop layer 0).
        points_per_batch: prompts decoded per mask-decoder call.
        pred_iou_thresh: minimum predicted IoU.
        stability_score_thresh: minimum stability score.
        stability_score_offset: logit offset of the stability score.
        mask_threshold: logit threshold of a mask.
        box_nms_thresh: box IoU above which the mask with the lower predicted IoU is dropped
            (over all masks of a crop, whichever prompt or output they come from).
        crop_n_layers: extra crop layers (0: the whole image only).
        crop_nms_thresh: box NMS between masks of different crops.
        crop_overlap_ratio: overlap of neighbouring crops, as a share of the image's short side
            (scaled by 2 / crops per side).
        crop_n_points_downscale_factor: the grid of layer i has points_per_side / factor^i points a side.
        min_mask_region_area: islands and holes below this many pixels are removed (0: off).
        restrict_to_foreground: prompt only points on the rendered object (ours: background
            prompts give background masks, which carry no supervision).
        crop_to_foreground: run SAM on the object's bounding box (+ crop_margin) instead of
            the whole view: more input pixels on small objects (ours).
        crop_margin: margin of that crop, as a fraction of the box size.
        max_background_cover: drop masks covering more than this share of the view's background
            pixels (SAMPart3D's released code: 0.1); None keeps them. Masks are then cut to the object.
        max_masks: keep at most this many masks per view (highest predicted IoU), None = all.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0
    restrict_to_foreground: bool = True
    crop_to_foreground: bool = False
    crop_margin: float = 0.1
    max_background_cover: float | None = None
    max_masks: int | None = None

    def short(self) -> str:
        d = asdict(self)
        return ",".join(f"{k}={v}" for k, v in d.items())


#: SAMPart3D's released call of SAM's generator (``pipeline("mask-generation", ...)`` with
#: these thresholds, masks covering > 10% of the background dropped).
SAMPART3D_SAM_SETTINGS = AutoMaskSettings(points_per_side=32, pred_iou_thresh=0.9, stability_score_thresh=0.9,
                                          max_background_cover=0.1)
