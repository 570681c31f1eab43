"""Per-object training of the scale-conditioned grouping field (SAMPart3D stage 2).

Each iteration samples ``images_per_iter`` views and ``pixels_per_image`` supervised
pixels in each (paper: 90 images x 256 pixels) and minimises the pairwise loss of
:func:`.grouping.pairwise_grouping_loss` on the pixel pairs of each image. Every pixel
belongs to all the masks that contain it (:mod:`.supervision`); which one groups it is
decided by one of two pair samplers (``GroupingTrainConfig.pair_sampling``):

* ``"released"`` -- SAMPart3D's released code (after GARField): per image one random
  number picks, for every pixel, one of its masks through a cumulative distribution over
  the pixel's masks (finest first) that favours small masks (weights proportional to the
  log of each mask's share of the image); the pixel's scale input is drawn between the
  scale sigma of that mask and of the next finer mask of the pixel (from 0 for its finest
  mask), so every pixel of an image has its own scale.
* ``"shared_scale"`` -- one scale s per image (uniform in the quantile space of the
  object's mask scales); a pixel's group at s is its finest mask whose sigma is at least
  s, and every pixel of the image is fed the same s. Two pixels are then only ever
  compared at one scale, so the field cannot separate masks through their scale input
  alone. Which sampler a preset uses is chosen on measurements
  (``docs/results/segment_emulated.md``).

The hierarchy term pulls same-group pairs together again at a random larger scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crossdistill.engine.training import TrainConfig, fit
from crossdistill.methods.sampart3d.grouping import GroupingField, fourier_features, pairwise_grouping_loss
from crossdistill.methods.sampart3d.scale import ScaleQuantiles
from crossdistill.methods.sampart3d.supervision import MaskSupervision


PAIR_SAMPLERS = ("released", "shared_scale")


@dataclass(frozen=True)
class GroupingTrainConfig:
    """Training settings (paper values in brackets).

    Attributes:
        iterations: optimisation steps [5000].
        pair_sampling: "released" (per-pixel mask and scale, the released code) or
            "shared_scale" (one scale per image); see the module docstring.
        images_per_iter: views per step [90].
        pixels_per_image: pixels per view [256].
        lr: peak AdamW learning rate [1e-4 with 5000 steps; higher for our short schedule].
        width: hidden width of both MLPs [384].
        out_dim: feature size [384].
        backbone_layers: hidden layers of F_B [6].
        low_layers: hidden layers of F_P [4].
        margin: push margin m of Eq. 5 [1.0].
        hierarchy: also pull same-mask pairs together at a random larger scale [on].
        fourier_freqs: frequencies of the positional encoding used when no backbone is given.
        long_skip: keep the F_P branch over low-level inputs [on; off is the paper's ablation].
        equal_terms: weight the pull and push terms of Eq. 5 equally instead of by their share
            of the pairs [off, as the released code] (ours; see segment_emulated.md).
        push_floor: the push term of Eq. 5 never weighs less than the pull term [off, as the
            released code]: with pair-share weights a small part's few pushes lose against a
            large part's pulls and the field collapses (docs/results/segment_notes.md).
        group_balance: exponent a of group-balanced pixel drawing (``shared_scale`` only): a
            view's pixels are drawn with probability proportional to n^-a, n the pixel count of
            their group at the step's scale [0: uniform, as the paper]; 1 gives every group the
            same share of the pixels, so a small part's mask is supervised as often as a large one.
    """

    iterations: int = 400
    images_per_iter: int = 16
    pixels_per_image: int = 128
    lr: float = 2e-3
    width: int = 128
    out_dim: int = 32
    backbone_layers: int = 6
    low_layers: int = 4
    margin: float = 1.0
    hierarchy: bool = True
    fourier_freqs: int = 6
    pair_sampling: str = "shared_scale"
    long_skip: bool = True
    equal_terms: bool = False
    push_floor: bool = False
    group_balance: float = 0.0

    def __post_init__(self) -> None:
        if self.pair_sampling not in PAIR_SAMPLERS:
            raise ValueError(f"pair_sampling must be one of {PAIR_SAMPLERS}, got {self.pair_sampling!r}")
        if not 0.0 <= self.group_balance <= 1.0:
            raise ValueError(f"group_balance must lie in [0, 1], got {self.group_balance}")


@dataclass
class TrainedField:
    """A trained field with everything needed to query it.

    Attributes:
        field: the grouping MLPs (eval mode).
        backbone_feat: (N, Cb) float32 inputs of F_B for every sampled point.
        low_feat: (N, 9) float32 inputs of F_P.
        quantiles: the scale transform fitted on the object's masks.
        losses: (iterations,) training loss curve.
    """

    field: GroupingField
    backbone_feat: torch.Tensor
    low_feat: torch.Tensor
    quantiles: ScaleQuantiles
    losses: np.ndarray

    def scale_input(self, scale: float, unit: str = "relative") -> float:
        """Network scale input q in [0, 1] for a user scale.

        ``unit="sigma"``: ``scale`` is a raw mask scale sigma (paper Eq. 3), mapped through
        the object's quantile transform. ``unit="relative"``: ``scale`` in [0, 2] spans the
        object's own mask scales, q = scale / 2 (0 = its finest masks, 2 = its coarsest).
        """
        if unit == "sigma":
            return float(self.quantiles(np.array([scale]))[0])
        if unit == "relative":
            return float(np.clip(scale / 2.0, 0.0, 1.0))
        raise ValueError(f"unknown scale unit {unit!r} (relative or sigma)")

    def raw_scale(self, scale: float, unit: str = "relative") -> float:
        """The mask scale sigma a user scale stands for (the inverse of :meth:`scale_input`)."""
        if unit == "sigma":
            return float(scale)
        return self.quantiles.inverse(self.scale_input(scale, unit))

    @torch.no_grad()
    def features(self, scale: float, unit: str = "relative", chunk: int = 32768) -> np.ndarray:
        """(N, out_dim) float32 grouping features of every sampled point at one scale (see :meth:`scale_input`)."""
        n = self.low_feat.shape[0]
        s = torch.full((n, 1), self.scale_input(scale, unit), device=self.low_feat.device)
        out = [self.field(self.backbone_feat[i:i + chunk], self.low_feat[i:i + chunk], s[i:i + chunk])
               for i in range(0, n, chunk)]
        return torch.cat(out).float().cpu().numpy()


def point_inputs(points: np.ndarray, normals: np.ndarray, colors: np.ndarray,
                 backbone_feat: np.ndarray | None, fourier_freqs: int,
                 device: str | torch.device = "cpu", piece_code: np.ndarray | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of the two branches.

    Args:
        points: (N, 3) coordinates in the unit box.
        normals: (N, 3) unit normals.
        colors: (N, 3) uint8 colours.
        backbone_feat: (N, Cb) features of a pretrained point backbone, or None.
        piece_code: optional (N, Cp) code of the mesh piece each point lies on (appended to
            the F_B input; lets the field tell welded-apart pieces from neighbours).

    Returns:
        backbone input (N, Cb) (Fourier encoding + normal + colour when no backbone), low-level input (N, 9).
    """
    xyz = torch.as_tensor(np.asarray(points, dtype=np.float32) * 2.0, device=device)  # unit box -> [-1, 1]
    nrm = torch.as_tensor(np.asarray(normals, dtype=np.float32), device=device)
    col = torch.as_tensor(np.asarray(colors, dtype=np.float32) / 255.0, device=device)
    low = torch.cat([xyz, nrm, col], dim=1)
    if backbone_feat is None:
        bb = torch.cat([fourier_features(xyz, fourier_freqs), nrm, col], dim=1)
    else:
        bb = torch.as_tensor(np.asarray(backbone_feat, dtype=np.float32), device=device)
    if piece_code is not None:
        bb = torch.cat([bb, torch.as_tensor(np.asarray(piece_code, dtype=np.float32), device=device)], dim=1)
    return bb, low


def piece_codes(piece: np.ndarray, dim: int = 8, seed: int = 0) -> np.ndarray:
    """(N, dim) float32 random unit code per piece id, the same for all points of a piece.

    Args:
        piece: (N,) int piece id of each point.
    """
    n = int(piece.max()) + 1 if len(piece) else 0
    codes = np.random.default_rng(seed).normal(size=(n, dim))
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    return codes[piece].astype(np.float32)


def groups_at_scale(masks: np.ndarray, scales: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Group of every pixel at scale ``s``: its finest mask whose scale is >= s.

    Args:
        masks: (K, P) mask ids per slot (-1 none); scales: (K, P) that mask's sigma (inf none); s: the scale.

    Returns:
        group (P,) int32 mask id (-1 where no mask reaches s), valid (P,) bool.
    """
    s = _reach(s)
    cand = np.where(scales >= s, scales, np.inf)
    lvl = cand.argmin(axis=0)
    cols = np.arange(masks.shape[1])
    valid = np.isfinite(cand[lvl, cols])
    return np.where(valid, masks[lvl, cols], -1).astype(np.int32), valid


def _reach(s: float) -> float:
    """The smallest sigma that counts as reaching scale ``s``: a mask whose sigma equals a
    quantile knot (read back through float arithmetic) still reaches it."""
    return s - 1e-9 * max(abs(s), 1.0)


def released_groups(masks: np.ndarray, scales: np.ndarray, log_share: np.ndarray, u_mask: float,
                    u_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel group and scale as SAMPart3D's released code draws them.

    Args:
        masks: (K, P) the masks containing each pixel, finest first (-1 padded).
        scales: (K, P) their sigma (anything where padded).
        log_share: (K, P) log of each mask's share of the image's mask pixels (0 where padded).
        u_mask: the image's draw in [0, 1) choosing each pixel's mask through its cumulative
            distribution (weights log_share / sum(log_share): small masks are likelier).
        u_scale: the image's draw in [0, 1) placing the scale between the chosen mask's sigma
            and the sigma of the pixel's next finer mask (0 for its finest mask).

    Returns:
        group (P,) int32 chosen mask id, scale (P,) float64 raw sigma fed with it.
    """
    valid = masks >= 0
    n = valid.sum(axis=0)
    total = log_share.sum(axis=0)
    w = np.divide(log_share, total, out=np.zeros_like(log_share), where=total < 0)
    cdf = np.where(valid, np.cumsum(w, axis=0), np.inf)
    idx = np.minimum((u_mask > cdf).sum(axis=0), np.maximum(n - 1, 0))
    cols = np.arange(masks.shape[1])
    chosen = masks[idx, cols]
    hi = scales[idx, cols]
    lo = np.where(idx > 0, scales[np.maximum(idx - 1, 0), cols], 0.0)
    return chosen.astype(np.int32), lo + (hi - lo) * u_scale


def _one_cycle(opt: torch.optim.Optimizer, lr: float, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle schedule (10% warm-up from lr/10, down to lr/100); a short run keeps a warm-up of
    more than one step (torch's OneCycleLR needs it), one or two steps run at ``lr``."""
    if steps < 3:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=max(0.1, 1.5 / steps),
                                               div_factor=10.0, final_div_factor=10.0)


def train_grouping_field(supervision: MaskSupervision, points: np.ndarray, normals: np.ndarray,
                         colors: np.ndarray, config: GroupingTrainConfig = GroupingTrainConfig(),
                         backbone_feat: np.ndarray | None = None, piece_code: np.ndarray | None = None,
                         seed: int = 0,
                         device: str | torch.device = "cpu", progress: bool = True) -> TrainedField:
    """Fit the grouping field of one object to its 2D masks.

    Args:
        supervision: pixels, masks and mask scales (see :func:`.supervision.build_supervision`).
        points, normals, colors: (N, 3) sampled points in the unit box, their normals and uint8 colours.
        backbone_feat: optional (N, Cb) features of a pretrained backbone (stage 1).
        piece_code: optional (N, Cp) per-point code of its mesh piece (see :func:`point_inputs`).
        seed: seeds the sampling of pixels and the weights.
    """
    if not supervision.views:
        raise ValueError("no 2D mask covers any sampled point: nothing to learn from")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bb, low = point_inputs(points, normals, colors, backbone_feat, config.fourier_freqs, device, piece_code)
    field = GroupingField(bb.shape[1], low.shape[1], config.width, config.out_dim,
                          config.backbone_layers, config.low_layers, long_skip=config.long_skip).to(device)
    quant = ScaleQuantiles.fit(supervision.scale)
    opt = torch.optim.AdamW(field.parameters(), lr=config.lr, weight_decay=1e-8)
    sched = _one_cycle(opt, config.lr, config.iterations)
    sampler = _ImageSampler(supervision, quant, config, rng)
    P = config.pixels_per_image
    n_views = len(supervision.views)
    replace = config.pair_sampling == "released" or config.images_per_iter > n_views
    n_picks = config.images_per_iter if replace else min(config.images_per_iter, n_views)

    def step(model: torch.nn.Module, _batch: None, it: int) -> torch.Tensor | None:
        """The loss of one iteration's images (None when no drawn image has two pixels with a group)."""
        picks = rng.choice(n_views, size=n_picks, replace=replace)
        batch = [b for b in (sampler.draw(int(vi)) for vi in picks) if b is not None]
        if not batch:
            return None
        pt = torch.as_tensor(np.stack([b[0] for b in batch]), device=device)  # (I, P)
        mid = torch.as_tensor(np.stack([b[1] for b in batch]).astype(np.int64), device=device)
        q_np = np.concatenate([b[2] for b in batch]).astype(np.float32)
        raw = np.concatenate([b[3] for b in batch])
        q = torch.as_tensor(q_np, device=device)  # (I*P,)
        flat = pt.reshape(-1)
        feat = model(bb[flat], low[flat], q[:, None]).reshape(len(batch), P, -1)
        feat_l = None
        if config.hierarchy:
            u = float(torch.rand((), generator=gen))
            q_l = torch.as_tensor(sampler.larger(q_np, raw, u), device=device)
            feat_l = model(bb[flat], low[flat], q_l[:, None]).reshape(len(batch), P, -1)
        return pairwise_grouping_loss(feat, mid, config.margin, feat_l, equal_terms=config.equal_terms,
                                      push_floor=config.push_floor)["loss"]

    result = fit(field, opt, step, TrainConfig(steps=config.iterations, device=str(device), progress=progress,
                                               desc="grouping field", distributed=False),
                 scheduler=sched, rngs={"pixels": rng, "hierarchy": gen})
    losses = np.nan_to_num(result.losses, nan=0.0)  # a skipped iteration counts 0, as before the engine
    field.eval()
    return TrainedField(field, bb, low, quant, losses)


@dataclass(frozen=True)
class _MaskSets:
    """A view's pixels grouped by the masks that contain them (M sets).

    Attributes:
        mask: (K, M) the mask slots of each set; scale: (K, M) their sigma (inf none);
        coarsest: (M,) each set's largest sigma; count: (M,) its pixels;
        pixels: (P,) the view's pixel indices ordered by set; start: (M,) each set's first position there.
    """

    mask: np.ndarray
    scale: np.ndarray
    coarsest: np.ndarray
    count: np.ndarray
    pixels: np.ndarray
    start: np.ndarray


class _ImageSampler:
    """Draws the pixels of one image for one training step (see the module docstring)."""

    def __init__(self, supervision: MaskSupervision, quant: ScaleQuantiles, config: GroupingTrainConfig,
                 rng: np.random.Generator) -> None:
        self.sup, self.quant, self.config, self.rng = supervision, quant, config, rng
        # per view: sigma of each pixel's masks per slot (inf where none)
        self.scales = [np.where(vs.mask >= 0, supervision.scale[np.maximum(vs.mask, 0)], np.inf)
                       for vs in supervision.views]
        # per view: a pixel's coarsest mask scale (it has a group at s iff this is >= s)
        self.coarsest = [np.where(np.isfinite(sc), sc, -np.inf).max(axis=0) for sc in self.scales]
        self.max_raw = float(quant.inverse(1.0))
        self._sets: dict[int, _MaskSets] = {}
        if config.pair_sampling == "released":
            self.log_share = []
            for vs in supervision.views:
                ids, cnt = np.unique(vs.mask[vs.mask >= 0], return_counts=True)
                share = np.zeros(supervision.n_masks)
                share[ids] = cnt / cnt.sum()
                self.log_share.append(np.where(vs.mask >= 0, np.log(np.maximum(share[np.maximum(vs.mask, 0)], 1e-30)),
                                               0.0))

    def draw(self, vi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(points (P,), group ids (P,), scale inputs q (P,), raw sigma (P,)) of P pixels of view ``vi``, or None."""
        P = self.config.pixels_per_image
        vs = self.sup.views[vi]
        if self.config.pair_sampling == "released":
            sel = self.rng.integers(0, vs.mask.shape[1], size=P)
            u_mask, u_scale = float(self.rng.uniform()), float(self.rng.uniform())
            group, raw = released_groups(vs.mask[:, sel], self.scales[vi][:, sel], self.log_share[vi][:, sel],
                                         u_mask, u_scale)
            return vs.point[sel], group, self.quant(raw), raw
        q = float(self.rng.uniform(0.0, 1.0))
        s_query = self.quant.inverse(q)
        if self.config.group_balance > 0:
            drawn = self._balanced(vi, s_query)
            if drawn is None:
                return None
            sel, group = drawn
        else:
            cand = np.flatnonzero(self.coarsest[vi] >= _reach(s_query))
            if len(cand) < 2:
                return None
            sel = cand[self.rng.integers(0, len(cand), size=P)]
            group, _ = groups_at_scale(vs.mask[:, sel], self.scales[vi][:, sel], s_query)
        return vs.point[sel], group, np.full(P, q, dtype=np.float32), np.full(P, s_query)

    def _balanced(self, vi: int, s_query: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(pixels (P,), groups (P,)) drawn with probability n^-a, n the pixel count of the pixel's group at s;
        None where fewer than 2 pixels have a group at s.

        Pixels that lie in the same masks (the same column of the view's mask slots) share their group at
        every scale, and a view has few such sets, so the draw picks a set with probability
        (its pixels) x n^-a and then a pixel of it uniformly: the same distribution as weighing every
        pixel, at the cost of the sets rather than the pixels.
        """
        sets = self._mask_sets(vi)
        live = np.flatnonzero(sets.coarsest >= _reach(s_query))
        count = sets.count[live]
        if count.sum() < 2:
            return None
        g, _ = groups_at_scale(sets.mask[:, live], sets.scale[:, live], s_query)
        _, g_idx = np.unique(g, return_inverse=True)
        n_group = np.bincount(g_idx, weights=count)
        w = count * n_group[g_idx] ** -self.config.group_balance
        P = self.config.pixels_per_image
        pick = self.rng.choice(len(live), size=P, p=w / w.sum())
        which = live[pick]
        offset = (self.rng.random(P) * sets.count[which]).astype(np.int64)
        return sets.pixels[sets.start[which] + offset], g[pick]

    def _mask_sets(self, vi: int) -> _MaskSets:
        """The view's pixels grouped by the masks that contain them (computed on first use)."""
        if vi not in self._sets:
            mask, scale = self.sup.views[vi].mask, self.scales[vi]
            cols = np.ascontiguousarray(mask.T)
            key = cols.view(np.dtype((np.void, cols.dtype.itemsize * cols.shape[1]))).ravel()
            _, first, inverse, count = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
            order = np.argsort(inverse, kind="stable")
            start = np.concatenate([[0], np.cumsum(count)[:-1]])
            self._sets[vi] = _MaskSets(mask[:, first], scale[:, first], self.coarsest[vi][first], count, order,
                                       start)
        return self._sets[vi]

    def larger(self, q: np.ndarray, raw: np.ndarray, u: float) -> np.ndarray:
        """(P,) float32 scale inputs of the hierarchy term: a random larger scale.

        ``released``: raw sigma s + (s_max - s) u (s_max: the largest mask sigma), mapped through
        the quantiles; ``shared_scale``: q + (1 - q) u in quantile space.
        """
        if self.config.pair_sampling == "released":
            return self.quant(raw + (self.max_raw - raw) * u)
        return (q + (1.0 - q) * u).astype(np.float32)
