"""The LiDAR student: sparse-voxel U-Net, domain-adaptation module, projection, shared classifier.

Per scan: points are voxelised (``voxel_size``), each voxel's input is the mean of its
points' features (:meth:`LidarFrame.point_features`), a :class:`SparseUNet` describes the
voxels, the self-calibrated :class:`DomainAdaptationModule` (optional: ``use_da``) adapts
them, a linear layer projects them into the 2D teacher's feature space (C channels), and
the teacher's own pixel classifier ``(K, C)`` -- frozen, *shared* between the modalities --
turns them into class logits. Points read their voxel's outputs.

Because the classifier is the teacher's, the student's features are meaningful in the
teacher's label space without any 3D label: this is what makes zero-shot 3D segmentation
possible after feature alignment (UDAKD) and what FSKD's soft-label distillation trains.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

from crossdistill.students.sparse_conv import set_backend, voxelize
from crossdistill.students.sparse_unet import DomainAdaptationModule, SparseUNet, VoxelPyramid

__all__ = ["StudentConfig", "LidarStudent", "ScanInput", "prepare_scan", "prepare_batch"]


@dataclass(frozen=True)
class StudentConfig:
    """Student architecture.

    Attributes:
        voxel_size: metres.
        widths: U-Net widths per level (also its depth).
        use_da: with the self-calibrated domain-adaptation module (the methods' default).
        in_channels: point feature channels.
        backend: sparse convolution backend: "torch", "spconv" or "auto" (spconv when installed,
            :func:`~crossdistill.students.sparse_conv.resolve_backend`); the weights are the same for both.
    """

    voxel_size: float = 0.2
    widths: tuple[int, ...] = (16, 32, 64)
    use_da: bool = True
    in_channels: int = 4
    backend: str = "auto"

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}


@dataclass
class ScanInput:
    """Voxelised scans: voxel features (M, F), their pyramid, and each point's voxel (N,) (scans packed)."""

    voxel_features: torch.Tensor
    pyramid: VoxelPyramid
    point_voxel: torch.Tensor

    def to(self, device: str | torch.device) -> "ScanInput":
        return ScanInput(self.voxel_features.to(device), self.pyramid.to(device), self.point_voxel.to(device))


def prepare_batch(point_features: list[np.ndarray], points_xyz: list[np.ndarray], config: StudentConfig,
                  device: str = "cpu") -> ScanInput:
    """Voxelise several scans into one packed batch: per scan (N_i, F) features and (N_i, 3) positions.

    Each scan is its own cloud (batch index) of the voxel grid; the point rows of the result are
    the scans' points concatenated in order.
    """
    xyz = torch.as_tensor(np.ascontiguousarray(np.concatenate([p[:, :3] for p in points_xyz]), np.float32))
    feats = torch.as_tensor(np.ascontiguousarray(np.concatenate(point_features), np.float32))
    batch = torch.repeat_interleave(torch.arange(len(points_xyz)), torch.tensor([len(p) for p in points_xyz]))
    coords, pv = voxelize(xyz, batch, config.voxel_size)
    vf = torch.zeros(len(coords), feats.shape[1]).index_add_(0, pv, feats)
    vf /= torch.bincount(pv, minlength=len(coords)).clamp_min(1)[:, None].float()
    pyramid = VoxelPyramid.build(coords, max(len(config.widths), 2))
    # VoxelLevel.build re-sorts by key; voxelize returns sorted keys, so rows agree
    return ScanInput(vf, pyramid, pv).to(device)


def prepare_scan(point_features: np.ndarray, points_xyz: np.ndarray, config: StudentConfig,
                 device: str = "cpu") -> ScanInput:
    """Voxelise one scan: (N, F) point features and (N, 3) positions -> :class:`ScanInput`."""
    return prepare_batch([point_features], [points_xyz], config, device)


class LidarStudent(nn.Module):
    """See the module docstring.

    Args:
        config: architecture.
        classifier_weight: (K, C) the teacher's classifier weight (frozen buffer).
        classifier_bias: (K,) its bias.
    """

    def __init__(self, config: StudentConfig, classifier_weight: np.ndarray, classifier_bias: np.ndarray) -> None:
        super().__init__()
        self.config = config
        w0 = config.widths[0]
        self.backbone = SparseUNet(config.in_channels, config.widths)
        self.da = DomainAdaptationModule(w0) if config.use_da else None
        K, C = classifier_weight.shape
        self.project = nn.Sequential(nn.Linear(w0, w0), nn.ReLU(), nn.Linear(w0, C))
        self.register_buffer("cls_weight", torch.as_tensor(np.asarray(classifier_weight, np.float32)))
        self.register_buffer("cls_bias", torch.as_tensor(np.asarray(classifier_bias, np.float32)))
        # UDAKD aligns directions only (InfoNCE on unit vectors): its features are read out at the
        # teacher's mean feature norm; 0 = read out as they are (FSKD trains them through the classifier)
        self.register_buffer("readout_norm", torch.zeros(()))
        set_backend(self, config.backend)

    @property
    def n_classes(self) -> int:
        return int(self.cls_weight.shape[0])

    def forward(self, scan: ScanInput) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ((N, C) point features in the teacher's space, (N, K) logits by the shared classifier).

        With ``readout_norm`` > 0 the classifier reads the features rescaled to that norm.
        """
        x = self.backbone(scan.voxel_features, scan.pyramid)
        if self.da is not None:
            x = self.da(x, scan.pyramid)
        f = self.project(x)[scan.point_voxel]
        read = f if float(self.readout_norm) <= 0 else \
            torch.nn.functional.normalize(f, dim=1) * self.readout_norm
        return f, read @ self.cls_weight.T + self.cls_bias
