"""Object-centric crops: every instance of every image on one fixed grid, and back.

PartDistillation decodes the parts of one object instance at a time. Here each instance is
cut out of the teacher's feature map by its (padded) bounding box and resampled to an
``S x S`` grid, so instances of any size batch together and a CPU decodes them quickly.
Part masks predicted on the grid are pasted back into the image by :func:`paste_logits`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from crossdistill.teachers.base import InstanceSet

__all__ = ["InstanceCrop", "crop_instances", "paste_logits", "paste_partition", "box_of"]


@dataclass(frozen=True)
class InstanceCrop:
    """One object instance of one image on the decoder grid.

    Attributes:
        features: (C, S, S) float32 teacher features sampled over the box, averaged over the
            object's pixels only (bilinear, normalised by the object's share of each feature cell).
        mask: (S, S) bool object mask on the grid.
        box: (4,) int64 x0, y0, x1, y1 in image pixels (end exclusive).
        image_size: (H, W) of the image.
        image_index: index of the image in its collection.
        instance_index: index of the instance in its image's :class:`InstanceSet`.
        object_class: the object's class name ("" when unknown).
        score: the teacher's instance score.
    """

    features: np.ndarray
    mask: np.ndarray
    box: np.ndarray
    image_size: tuple[int, int]
    image_index: int
    instance_index: int
    object_class: str
    score: float

    @property
    def grid(self) -> int:
        return int(self.mask.shape[0])


def box_of(mask: np.ndarray, pad: float = 0.05) -> np.ndarray:
    """(4,) int64 x0, y0, x1, y1 (end exclusive) around a (H, W) bool mask, padded by ``pad`` of its size."""
    ys, xs = np.nonzero(mask)
    H, W = mask.shape
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    px, py = int(np.ceil(pad * (x1 - x0))), int(np.ceil(pad * (y1 - y0)))
    return np.array([max(0, x0 - px), max(0, y0 - py), min(W, x1 + px), min(H, y1 + py)], np.int64)


def _sample_grid(box: np.ndarray, size: tuple[int, int], grid: int) -> torch.Tensor:
    """(1, S, S, 2) normalised sampling grid (align_corners=False) of the box's S x S cell centres."""
    H, W = size
    x0, y0, x1, y1 = (float(b) for b in box)
    t = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
    xs = (x0 + t * (x1 - x0)) / W * 2 - 1
    ys = (y0 + t * (y1 - y0)) / H * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)[None]


def crop_instances(instance_sets: list[InstanceSet], image_size: tuple[int, int], grid: int = 48,
                   classes: list[str] | None = None, class_names: dict[int, str] | None = None,
                   min_pixels: int = 64) -> list[InstanceCrop]:
    """Every instance of every image as an :class:`InstanceCrop`.

    Args:
        instance_sets: one per image, features (C, h, w) covering the whole image.
        image_size: (H, W) of the images.
        grid: S.
        classes: one object class per image (e.g. its folder name), overriding the teacher's.
        class_names: teacher class id -> name, used when ``classes`` is None (else ``"class<id>"``).
        min_pixels: instances with fewer image pixels are skipped.

    Returns:
        The crops, in image then instance order.
    """
    out = []
    for i, inst in enumerate(instance_sets):
        feats = torch.as_tensor(np.asarray(inst.features, np.float32))[None]  # (1, C, h, w)
        for j in range(len(inst)):
            m = inst.masks[j]
            if m.sum() < min_pixels:
                continue
            box = box_of(m)
            g = _sample_grid(box, image_size, grid)
            mt = torch.as_tensor(m, dtype=torch.float32)[None, None]
            # the instance's share of every feature cell: features are averaged over the object only,
            # so cells on the silhouette do not mix in the background's features
            share = F.adaptive_avg_pool2d(mt, feats.shape[-2:])
            num = F.grid_sample(feats * share, g, mode="bilinear", align_corners=False)[0]
            den = F.grid_sample(share, g, mode="bilinear", align_corners=False)[0]
            f = (num / den.clamp_min(1e-6)).numpy()
            mk = F.grid_sample(mt, g, mode="bilinear", align_corners=False)[0, 0].numpy() >= 0.5
            if classes is not None:
                name = classes[i]
            else:
                cid = int(inst.classes[j])
                name = (class_names or {}).get(cid, f"class{cid}")
            out.append(InstanceCrop(f.astype(np.float32), mk, box, tuple(image_size), i, j, name,
                                    float(inst.scores[j])))
    return out


def paste_logits(logits: np.ndarray, box: np.ndarray, image_size: tuple[int, int],
                 object_mask: np.ndarray | None = None) -> np.ndarray:
    """(P, S, S) grid logits -> (P, H, W) float32 image logits (-inf outside the box / object).

    The logits are resized to the box bilinearly and placed in the image; with
    ``object_mask`` (H, W) bool, pixels outside the object are -inf too.
    """
    H, W = image_size
    x0, y0, x1, y1 = (int(b) for b in box)
    out = np.full((len(logits), H, W), -np.inf, np.float32)
    if len(logits) and x1 > x0 and y1 > y0:
        t = torch.as_tensor(np.asarray(logits, np.float32))[None]
        out[:, y0:y1, x0:x1] = F.interpolate(t, size=(y1 - y0, x1 - x0), mode="bilinear",
                                             align_corners=False)[0].numpy()
    if object_mask is not None:
        out[:, ~object_mask] = -np.inf
    return out


def paste_partition(labels: np.ndarray, box: np.ndarray, image_size: tuple[int, int],
                    object_mask: np.ndarray) -> np.ndarray:
    """(S, S) grid partition (-1 outside) -> (H, W) int64 image partition on ``object_mask`` (-1 elsewhere).

    Each label's indicator is resized bilinearly and every object pixel takes the label
    with the largest value, so boundaries are as smooth as those of pasted logits.
    """
    H, W = image_size
    ids = np.unique(labels[labels >= 0])
    out = np.full((H, W), -1, np.int64)
    if not len(ids):
        return out
    onehot = (labels[None] == ids[:, None, None]).astype(np.float32)
    pasted = paste_logits(onehot, box, image_size, object_mask)
    out[object_mask] = ids[pasted[:, object_mask].argmax(0)]
    return out
