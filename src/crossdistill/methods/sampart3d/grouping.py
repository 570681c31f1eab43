"""Scale-conditioned grouping field of SAMPart3D and its contrastive loss.

The grouping feature of a point at scale s is (paper Sec. 3.3)::

    F(s) = normalize(F_B([backbone_feat, s])) + normalize(F_P([xyz, normal, colour, s]))

F_B is an MLP over the (frozen) backbone features (paper: 6 layers, width 384) and
F_P a long-skip MLP over the low-level inputs (paper: 4 layers, width 384). Without a
pretrained backbone, F_B sees a Fourier positional encoding of the coordinates with the
normal and colour instead (see :func:`fourier_features`), so the field still has the
capacity to draw sharp part boundaries.

The loss is Eq. 5 of the paper on pixel pairs of the same image: the feature distance
of a pair inside one mask is pulled to 0, a pair in different masks is pushed beyond a
margin m; as in the released code, pairs of one mask are also pulled together at a
random larger scale (the hierarchy term: what is grouped at scale s stays grouped
above s).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_dim: int, width: int, out_dim: int, hidden_layers: int) -> nn.Sequential:
    """ReLU MLP with ``hidden_layers`` hidden layers of ``width`` units and a linear output."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, width), nn.ReLU(inplace=True)]
        d = width
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def fourier_features(xyz: torch.Tensor, n_freqs: int = 8) -> torch.Tensor:
    """Positional encoding of coordinates in the unit box.

    Args:
        xyz: (N, 3) coordinates, roughly in [-1, 1].

    Returns:
        (N, 3 + 6 * n_freqs) ``[xyz, sin(2^k pi xyz), cos(2^k pi xyz)]``.
    """
    freqs = (2.0 ** torch.arange(n_freqs, device=xyz.device, dtype=xyz.dtype)) * math.pi
    ang = xyz[:, :, None] * freqs  # (N, 3, K)
    return torch.cat([xyz, torch.sin(ang).flatten(1), torch.cos(ang).flatten(1)], dim=1)


class GroupingField(nn.Module):
    """F(s) = normalize(F_B) + normalize(F_P).

    Args:
        backbone_dim: channels of the per-point backbone features fed to F_B.
        low_dim: channels of the low-level inputs fed to F_P (xyz, normal, colour = 9).
        width: hidden width of both MLPs (paper: 384).
        out_dim: output feature size (paper: 384).
        backbone_layers: hidden layers of F_B (paper: 6).
        low_layers: hidden layers of F_P (paper: 4).
        long_skip: keep F_P, the long skip connection of the low-level inputs (the paper's
            ablation turns it off: then F(s) = normalize(F_B)).

    Shapes:
        forward(backbone_feat (B, backbone_dim), low_feat (B, low_dim), scale (B, 1)) -> (B, out_dim)

    Example:
        >>> field = GroupingField(backbone_dim=16, width=32, out_dim=8)
        >>> field(torch.zeros(5, 16), torch.zeros(5, 9), torch.zeros(5, 1)).shape
        torch.Size([5, 8])
    """

    def __init__(self, backbone_dim: int, low_dim: int = 9, width: int = 384, out_dim: int = 384,
                 backbone_layers: int = 6, low_layers: int = 4, long_skip: bool = True) -> None:
        super().__init__()
        self.instance_net = mlp(backbone_dim + 1, width, out_dim, backbone_layers)
        self.pos_net = mlp(low_dim + 1, width, out_dim, low_layers) if long_skip else None
        self.low_dim = low_dim

    def forward(self, backbone_feat: torch.Tensor, low_feat: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        a = F.normalize(self.instance_net(torch.cat([backbone_feat, scale], dim=1)), dim=1, eps=1e-5)
        if self.pos_net is None:
            return a
        return a + F.normalize(self.pos_net(torch.cat([low_feat, scale], dim=1)), dim=1, eps=1e-5)


def pairwise_grouping_loss(feat: torch.Tensor, mask_id: torch.Tensor, margin: float = 1.0,
                           feat_larger: torch.Tensor | None = None, equal_terms: bool = False,
                           push_floor: bool = False) -> dict[str, torch.Tensor]:
    """Contrastive loss of Eq. 5 over the pixel pairs of each image.

    Args:
        feat: (I, P, D) features of P sampled pixels in each of I images, at each
            pixel's own mask scale.
        mask_id: (I, P) int64 mask of each pixel (unique within its image); -1 = no mask
            (the pixel takes part in no pair).
        margin: m of Eq. 5.
        feat_larger: optional (I, P, D) features of the same pixels at a larger scale
            (hierarchy term: same-mask pairs also pulled together there).

    Returns:
        dict with "loss" (scalar) and its terms "pull", "push", "pull_larger".
        Each term is the mean over its pairs, weighted by the fraction of valid pairs
        it covers, as in the released code (``equal_terms``: weight 1 each, so that the
        pushes of a small part weigh as much as the pulls of a large one); ``push_floor``:
        as the released code, but the push term never weighs less than the pull term (its
        weight is the larger of the two shares: where same-group pairs outnumber the others,
        as in images dominated by one large part, both terms weigh the same). Pairs (i, i)
        are excluded.

    Example:
        >>> f = torch.tensor([[[0., 0], [0, 0], [3, 4]]]); m = torch.tensor([[0, 0, 1]])
        >>> float(pairwise_grouping_loss(f, m)["loss"])  # pull 0, push relu(1-5)=0
        0.0
    """
    I, P, _ = feat.shape
    valid = mask_id >= 0
    upper = torch.triu(torch.ones(P, P, dtype=torch.bool, device=feat.device), diagonal=1)
    pair_valid = valid[:, :, None] & valid[:, None, :] & upper
    same_mask = mask_id[:, :, None] == mask_id[:, None, :]
    same = same_mask & pair_valid
    diff = pair_valid & ~same_mask
    n_same, n_diff = same.sum(), diff.sum()
    has_same, has_diff = bool(n_same > 0), bool(n_diff > 0)
    n_valid = pair_valid.sum().clamp(min=1)
    # means over the selected pairs as masked sums (no gather of the pairs and no scatter of
    # their gradient: the same value, a fraction of the time)
    same_w, diff_w = same.to(feat.dtype), diff.to(feat.dtype)
    dist = _pair_dist(feat)
    zero = feat.sum() * 0.0
    pull = (dist * same_w).sum() / n_same if has_same else zero
    push = (F.relu(margin - dist) * diff_w).sum() / n_diff if has_diff else zero
    w_same = n_same / n_valid
    w_diff = n_diff / n_valid
    if equal_terms:
        w_same = torch.tensor(float(has_same), device=feat.device)
        w_diff = torch.tensor(float(has_diff), device=feat.device)
    elif push_floor and has_diff:
        w_diff = torch.maximum(w_diff, w_same)
    out = {"pull": pull, "push": push}
    loss = pull * w_same + push * w_diff
    if feat_larger is not None:
        pull_l = (_pair_dist(feat_larger) * same_w).sum() / n_same if has_same else zero
        out["pull_larger"] = pull_l
        loss = loss + pull_l * w_same
    out["loss"] = loss
    return out


def _pair_dist(feat: torch.Tensor) -> torch.Tensor:
    """(I, P, D) -> (I, P, P) Euclidean distances, with a safe gradient at 0."""
    sq_norm = feat.pow(2).sum(-1)
    sq = sq_norm[:, :, None] + sq_norm[:, None, :] - 2.0 * torch.bmm(feat, feat.transpose(1, 2))
    return torch.sqrt(sq.clamp(min=0.0) + 1e-12)
