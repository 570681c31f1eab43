"""DINOv2 feature teacher (``transformers.Dinov2Model``).

Each view is resized (aspect kept) so its longer side is about ``image_size`` pixels and
both sides are multiples of the patch size, normalised with the processor's mean/std
(ImageNet by default), and run through the ViT. The patch tokens of the last layer give a
(C, h, w) map per view (C = 384 for dinov2-small, h, w = input size / 14). The maps are
returned at that resolution together with an upsampler to render pixels:
``upsample="bilinear"`` or ``"jbu"`` (joint bilateral, guided by the RGB render).

Example:
    >>> teacher = Dinov2FeatureTeacher.from_pretrained()          # doctest: +SKIP
    >>> fm = teacher.features(views)                             # doctest: +SKIP
    >>> fm.features.shape, fm.pixel_features(0).shape            # doctest: +SKIP
    ((V, 384, 32, 32), torch.Size([384, H, W]))
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from crossdistill.errors import InputError
from crossdistill.teachers._hf import HFTeacher, batches
from crossdistill.teachers.base import FeatureMaps
from crossdistill.teachers.upsample import make_upsampler
from crossdistill.types import Views

__all__ = ["Dinov2FeatureTeacher"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Dinov2FeatureTeacher(HFTeacher):
    """Dense DINOv2 patch features, upsampled to pixels bilinearly or by JBU.

    Args:
        model: a ``Dinov2Model`` (or any model with ``config.patch_size`` whose
            ``last_hidden_state`` is prefix tokens followed by h*w patch tokens).
        processor: its image processor (only ``image_mean``/``image_std`` are used: the
            processor's resize/centre-crop would misalign features and pixels), or None.
        upsample: "jbu" (default) or "bilinear".
        image_size: target longer side of the network input, in pixels.
        output_dtype: numpy dtype of the stored features (float16 halves the memory).
        device, dtype, batch_size, name: see :class:`~crossdistill.teachers._hf.HFTeacher`.
    """

    backend = "dinov2"
    default_model_id = "facebook/dinov2-small"
    model_class = "Dinov2Model"
    processor_class = "AutoImageProcessor"

    def __init__(self, model, processor=None, *, upsample: str = "jbu", image_size: int = 448,
                 output_dtype: type = np.float16, device: str = "cpu", dtype=None, batch_size: int = 4,
                 name: str | None = None) -> None:
        super().__init__(model, processor, device=device, dtype=dtype, batch_size=batch_size, name=name)
        self.upsampler = make_upsampler(upsample)
        self.image_size = int(image_size)
        self.output_dtype = np.dtype(output_dtype)
        patch = model.config.patch_size
        self.patch_size = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
        ip = self.image_processor
        self.mean = tuple(getattr(ip, "image_mean", None) or _IMAGENET_MEAN)
        self.std = tuple(getattr(ip, "image_std", None) or _IMAGENET_STD)

    @property
    def teacher_id(self) -> str:
        return f"dinov2:{self.model_tag}:size={self.image_size}:up={self.upsampler.name}:{self.output_dtype.name}"

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) patch grid for an H x W view: longer side ~ image_size / patch_size."""
        scale = self.image_size / max(height, width)
        p = self.patch_size
        return max(1, round(height * scale / p)), max(1, round(width * scale / p))

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, h*p, w*p) normalised float on the teacher's device."""
        x = torch.as_tensor(rgb, device=self.device).permute(0, 3, 1, 2).float() / 255.0
        gh, gw = self.grid_size(*rgb.shape[1:3])
        x = F.interpolate(x, size=(gh * self.patch_size, gw * self.patch_size), mode="bilinear",
                          align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self._model_dtype())

    @torch.no_grad()
    def patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, h*p, w*p) -> (B, C, h, w) float32 patch-token features."""
        gh, gw = pixel_values.shape[-2] // self.patch_size, pixel_values.shape[-1] // self.patch_size
        tokens = self.model(pixel_values=pixel_values).last_hidden_state  # (B, prefix + h*w, C)
        n_prefix = tokens.shape[1] - gh * gw
        if n_prefix < 0:
            raise RuntimeError(f"model returned {tokens.shape[1]} tokens for a {gh}x{gw} patch grid")
        patches = tokens[:, n_prefix:].float()
        return patches.transpose(1, 2).reshape(len(patches), -1, gh, gw)

    def features(self, views: Views) -> FeatureMaps:
        """(V, C, h, w) features of every view plus the upsampler to (H, W)."""
        if len(views) == 0:
            raise InputError("no views to compute DINOv2 features of")
        H, W = views.rgb.shape[1:3]
        chunks = []
        for sl in batches(len(views), self.batch_size):
            feats = self.patch_features(self.preprocess(views.rgb[sl]))
            chunks.append(feats.cpu().numpy().astype(self.output_dtype))
        return FeatureMaps(
            features=np.concatenate(chunks, 0),
            image_size=(int(H), int(W)),
            upsampler=self.upsampler,
            guide=views.rgb if self.upsampler.needs_guide else None,
        )
