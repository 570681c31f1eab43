"""Upsampling of low-resolution teacher features to render pixels.

Two upsamplers with one call signature ``up(features, size, guide) -> (B, C, H, W)``:

* :class:`BilinearUpsampler` -- plain bilinear interpolation (``align_corners=False``).
* :class:`JointBilateralUpsampler` -- joint bilateral upsampling (Kopf et al. 2007) guided
  by the RGB render, the fixed-kernel form of FeatUp's JBU: every output pixel averages the
  nearby low-resolution features weighted by spatial distance *and* by how similar the
  render's colour at the pixel is to the colour of each low-resolution cell, so feature
  boundaries snap to image edges instead of blurring across them.

Both are frozen dataclasses whose :meth:`spec` (a JSON string) lets a cache store which
upsampler goes with the stored low-resolution features.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

__all__ = ["Upsampler", "BilinearUpsampler", "JointBilateralUpsampler", "upsampler_from_spec", "make_upsampler"]


class Upsampler(Protocol):
    """Maps (B, C, h, w) features to (B, C, H, W); ``guide`` is (B, H, W, 3) uint8 or None."""

    name: str
    needs_guide: bool

    def __call__(
        self, features: torch.Tensor, size: tuple[int, int], guide: torch.Tensor | None = None
    ) -> torch.Tensor: ...

    def spec(self) -> str: ...


@dataclass(frozen=True)
class BilinearUpsampler:
    """Bilinear interpolation to the render size.

    Example:
        >>> BilinearUpsampler()(torch.ones(1, 4, 3, 3), (12, 12)).shape
        torch.Size([1, 4, 12, 12])
    """

    name: str = "bilinear"
    needs_guide: bool = False

    def __call__(
        self, features: torch.Tensor, size: tuple[int, int], guide: torch.Tensor | None = None
    ) -> torch.Tensor:
        return F.interpolate(features.float(), size=tuple(size), mode="bilinear", align_corners=False)

    def spec(self) -> str:
        return json.dumps({"name": self.name})


@dataclass(frozen=True)
class JointBilateralUpsampler:
    """Joint bilateral upsampling guided by the RGB render (vectorised torch).

    For output pixel ``p`` with low-resolution position ``u(p)`` and low-resolution cells
    ``q`` in a ``2*radius`` x ``2*radius`` window around it::

        f(p) = sum_q f_low(q) * exp(-|u(p) - q|^2 / 2 sigma_spatial^2)
                              * exp(-|I(p) - I_low(q)|^2 / 2 sigma_range^2)  /  sum_q (weights)

    ``I`` is the render in [0, 1], ``I_low`` its area average over each cell. Weights are
    normalised, so a constant feature map stays constant. The loop runs over the
    ``(2*radius)^2`` window offsets only; each step is one vectorised gather over all
    pixels (rows are processed in chunks of ``chunk_rows`` to bound memory).

    Attributes:
        sigma_spatial: spatial kernel width in low-resolution cells.
        sigma_range: colour kernel width, RGB in [0, 1].
        radius: window half-size in low-resolution cells.
        chunk_rows: output rows per chunk (memory ~ B*C*chunk_rows*W floats).

    Example:
        >>> up = JointBilateralUpsampler()
        >>> guide = torch.zeros(1, 16, 16, 3, dtype=torch.uint8)
        >>> up(torch.ones(1, 2, 4, 4), (16, 16), guide).shape
        torch.Size([1, 2, 16, 16])
    """

    sigma_spatial: float = 1.0
    sigma_range: float = 0.15
    radius: int = 2
    chunk_rows: int = 128
    name: str = "jbu"
    needs_guide: bool = True

    def __call__(
        self, features: torch.Tensor, size: tuple[int, int], guide: torch.Tensor | None = None
    ) -> torch.Tensor:
        if guide is None:
            raise ValueError("joint bilateral upsampling needs the RGB render as guide")
        B, C, h, w = features.shape
        H, W = int(size[0]), int(size[1])
        feats = features.float()
        g_hr = guide.to(feats.device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        if g_hr.shape[-2:] != (H, W):
            raise ValueError(f"guide is {tuple(g_hr.shape[-2:])}, expected {(H, W)}")
        g_lr = F.adaptive_avg_pool2d(g_hr, (h, w))  # (B, 3, h, w)
        out = torch.empty((B, C, H, W), dtype=feats.dtype, device=feats.device)
        # continuous low-res coordinates of every output pixel centre
        uy_all = (torch.arange(H, device=feats.device, dtype=torch.float32) + 0.5) * (h / H) - 0.5
        ux = (torch.arange(W, device=feats.device, dtype=torch.float32) + 0.5) * (w / W) - 0.5
        for y0 in range(0, H, self.chunk_rows):
            y1 = min(H, y0 + self.chunk_rows)
            out[:, :, y0:y1] = self._rows(feats, g_lr, g_hr[:, :, y0:y1], uy_all[y0:y1], ux)
        return out

    def _rows(
        self, feats: torch.Tensor, g_lr: torch.Tensor, g_hr: torch.Tensor, uy: torch.Tensor, ux: torch.Tensor
    ) -> torch.Tensor:
        """Upsample a block of output rows: g_hr (B, 3, R, W), uy (R,), ux (W,) -> (B, C, R, W)."""
        h, w = feats.shape[-2:]
        inv_s = 1.0 / (2.0 * self.sigma_spatial**2)
        inv_r = 1.0 / (2.0 * self.sigma_range**2)
        fy, fx = torch.floor(uy).long(), torch.floor(ux).long()
        acc = torch.zeros((feats.shape[0], feats.shape[1], len(uy), len(ux)), dtype=feats.dtype, device=feats.device)
        wsum = torch.zeros((feats.shape[0], 1, len(uy), len(ux)), dtype=feats.dtype, device=feats.device)
        offsets = range(1 - self.radius, self.radius + 1)
        for dy in offsets:
            qy = fy + dy
            valid_y = (qy >= 0) & (qy < h)
            qy_c = qy.clamp(0, h - 1)
            ws_y = torch.exp(-((uy - qy) ** 2) * inv_s) * valid_y  # (R,)
            for dx in offsets:
                qx = fx + dx
                valid_x = (qx >= 0) & (qx < w)
                qx_c = qx.clamp(0, w - 1)
                ws_x = torch.exp(-((ux - qx) ** 2) * inv_s) * valid_x  # (W,)
                g_q = g_lr[:, :, qy_c[:, None], qx_c[None, :]]  # (B, 3, R, W)
                wr = torch.exp(-((g_hr - g_q) ** 2).sum(1, keepdim=True) * inv_r)  # (B, 1, R, W)
                # a small floor keeps pixels whose colour matches no neighbour well defined
                wgt = (ws_y[:, None] * ws_x[None, :])[None, None] * (wr + 1e-6)
                acc += wgt * feats[:, :, qy_c[:, None], qx_c[None, :]]
                wsum += wgt
        return acc / wsum.clamp_min(1e-12)

    def spec(self) -> str:
        return json.dumps(asdict(self))


def upsampler_from_spec(spec: str) -> Upsampler:
    """Rebuild an upsampler from :meth:`spec` output."""
    params = json.loads(spec)
    name = params.pop("name")
    params.pop("needs_guide", None)
    if name == "bilinear":
        return BilinearUpsampler()
    if name == "jbu":
        return JointBilateralUpsampler(**params)
    raise ValueError(f"unknown upsampler {name!r}")


def make_upsampler(name: str) -> Upsampler:
    """``"bilinear"`` or ``"jbu"`` with default settings."""
    if name not in ("bilinear", "jbu"):
        raise ValueError(f"upsample must be 'bilinear' or 'jbu', got {name!r}")
    return upsampler_from_spec(json.dumps({"name": name}))

