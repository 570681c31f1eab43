"""A class-agnostic part-mask teacher learnt from shapes with part labels: a stand-in for SAM.

SAMPart3D needs multi-granularity 2D masks that know parts; SAM supplies them after training
on a billion human-drawn masks. Where its weights are absent, a user with a few shapes whose
faces (or points) carry part labels at a coarse and a fine level (PartNet's articulated links
and leaves, say) can train this small teacher instead. It never sees part *names*: only
which pixels belong together, so it stays class-agnostic like SAM.

What it learns: a per-pixel embedding per granularity level (coarse, fine), trained with the
discriminative loss of De Brabandere et al. (2017): pixels of one part are pulled within
``delta_var`` of their part's mean embedding, the means of different parts in a crop are
pushed ``2 * delta_dist`` apart. Inputs are view-local, as an image model's are (shaded
colour, the normal in the camera's frame, relative depth, foreground; see
:func:`~crossdistill.teachers.fewshot.view_inputs` with ``inputs="image"``), so its
answers for different views are independent, as SAM's are.

What it answers (:meth:`LearnedMaskTeacher.masks`): per view a :class:`MaskSet` with the
connected foreground regions at level 0 (whole), the coarse parts at level 1 and the fine
parts at level 2. Parts are read off the embeddings by greedy mean-shift seeds (every pixel
within ``delta_dist`` of a seed's mean joins it), split into connected regions. Views are
processed at the training resolution and the masks brought back to the view's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm.auto import tqdm

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.engine.training import TrainConfig, fit
from crossdistill.errors import InputError
from crossdistill.teachers.base import MaskSet
from crossdistill.teachers.cache import hash_array
from crossdistill.teachers.fewshot import IN_CHANNELS, RenderUNet, pixel_labels, random_crops, view_inputs
from crossdistill.types import Shape, Views

__all__ = ["LearnedMaskConfig", "LearnedMaskTeacher", "discriminative_loss", "greedy_clusters"]

_FORMAT = "crossdistill-learned-mask-teacher-v1"
_INPUTS = "image"


@dataclass(frozen=True)
class LearnedMaskConfig:
    """Training and read-out settings.

    Attributes:
        levels: granularity levels learnt, coarse first (one embedding head each).
        dim: embedding channels per level.
        views_per_shape: random training views rendered per labelled shape.
        size: render size of training views; prediction runs at this size too.
        crop: side of the random training crops (pixels).
        iterations, batch_size, lr, width: optimiser steps, crops per step, AdamW rate, U-Net width.
        delta_var, delta_dist: pull and push margins of the discriminative loss.
        min_pixels: smallest mask returned, in pixels at ``size``.
        seed: seeds rendering, crops and weights.
    """

    levels: tuple[str, ...] = ("coarse", "fine")
    dim: int = 8
    views_per_shape: int = 32
    size: int = 128
    crop: int = 64
    iterations: int = 2000
    batch_size: int = 8
    lr: float = 3e-3
    width: int = 16
    delta_var: float = 0.5
    delta_dist: float = 1.5
    min_pixels: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.levels:
            raise InputError("LearnedMaskConfig.levels must name at least one level")
        if self.dim < 1 or self.size < 8 or self.crop < 8 or self.iterations < 1:
            raise InputError("LearnedMaskConfig: dim >= 1, size >= 8, crop >= 8 and iterations >= 1 are needed")
        if not 0 < self.delta_var < self.delta_dist:
            raise InputError("LearnedMaskConfig: 0 < delta_var < delta_dist is needed")


def discriminative_loss(emb: torch.Tensor, labels: torch.Tensor, delta_var: float, delta_dist: float,
                        reg: float = 1e-3) -> torch.Tensor:
    """Pull / push / regularisation loss of one crop's embedding (De Brabandere et al. 2017).

    Args:
        emb: (D, P) embeddings of P pixels.
        labels: (P,) int part id per pixel, -1 = ignored.
        delta_var: a pixel closer than this to its part's mean costs nothing.
        delta_dist: two part means farther apart than ``2 * delta_dist`` cost nothing.

    Returns:
        scalar: mean over parts of the hinge^2 pull, plus the mean over part pairs of the hinge^2
        push, plus ``reg`` times the mean norm of the part means. 0 when no pixel is labelled.
    """
    keep = labels >= 0
    if not bool(keep.any()):
        return emb.sum() * 0.0
    e, lab = emb[:, keep], labels[keep]
    ids, inv = torch.unique(lab, return_inverse=True)
    k = len(ids)
    sums = torch.zeros(emb.shape[0], k, dtype=emb.dtype, device=emb.device).index_add_(1, inv, e)
    counts = torch.bincount(inv, minlength=k).to(emb.dtype)
    means = sums / counts                                                # (D, K)
    dist = (e - means[:, inv]).norm(dim=0)                               # (P',)
    pull_px = F.relu(dist - delta_var) ** 2
    pull = (torch.zeros(k, dtype=emb.dtype, device=emb.device).index_add_(0, inv, pull_px) / counts).mean()
    push = emb.sum() * 0.0
    if k > 1:
        gap = torch.cdist(means.T, means.T)                              # (K, K)
        off = ~torch.eye(k, dtype=torch.bool, device=emb.device)
        push = (F.relu(2 * delta_dist - gap[off]) ** 2).mean()
    return pull + push + reg * means.norm(dim=0).mean()


def greedy_clusters(emb: np.ndarray, radius: float, min_size: int = 1, max_clusters: int = 64,
                    shift_steps: int = 3) -> np.ndarray:
    """Cluster embeddings by greedy mean-shift seeds.

    The most central unassigned point (closest to the unassigned mean) seeds a cluster; its
    centre moves ``shift_steps`` times to the mean of the unassigned points within
    ``radius``; all of those join. Repeats until every point is assigned.

    Args:
        emb: (P, D) embeddings.
        radius: join distance (the discriminative loss's ``delta_dist``).
        min_size: clusters smaller than this are left at -1.
        max_clusters: after this many, the rest joins its nearest cluster.

    Returns:
        (P,) int64 cluster id per point, -1 for dropped small clusters.
    """
    P = len(emb)
    out = np.full(P, -1, np.int64)
    free = np.ones(P, bool)
    centres: list[np.ndarray] = []
    while free.any() and len(centres) < max_clusters:
        pool = np.flatnonzero(free)
        sub = emb[pool]
        c = sub[np.argmin(((sub - sub.mean(0)) ** 2).sum(1))]
        for _ in range(shift_steps):
            near = ((sub - c) ** 2).sum(1) <= radius**2
            c = sub[near].mean(0)
        near = ((sub - c) ** 2).sum(1) <= radius**2
        if not near.any():  # the shifted centre drifted off every point: take the seed's own neighbourhood
            near = np.zeros(len(pool), bool)
            near[np.argmin(((sub - c) ** 2).sum(1))] = True
        out[pool[near]] = len(centres)
        free[pool[near]] = False
        centres.append(c)
    if free.any() and centres:
        d = ((emb[free][:, None, :] - np.stack(centres)[None]) ** 2).sum(-1)
        out[free] = d.argmin(1)
    sizes = np.bincount(out[out >= 0], minlength=len(centres))
    out[(out >= 0) & (sizes[np.clip(out, 0, None)] < min_size)] = -1
    return out


def _render_views(shape: Shape, n_views: int, size: int, seed: int) -> Views:
    from crossdistill.render.cameras import random_rig
    from crossdistill.render.renderer import render_shape

    return render_shape(shape, random_rig(n_views, size, seed=seed), progress=False, n_samples=64, seed=seed).views


@dataclass
class LearnedMaskTeacher:
    """Class-agnostic multi-granularity masks from a U-Net trained on labelled shapes.

    Attributes:
        model: :class:`RenderUNet` with ``dim * len(levels)`` output channels.
        config: its settings.
        device: where it runs.
    """

    model: RenderUNet
    config: LearnedMaskConfig = LearnedMaskConfig()
    device: str = "cpu"
    is_offline_default: bool = field(default=False, init=False)
    #: level masks like the offline teacher's; measured with its rules (segment_learned.md)
    mask_kind: str = field(default="render-cues", init=False)

    def __post_init__(self) -> None:
        self.model = self.model.to(self.device).eval()

    @property
    def teacher_id(self) -> str:
        state = torch.cat([p.detach().flatten().cpu() for p in self.model.parameters()]).numpy()
        return f"learned-masks:{hash_array(state)[:10]}"

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, shapes: Sequence[Shape], labels: Sequence[Sequence[np.ndarray]],
            config: LearnedMaskConfig = LearnedMaskConfig(), device: str = "cpu",
            progress: bool = True) -> "LearnedMaskTeacher":
        """Train on shapes in the unit box and their part labels.

        Args:
            shapes: S meshes (labels per face) or point clouds (labels per point), unit box.
            labels: per shape, one (F,) or (N,) int array per level of ``config.levels``
                (part ids; -1 = unlabelled, ignored).
        """
        if len(shapes) == 0 or len(shapes) != len(labels):
            raise InputError(f"need labelled shapes: {len(shapes)} shapes, {len(labels)} label sets")
        L = len(config.levels)
        xs, ys = [], []
        for s, (shape, lab) in enumerate(tqdm(list(zip(shapes, labels)), desc="render labelled shapes",
                                              disable=not progress)):
            if len(lab) != L:
                raise InputError(f"shape {s}: {len(lab)} label levels, expected {L} ({', '.join(config.levels)})")
            views = _render_views(shape, config.views_per_shape, config.size, config.seed + s)
            xs.append(view_inputs(views, _INPUTS))
            ys.append(np.stack([pixel_labels(views, lv) for lv in lab], 1))  # (V, L, H, W)
        x = torch.from_numpy(np.concatenate(xs))
        y = torch.from_numpy(np.concatenate(ys))
        torch.manual_seed(config.seed)
        model = RenderUNet(config.dim * L, config.width, IN_CHANNELS[_INPUTS]).to(device)
        _train(model, x, y, config, device, progress)
        return cls(model, config, device)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def embeddings(self, views: Views, batch_size: int = 8) -> np.ndarray:
        """(V, L, dim, s, s) float32 embeddings at the training size ``s`` (views resized to it)."""
        x = torch.from_numpy(view_inputs(views, _INPUTS))
        s = self.config.size
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(self.device)
            if xb.shape[-2:] != (s, s):
                xb = F.interpolate(xb, size=(s, s), mode="nearest")
            out.append(self.model(xb).float().cpu())
        e = torch.cat(out) if out else torch.zeros(0, self.model.head.out_channels, s, s)
        return e.reshape(len(e), len(self.config.levels), self.config.dim, s, s).numpy()

    def masks(self, views: Views) -> list[MaskSet]:
        """One :class:`MaskSet` per view: foreground regions (level 0), then each learnt level (1, 2, ...)."""
        H, W = views.face_id.shape[1:]
        s = self.config.size
        emb = self.embeddings(views)
        out = []
        for v in range(len(views)):
            fg_full = views.face_id[v] >= 0
            fg = _resize_nearest(fg_full, s, s)
            masks: list[np.ndarray] = []
            levels: list[int] = []
            regions = [fg_full]  # level 0 at the view's own size, so that it covers every object pixel
            for li in range(len(self.config.levels)):
                px = np.flatnonzero(fg.reshape(-1))
                lab_small = np.full(s * s, -1, np.int64)
                if len(px):
                    e = emb[v, li].reshape(self.config.dim, -1)[:, px].T
                    lab_small[px] = greedy_clusters(e, self.config.delta_dist, self.config.min_pixels)
                regions.append(lab_small.reshape(s, s))
            for level, region in enumerate(regions):
                ids = [None] if level == 0 else np.unique(region[region >= 0])
                for i in ids:
                    m = region if level == 0 else region == i
                    comp, n = ndimage.label(m)
                    for c in range(1, n + 1):
                        piece = comp == c
                        if piece.sum() < self.config.min_pixels:
                            continue
                        full = piece if level == 0 else _resize_nearest(piece, H, W) & fg_full
                        if full.any():
                            masks.append(full)
                            levels.append(level)
            if masks:
                arr = np.stack(masks)
                out.append(MaskSet(arr, np.ones(len(arr), np.float32), np.asarray(levels, np.int8)))
            else:
                out.append(MaskSet.empty(H, W))
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write weights and config to ``path`` (atomic)."""
        cfg = asdict(self.config) | {"levels": list(self.config.levels)}
        return save_checkpoint(path, _FORMAT, {"config": cfg,
                                               "state_dict": {k: v.cpu() for k, v in self.model.state_dict().items()}})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "LearnedMaskTeacher":
        """Read a teacher written by :meth:`save`; InputError if it is not one."""

        def build(blob: dict) -> "LearnedMaskTeacher":
            config = LearnedMaskConfig(**(blob["config"] | {"levels": tuple(blob["config"]["levels"])}))
            model = RenderUNet(config.dim * len(config.levels), config.width, IN_CHANNELS[_INPUTS])
            model.load_state_dict(blob["state_dict"])
            return cls(model, config, device)

        return load_checkpoint(path, _FORMAT, "learned mask teacher", build)


def _resize_nearest(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W) bool -> (h, w) bool by nearest-neighbour sampling."""
    H, W = mask.shape
    if (H, W) == (h, w):
        return mask
    rows = np.minimum((np.arange(h) + 0.5) * H / h, H - 1).astype(np.int64)
    cols = np.minimum((np.arange(w) + 0.5) * W / w, W - 1).astype(np.int64)
    return mask[rows][:, cols]


def _train(model: RenderUNet, x: torch.Tensor, y: torch.Tensor, config: LearnedMaskConfig, device: str,
           progress: bool) -> None:
    """Discriminative loss per level on random crops of views that see labelled pixels."""
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.iterations)
    n, _, H, W = x.shape
    L, D = y.shape[1], config.dim
    c = min(config.crop, H, W)
    has = (y >= 0).flatten(1).any(1).nonzero().flatten()
    if len(has) == 0:
        raise InputError("no training view sees a labelled face or point")

    def step(net: torch.nn.Module, _batch: None, _it: int) -> torch.Tensor:
        xb, yb = random_crops(x, y, has, c, config.batch_size, gen)
        xb, yb = xb.to(device), yb.to(device)
        emb = net(xb).reshape(len(xb), L, D, -1)
        lab = yb.reshape(len(xb), L, -1)
        return sum(discriminative_loss(emb[b, li], lab[b, li], config.delta_var, config.delta_dist)
                   for b in range(len(xb)) for li in range(L)) / (len(xb) * L)

    fit(model, opt, step, TrainConfig(steps=config.iterations, device=str(device), progress=progress,
                                      desc="train mask teacher", distributed=False),
        scheduler=sched, rngs={"crops": gen})
    model.eval()
