"""Per-object training of the scale-conditioned grouping field (SAMPart3D stage 2).

Each iteration samples ``images_per_iter`` views and ``pixels_per_image`` supervised
pixels in each (paper: 90 images x 256 pixels; on a CPU we default to fewer, see
:class:`GroupingTrainConfig`) and minimises the pairwise loss of
:func:`.grouping.pairwise_grouping_loss`.

Scale sampling (GARField's scale-conditioned grouping, on which SAMPart3D builds): each
sampled image gets one scale s (uniform in the quantile space of the object's mask
scales); a pixel's group at s is the smallest of its masks whose scale sigma is at
least s. All pixels of the image are fed the same s, so the field cannot tell two
masks apart by their scale alone -- it has to use where the points are. (Feeding each
pixel its own mask's scale lets an object with few, differently sized masks be
"solved" through the scale input, and the field collapses at any fixed query scale.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from crossdistill.methods.sampart3d.grouping import GroupingField, fourier_features, pairwise_grouping_loss
from crossdistill.methods.sampart3d.scale import ScaleQuantiles
from crossdistill.methods.sampart3d.supervision import MaskSupervision


@dataclass(frozen=True)
class GroupingTrainConfig:
    """Training settings (paper values in brackets).

    Attributes:
        iterations: optimisation steps [5000].
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
    """Group of every pixel at scale ``s``: its smallest mask whose scale is >= s.

    Args:
        masks: (L, P) mask id per level (-1 none); scales: (L, P) that mask's sigma (inf none); s: the scale.

    Returns:
        group (P,) int32 mask id (-1 where no mask reaches s), valid (P,) bool.
    """
    cand = np.where(scales >= s, scales, np.inf)
    lvl = cand.argmin(axis=0)
    cols = np.arange(masks.shape[1])
    valid = np.isfinite(cand[lvl, cols])
    return np.where(valid, masks[lvl, cols], -1).astype(np.int32), valid


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
                          config.backbone_layers, config.low_layers).to(device)
    quant = ScaleQuantiles.fit(supervision.scale)
    opt = torch.optim.AdamW(field.parameters(), lr=config.lr, weight_decay=1e-8)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(config.iterations, 1),
                                                pct_start=0.1, div_factor=10.0, final_div_factor=10.0)
    # per view: scale sigma of each pixel's mask at each level (inf where none)
    view_scales = [np.where(vs.mask >= 0, supervision.scale[np.maximum(vs.mask, 0)], np.inf).astype(np.float32)
                   for vs in supervision.views]
    # per view: the coarsest mask scale of each pixel (-inf where none); a pixel has a group at
    # scale s iff this is >= s, so only the sampled pixels need the full per-level lookup
    view_coarsest = [np.where(np.isfinite(vs), vs, -np.inf).max(axis=0) for vs in view_scales]
    losses = np.zeros(config.iterations, dtype=np.float32)
    P = config.pixels_per_image
    n_img = min(config.images_per_iter, len(supervision.views))
    for it in tqdm(range(config.iterations), desc="grouping field", disable=not progress, leave=False):
        pts, mids, qs = [], [], []
        for vi in rng.choice(len(supervision.views), size=n_img, replace=False):
            q = float(rng.uniform(0.0, 1.0))
            s_query = quant.inverse(q)
            cand = np.flatnonzero(view_coarsest[vi] >= s_query)
            if len(cand) < 2:
                continue
            sel = cand[rng.integers(0, len(cand), size=P)]
            group, _ = groups_at_scale(supervision.views[vi].mask[:, sel], view_scales[vi][:, sel], s_query)
            pts.append(supervision.views[vi].point[sel])
            mids.append(group)
            qs.append(q)
        if not pts:
            continue
        pt = torch.as_tensor(np.stack(pts), device=device)  # (I, P)
        mid = torch.as_tensor(np.stack(mids).astype(np.int64), device=device)
        s = torch.as_tensor(np.repeat(np.asarray(qs, dtype=np.float32), P), device=device)  # (I*P,)
        flat = pt.reshape(-1)
        feat = field(bb[flat], low[flat], s[:, None]).reshape(len(pts), P, -1)
        feat_l = None
        if config.hierarchy:
            u = torch.rand((), generator=gen).to(device)
            s_l = s + (1.0 - s) * u
            feat_l = field(bb[flat], low[flat], s_l[:, None]).reshape(len(pts), P, -1)
        out = pairwise_grouping_loss(feat, mid, config.margin, feat_l)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        sched.step()
        losses[it] = float(out["loss"].detach())
    field.eval()
    return TrainedField(field, bb, low, quant, losses)
