"""Offline few-shot text teacher: a small 2D part segmenter trained on renders of a few labelled shapes.

The few-shot setting of PartSLIP / PartDistill: a handful of shapes of the category come
with per-face part labels. They are rendered from many random views, every pixel takes
the label of the face it sees, and a small U-Net (:class:`RenderUNet`) learns to map the
render buffers to part labels. It then answers :meth:`FewShotTextTeacher.predict` like
any :class:`~crossdistill.teachers.base.TextTeacher`: one pixel-level prediction per
connected region of a part in a view, with the mean probability as confidence.

Input channels per pixel (all from the renderer), chosen by ``FewShotConfig.inputs``:

* ``"world"`` (default): world position (3), world normal (3), colour in [-0.5, 0.5] (3),
  foreground (1). The net sees where each pixel lies on the object, so its predictions
  agree across views by construction: a 3D-aware teacher.
* ``"image"``: only what a 2D image model can read off one view: shaded colour (3), the
  normal in the camera's frame (3), depth relative to the view's median foreground depth
  (1), foreground (1). Predictions of different views are then independent, as those of
  GLIP or CLIPSeg fine-tuned on renders are (PartSLIP / PartDistill's few-shot teachers).

Shapes are expected in the unit box (``geometry.normalize_shape``), as everywhere in the
renderer.

Training uses random crops of the renders (a quarter of the pixels), so a CPU
trains it in about a minute; prediction runs on the full view (the net is fully
convolutional). Part names are matched case-insensitively against the names it was
trained on; asking for a name it does not know is an :class:`InputError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage
from tqdm.auto import tqdm

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.engine.training import TrainConfig, fit
from crossdistill.errors import InputError
from crossdistill.render.raycast import view_positions
from crossdistill.teachers.base import PartPredictions
from crossdistill.teachers.cache import hash_array
from crossdistill.types import Shape, Views

__all__ = ["FewShotConfig", "RenderUNet", "FewShotTextTeacher", "view_inputs", "pixel_labels", "masks_to_boxes"]

IN_CHANNELS = {"world": 10, "image": 8}
_FORMAT = "crossdistill-fewshot-teacher-v1"


@dataclass(frozen=True)
class FewShotConfig:
    """Training settings of the few-shot teacher.

    Attributes:
        views_per_shape: random training views rendered per labelled shape.
        size: render size (pixels) of training views; prediction views should use a
            similar pixel footprint.
        crop: side of the random training crops (pixels).
        iterations: optimiser steps.
        batch_size: crops per step.
        lr: AdamW learning rate (cosine decay).
        width: channels of the first U-Net stage (doubles per stage).
        min_pixels: smallest predicted region kept by :meth:`FewShotTextTeacher.predict`.
        seed: seeds rendering, crops and weights.
        output: what :meth:`FewShotTextTeacher.predict` returns: ``"mask"`` (pixel-level,
            like CLIPSeg) or ``"box"`` (the tight xyxy box of each region, box-level like
            GLIP / OWLv2; PartDistill's main setting). Not used in training.
        candidate_min: also return, per part, the regions where the part is *not* the
            argmax but its probability is at least this, scored by their mean probability
            (always below 0.5): the low-confidence candidates a detector also returns, which
            backward distillation may add when the student supports them. 0 disables.
        inputs: the per-pixel input channels, ``"world"`` (3D-aware) or ``"image"``
            (view-local, like a 2D image model); see the module docstring.
    """

    views_per_shape: int = 24
    size: int = 128
    crop: int = 64
    iterations: int = 500
    batch_size: int = 16
    lr: float = 3e-3
    width: int = 16
    min_pixels: int = 12
    seed: int = 0
    output: str = "mask"
    candidate_min: float = 0.0
    inputs: str = "world"

    def __post_init__(self) -> None:
        if self.inputs not in IN_CHANNELS:
            raise InputError(f"few-shot teacher inputs must be one of {sorted(IN_CHANNELS)}, got {self.inputs!r}")
        if self.output not in ("mask", "box"):
            raise InputError(f"few-shot teacher output must be 'mask' or 'box', got {self.output!r}")
        if not 0.0 <= self.candidate_min < 1.0:
            raise InputError(f"candidate_min must lie in [0, 1), got {self.candidate_min}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
    )


class RenderUNet(nn.Module):
    """Three-level U-Net: (B, in_channels, H, W) -> (B, n_classes, H, W) logits.

    H and W need not be multiples of 8 (decoder outputs are resized to the skip size).
    """

    def __init__(self, n_classes: int, width: int = 16, in_channels: int = IN_CHANNELS["world"]) -> None:
        super().__init__()
        w = int(width)
        self.enc = nn.ModuleList([_block(in_channels, w), _block(w, 2 * w), _block(2 * w, 4 * w)])
        self.mid = _block(4 * w, 4 * w)
        self.dec = nn.ModuleList([_block(8 * w, 2 * w), _block(4 * w, w), _block(2 * w, w)])
        self.head = nn.Conv2d(w, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, width, H, W): the input of the 1x1 classifier ``head``."""
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = F.max_pool2d(x, 2, ceil_mode=True)
        x = self.mid(x)
        for dec, skip in zip(self.dec, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], 1))
        return x


def view_inputs(views: Views, inputs: str = "world") -> np.ndarray:
    """(V, C, H, W) float32 network inputs of rendered views (zeros on background).

    C = ``IN_CHANNELS[inputs]``: 10 for ``"world"``, 8 for ``"image"`` (see the module docstring).
    """
    V, H, W = views.face_id.shape
    out = np.zeros((V, IN_CHANNELS[inputs], H, W), np.float32)
    for v in range(V):
        fg = views.face_id[v] >= 0
        colour = views.rgb[v].astype(np.float32) / 255.0 - 0.5
        if inputs == "world":
            geometry = [view_positions(views, v), views.normal[v].astype(np.float32)]
        else:
            rotation = views.cameras.world_to_cam[v, :3, :3].astype(np.float32)
            depth = views.depth[v].astype(np.float32)
            rel = depth - (np.median(depth[fg]) if fg.any() else 0.0)
            geometry = [views.normal[v].astype(np.float32) @ rotation.T, np.where(fg, rel, 0.0)[..., None]]
        chans = np.concatenate([*geometry, colour, fg[..., None].astype(np.float32)], -1)
        chans[~fg] = 0.0
        out[v] = chans.transpose(2, 0, 1)
    return out


def pixel_labels(views: Views, face_labels: np.ndarray) -> np.ndarray:
    """(V, H, W) int64 label of the face each pixel sees, -1 on background / unlabelled faces."""
    fid = views.face_id
    labels = np.asarray(face_labels, np.int64)
    return np.where(fid >= 0, labels[np.clip(fid, 0, None)], -1)


def _render_training_views(shape: Shape, n_views: int, size: int, seed: int) -> Views:
    from crossdistill.render.cameras import random_rig
    from crossdistill.render.renderer import render_shape

    return render_shape(shape, random_rig(n_views, size, seed=seed), progress=False, n_samples=64, seed=seed).views


class FewShotTextTeacher:
    """A :class:`~crossdistill.teachers.base.TextTeacher` learnt from a few labelled shapes.

    Build it with :meth:`fit` (or :meth:`load` a saved one).

    Args:
        model: a trained :class:`RenderUNet` with ``len(part_names)`` outputs.
        part_names: the names of its output classes, in order.
        config: the settings it was trained with.
        device: torch device for prediction.
    """

    is_offline_default = True
    #: PartDistill's negative-learning weight with this teacher when none is given (``crossdistill distill
    #: partdistill``): off, because with it the students scored lower on every category of the few-shot benchmark
    #: (docs/results/partdistill_notes.md item 20); detector-like teachers keep DistillConfig's default
    default_negative_weight = 0.0
    #: PartDistill's specificity weighting with this teacher when none is given: off (measured only with the
    #: detector-like teacher emulator's boxes, docs/results/partdistill_specificity.md)
    default_specificity = 0.0

    def __init__(self, model: RenderUNet, part_names: Sequence[str], config: FewShotConfig = FewShotConfig(),
                 device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.part_names = tuple(str(n) for n in part_names)
        self.config = config
        self.device = device
        self._id = hash_array(*[p.detach().cpu().numpy() for p in self.model.state_dict().values()],
                              digest_size=8)

    @property
    def teacher_id(self) -> str:
        cand = f":cand={self.config.candidate_min:g}" if self.config.candidate_min > 0 else ""
        inputs = f":inputs={self.config.inputs}" if self.config.inputs != "world" else ""
        return f"fewshot:{self._id}:min={self.config.min_pixels}:{self.config.output}{cand}{inputs}"

    # ------------------------------------------------------------------ training

    @classmethod
    def fit(cls, shapes: Sequence[Shape], face_labels: Sequence[np.ndarray], part_names: Sequence[str],
            config: FewShotConfig = FewShotConfig(), device: str = "cpu", progress: bool = True) -> "FewShotTextTeacher":
        """Train on unit-box ``shapes`` whose faces carry labels in [0, P) (-1 unlabelled).

        Args:
            shapes: S triangle meshes in the unit box.
            face_labels: S arrays (F_s,) int, index into ``part_names``, -1 for unknown.
            part_names: P names.
            config: training settings.
            device: torch device.
            progress: tqdm bars.
        """
        if len(shapes) == 0 or len(shapes) != len(face_labels):
            raise InputError(f"few-shot teacher needs labelled shapes: got {len(shapes)} shapes, "
                             f"{len(face_labels)} label arrays")
        P = len(part_names)
        if P < 1:
            raise InputError("few-shot teacher needs at least one part name")
        xs, ys = [], []
        for s, (shape, labels) in enumerate(tqdm(list(zip(shapes, face_labels)), desc="render labelled shapes",
                                                 disable=not progress)):
            if not shape.is_mesh:
                raise InputError(f"{shape.source or f'shape {s}'}: few-shot teacher needs labelled meshes")
            labels = np.asarray(labels)
            if labels.shape != (shape.n_faces,) or labels.max(initial=-1) >= P:
                raise InputError(f"{shape.source or f'shape {s}'}: face labels must be ({shape.n_faces},) ints < {P}")
            views = _render_training_views(shape, config.views_per_shape, config.size, config.seed + 7919 * s)
            xs.append(view_inputs(views, config.inputs))
            ys.append(pixel_labels(views, labels))
        x = torch.from_numpy(np.concatenate(xs))
        y = torch.from_numpy(np.concatenate(ys))
        if not bool((y >= 0).any()):
            raise InputError("few-shot teacher: no labelled pixel in any training view")
        torch.manual_seed(config.seed)
        model = RenderUNet(P, config.width, IN_CHANNELS[config.inputs]).to(device)
        _train(model, x, y, config, device, progress)
        return cls(model, part_names, config, device)

    # ------------------------------------------------------------------ inference

    def _indices(self, part_names: Sequence[str]) -> list[int]:
        known = {n.lower(): i for i, n in enumerate(self.part_names)}
        missing = [n for n in part_names if n.lower() not in known]
        if missing:
            raise InputError(f"few-shot teacher was trained on {list(self.part_names)}; unknown part names {missing}")
        return [known[n.lower()] for n in part_names]

    @torch.no_grad()
    def probabilities(self, views: Views, batch_size: int = 8) -> np.ndarray:
        """(V, P, H, W) float32 softmax over the trained parts (zeros on background)."""
        x = view_inputs(views, self.config.inputs)
        out = np.zeros((len(views), len(self.part_names), *x.shape[2:]), np.float32)
        for i in range(0, len(views), batch_size):
            logits = self.model(torch.from_numpy(x[i : i + batch_size]).to(self.device))
            out[i : i + batch_size] = torch.softmax(logits.float(), 1).cpu().numpy()
        out *= (views.face_id >= 0)[:, None]
        return out

    def predict(self, views: Views, part_names: Sequence[str]) -> list[PartPredictions]:
        """One prediction per connected region of each requested part's argmax in each view.

        Score: the region's mean probability. With ``config.candidate_min`` > 0, also the
        regions where a part is not the argmax but at least that probable (its candidates).
        ``config.output == "box"`` returns each region's tight box (xyxy, pixel edges)
        instead of its mask.
        """
        idx = self._indices(part_names)
        probs = self.probabilities(views)[:, idx]  # (V, P', H, W), only the requested parts compete
        fg = views.face_id >= 0
        arg = probs.argmax(1)
        result = []
        for v in range(len(views)):
            labels, scores, masks = [], [], []
            for p in range(len(idx)):
                areas = [(arg[v] == p) & fg[v]]
                if self.config.candidate_min > 0:
                    areas.append((arg[v] != p) & fg[v] & (probs[v, p] >= self.config.candidate_min))
                for area in areas:
                    for mask, score in self._regions(area, probs[v, p]):
                        labels.append(p)
                        scores.append(score)
                        masks.append(mask)
            H, W = fg.shape[1:]
            stacked = np.stack(masks) if masks else np.zeros((0, H, W), bool)
            boxes = None
            if self.config.output == "box":
                boxes, stacked = masks_to_boxes(stacked), None
            result.append(PartPredictions(
                labels=np.asarray(labels, np.int64), scores=np.asarray(scores, np.float32),
                boxes=boxes, masks=stacked, part_names=tuple(part_names)))
        return result

    def _regions(self, area: np.ndarray, prob: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Connected regions of a (H, W) bool area of at least ``min_pixels``, with their mean ``prob``."""
        regions, n = ndimage.label(area)
        if n == 0:
            return []
        sizes = np.bincount(regions.ravel(), minlength=n + 1)
        sums = np.bincount(regions.ravel(), weights=prob.ravel(), minlength=n + 1)
        return [(regions == r, float(sums[r] / sizes[r])) for r in range(1, n + 1)
                if sizes[r] >= self.config.min_pixels]

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write weights, part names and config to ``path`` (atomic)."""
        return save_checkpoint(path, _FORMAT, {"part_names": list(self.part_names), "config": asdict(self.config),
                                               "state_dict": {k: v.cpu() for k, v in self.model.state_dict().items()}})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "FewShotTextTeacher":
        """Read a teacher written by :meth:`save`; InputError if it is not one."""

        def build(blob: dict) -> "FewShotTextTeacher":
            config = FewShotConfig(**blob["config"])
            model = RenderUNet(len(blob["part_names"]), config.width, IN_CHANNELS[config.inputs])
            model.load_state_dict(blob["state_dict"])
            return cls(model, blob["part_names"], config, device)

        return load_checkpoint(path, _FORMAT, "few-shot teacher", build)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(P, 4) float32 xyxy boxes (pixel edges: x1 = last column + 1) of (P, H, W) non-empty bool masks."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return boxes


def inverse_sqrt_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """(K,) cross-entropy class weights 1 / sqrt(count), mean 1 over present classes, 0 for absent ones."""
    counts = counts.float()
    weight = torch.where(counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts))
    return weight / weight[counts > 0].mean()


def segmentation_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """Weighted cross-entropy on the labelled pixels (-1 ignored) of a batch; None if none is labelled."""
    if not bool((yb >= 0).any()):
        return None
    return F.cross_entropy(model(xb), yb, weight=weight, ignore_index=-1)


def segmentation_step(model: nn.Module, opt, sched, xb: torch.Tensor, yb: torch.Tensor, weight: torch.Tensor) -> None:
    """One optimizer step of :func:`segmentation_loss` on a batch; skipped if no pixel is labelled."""
    loss = segmentation_loss(model, xb, yb, weight)
    if loss is None:
        return
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def random_crops(x: torch.Tensor, y: torch.Tensor, views: torch.Tensor, crop: int, n: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ``crop`` x ``crop`` windows of views drawn from ``views``.

    Args:
        x: (V, C, H, W) inputs; y: (V, ..., H, W) labels; views: (K,) indices to draw from.

    Returns:
        (n, C, crop, crop) inputs and (n, ..., crop, crop) labels, on x's and y's device.
    """
    H, W = x.shape[-2:]
    img = views[torch.randint(len(views), (n,), generator=gen)]
    oy = torch.randint(H - crop + 1, (n,), generator=gen)
    ox = torch.randint(W - crop + 1, (n,), generator=gen)
    xb = torch.stack([x[i, :, a : a + crop, b : b + crop] for i, a, b in zip(img, oy, ox)])
    yb = torch.stack([y[i, ..., a : a + crop, b : b + crop] for i, a, b in zip(img, oy, ox)])
    return xb, yb


def _train(model: RenderUNet, x: torch.Tensor, y: torch.Tensor, config: FewShotConfig, device: str,
           progress: bool) -> None:
    """Cross-entropy on labelled pixels of random crops; class-balanced by inverse sqrt frequency."""
    gen = torch.Generator().manual_seed(config.seed)
    weight = inverse_sqrt_class_weights(torch.bincount(y[y >= 0], minlength=model.head.out_channels)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.iterations)
    n, _, H, W = x.shape
    c = min(config.crop, H, W)
    # crops come from views that see at least one labelled pixel
    has = (y >= 0).flatten(1).any(1).nonzero().flatten()

    def step(net: nn.Module, _batch: None, _it: int) -> torch.Tensor | None:
        xb, yb = random_crops(x, y, has, c, config.batch_size, gen)
        return segmentation_loss(net, xb.to(device), yb.to(device), weight)

    fit(model, opt, step, TrainConfig(steps=config.iterations, device=str(device), progress=progress,
                                      desc="train few-shot teacher", distributed=False),
        scheduler=sched, rngs={"crops": gen})
    model.eval()
