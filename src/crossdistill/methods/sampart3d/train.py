"""Per-object training of the scale-conditioned grouping field (SAMPart3D stage 2).

Each iteration samples ``images_per_iter`` views and ``pixels_per_image`` supervised
pixels in each (paper: 90 images x 256 pixels; on a CPU we default to fewer, see
:class:`GroupingTrainConfig`), one granularity level per image, and minimises the
pairwise loss of :func:`.grouping.pairwise_grouping_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from crossdistill.methods.sampart3d.grouping import GroupingField, fourier_features, pairwise_grouping_loss
from crossdistill.methods.sampart3d.scale import MAX_GROUPING_SCALE, ScaleQuantiles
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

    @torch.no_grad()
    def features(self, scale: float, chunk: int = 32768) -> np.ndarray:
        """(N, out_dim) float32 grouping features of every sampled point at raw scale ``scale``."""
        n = self.low_feat.shape[0]
        s = torch.full((n, 1), float(self.quantiles(np.array([scale]))[0]), device=self.low_feat.device)
        out = [self.field(self.backbone_feat[i:i + chunk], self.low_feat[i:i + chunk], s[i:i + chunk])
               for i in range(0, n, chunk)]
        return torch.cat(out).float().cpu().numpy()


def point_inputs(points: np.ndarray, normals: np.ndarray, colors: np.ndarray,
                 backbone_feat: np.ndarray | None, fourier_freqs: int,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of the two branches.

    Args:
        points: (N, 3) coordinates in the unit box.
        normals: (N, 3) unit normals.
        colors: (N, 3) uint8 colours.
        backbone_feat: (N, Cb) features of a pretrained point backbone, or None.

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
    return bb, low


def train_grouping_field(supervision: MaskSupervision, points: np.ndarray, normals: np.ndarray,
                         colors: np.ndarray, config: GroupingTrainConfig = GroupingTrainConfig(),
                         backbone_feat: np.ndarray | None = None, seed: int = 0,
                         device: str | torch.device = "cpu", progress: bool = True) -> TrainedField:
    """Fit the grouping field of one object to its 2D masks.

    Args:
        supervision: pixels, masks and mask scales (see :func:`.supervision.build_supervision`).
        points, normals, colors: (N, 3) sampled points in the unit box, their normals and uint8 colours.
        backbone_feat: optional (N, Cb) features of a pretrained backbone (stage 1).
        seed: seeds the sampling of pixels and the weights.
    """
    if not supervision.views:
        raise ValueError("no 2D mask covers any sampled point: nothing to learn from")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bb, low = point_inputs(points, normals, colors, backbone_feat, config.fourier_freqs, device)
    field = GroupingField(bb.shape[1], low.shape[1], config.width, config.out_dim,
                          config.backbone_layers, config.low_layers).to(device)
    quant = ScaleQuantiles.fit(supervision.scale)
    scale_q = torch.as_tensor(quant(supervision.scale), device=device)
    max_q = float(quant(np.array([MAX_GROUPING_SCALE]))[0])
    opt = torch.optim.AdamW(field.parameters(), lr=config.lr, weight_decay=1e-8)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(config.iterations, 1),
                                                pct_start=0.1, div_factor=10.0, final_div_factor=10.0)
    # per view: pixel lists per level (only pixels that have a mask at that level)
    choices = [(vi, l, np.flatnonzero(vs.mask[l] >= 0))
               for vi, vs in enumerate(supervision.views) for l in range(vs.mask.shape[0])]
    choices = [c for c in choices if len(c[2]) >= 2]
    losses = np.zeros(config.iterations, dtype=np.float32)
    P = config.pixels_per_image
    for it in tqdm(range(config.iterations), desc="grouping field", disable=not progress, leave=False):
        pick = rng.choice(len(choices), size=min(config.images_per_iter, len(choices)), replace=False)
        pts, mids = [], []
        for c in pick:
            vi, l, cand = choices[c]
            sel = cand[rng.integers(0, len(cand), size=P)]
            vs = supervision.views[vi]
            pts.append(vs.point[sel])
            mids.append(vs.mask[l, sel])
        pt = torch.as_tensor(np.stack(pts), device=device)  # (I, P)
        mid = torch.as_tensor(np.stack(mids).astype(np.int64), device=device)
        s = scale_q[mid.clamp(min=0)]  # (I, P)
        flat = pt.reshape(-1)
        feat = field(bb[flat], low[flat], s.reshape(-1, 1)).reshape(len(pick), P, -1)
        feat_l = None
        if config.hierarchy:
            u = torch.rand((), generator=gen).to(device)
            s_l = s + (max_q - s).clamp(min=0) * u
            feat_l = field(bb[flat], low[flat], s_l.reshape(-1, 1)).reshape(len(pick), P, -1)
        out = pairwise_grouping_loss(feat, mid, config.margin, feat_l)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        sched.step()
        losses[it] = float(out["loss"].detach())
    field.eval()
    return TrainedField(field, bb, low, quant, losses)
