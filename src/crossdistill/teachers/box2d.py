"""Offline semantic teacher: a small 2D segmenter trained on images labelled with 2D boxes.

The default :class:`~crossdistill.teachers.base.SemanticTeacher` when no SegFormer weights
are present. The LiDAR distillation methods assume a 2D network trained on 2D data, which
is plentiful where 3D labels are not; here that 2D data is images with 2D boxes (KITTI's
``label_2`` boxes, or a nuScenes camera with its projected 3D boxes). Each pixel takes the
class of the smallest box covering it (box-level supervision, so box corners are
mislabelled as the object, as a GLIP-like teacher's would be), pixels in no box are
"background", ``DontCare`` regions are ignored. A :class:`~crossdistill.teachers.fewshot.RenderUNet`
over colour and the pixel's relative height in the image learns them on random crops;
``features`` is its last decoder layer (the input of its 1x1 classifier), which is what
a LiDAR student shares.

Images are processed at ``scale`` of their size (default 0.5: a KITTI image is 187 x 621).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.errors import InputError
from crossdistill.teachers.base import SemanticMap
from crossdistill.teachers.fewshot import RenderUNet, inverse_sqrt_class_weights, segmentation_step

__all__ = ["BoxTeacherConfig", "BoxSupervisedTeacher", "box_pixel_labels", "FORMAT"]

FORMAT = "crossdistill.box2d_teacher/1"
IN_CHANNELS = 4  # colour in [-0.5, 0.5] + relative row in [-0.5, 0.5]


@dataclass(frozen=True)
class BoxTeacherConfig:
    """Training of the box-supervised teacher.

    Attributes:
        width: U-Net base width (features have this many channels).
        scale: image scale the net runs at.
        iterations, batch_size, crop, lr: training (crops of ``crop`` x 2 * ``crop`` pixels); the
            default step count is the one at which it learned the cars of the shared KITTI +
            nuScenes images (``docs/results/lidar_kd_notes.md``, item 1).
        seed: initialisation and crops.
    """

    width: int = 16
    scale: float = 0.5
    iterations: int = 1000
    batch_size: int = 4
    crop: int = 96
    lr: float = 3e-3
    seed: int = 0


def box_pixel_labels(size: tuple[int, int], boxes: np.ndarray, labels: np.ndarray,
                     ignore: np.ndarray | None = None) -> np.ndarray:
    """(H, W) int64 class per pixel from 2D boxes: the smallest covering box's label, 0 elsewhere.

    Args:
        size: (H, W).
        boxes: (B, 4) x0, y0, x1, y1 pixel boxes (clipped to the image).
        labels: (B,) int classes >= 1.
        ignore: (B,) bool boxes whose pixels become -1 (DontCare), applied last.

    Example:
        >>> box_pixel_labels((2, 4), np.array([[0, 0, 2, 2], [1, 0, 2, 1]]), np.array([1, 2]))[0].tolist()
        [1, 2, 0, 0]
    """
    H, W = size
    out = np.zeros((H, W), np.int64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ign = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, bool)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for b in np.argsort(-area, kind="stable"):  # large first, so small boxes end on top
        if ign[b]:
            continue
        x0, y0, x1, y1 = _clip(boxes[b], W, H)
        out[y0:y1, x0:x1] = labels[b]
    for b in np.nonzero(ign)[0]:
        x0, y0, x1, y1 = _clip(boxes[b], W, H)
        out[y0:y1, x0:x1] = -1
    return out


def _clip(box: np.ndarray, W: int, H: int) -> tuple[int, int, int, int]:
    x0, y0 = int(np.clip(np.floor(box[0]), 0, W)), int(np.clip(np.floor(box[1]), 0, H))
    x1, y1 = int(np.clip(np.ceil(box[2]), 0, W)), int(np.clip(np.ceil(box[3]), 0, H))
    return x0, y0, x1, y1


def _inputs(image: np.ndarray, scale: float) -> torch.Tensor:
    """(1, 4, h, w) network input of an (H, W, 3) uint8 image at ``scale``."""
    x = torch.as_tensor(np.array(image, np.float32)).permute(2, 0, 1)[None] / 255.0 - 0.5
    if scale != 1.0:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True)
    h, w = x.shape[-2:]
    rows = (torch.arange(h, dtype=torch.float32) + 0.5)[:, None].expand(h, w) / h - 0.5
    return torch.cat([x, rows[None, None]], 1)


class BoxSupervisedTeacher:
    """A trained box-supervised 2D segmenter as a :class:`SemanticTeacher` (see the module docstring)."""

    is_offline_default = True

    def __init__(self, model: RenderUNet, class_names: Sequence[str], config: BoxTeacherConfig = BoxTeacherConfig(),
                 device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.class_names = tuple(class_names)
        self.config = config
        self.device = device

    @property
    def teacher_id(self) -> str:
        from crossdistill.teachers.cache import hash_array

        digest = hash_array(*[v.detach().cpu().numpy() for v in self.model.state_dict().values()], digest_size=6)
        return f"box2d:{'+'.join(self.class_names)}:w={self.config.width}:s={self.config.scale}:{digest}"

    @classmethod
    def fit(cls, images: Sequence[np.ndarray], pixel_labels: Sequence[np.ndarray], class_names: Sequence[str],
            config: BoxTeacherConfig = BoxTeacherConfig(), device: str = "cpu",
            progress: bool = True) -> "BoxSupervisedTeacher":
        """Train on images and their (H, W) int labels (0 background, -1 ignore, k = ``class_names[k]``)."""
        if not images or len(images) != len(pixel_labels):
            raise InputError("the box teacher needs images with one label map each")
        if class_names[0] != "background":
            raise InputError("class_names[0] must be 'background'")
        torch.manual_seed(config.seed)
        model = RenderUNet(len(class_names), config.width, IN_CHANNELS).to(device)
        xs, ys = [], []
        for img, lab in zip(images, pixel_labels):
            if img.shape[:2] != lab.shape:
                raise InputError(f"an image of {img.shape[:2]} has a label map of {lab.shape}")
            x = _inputs(img, config.scale)
            y = F.interpolate(torch.as_tensor(lab, dtype=torch.float32)[None, None], size=x.shape[-2:],
                              mode="nearest")[0, 0].long()
            xs.append(x[0])
            ys.append(y)
        _train(model, xs, ys, len(class_names), config, device, progress)
        return cls(model, class_names, config, device)

    def classifier(self) -> tuple[np.ndarray, np.ndarray]:
        head = self.model.head
        return head.weight.detach().cpu().numpy()[:, :, 0, 0], head.bias.detach().cpu().numpy()

    @torch.no_grad()
    def segment(self, images: Sequence[np.ndarray]) -> list[SemanticMap]:
        out = []
        for img in images:
            feats = self.model.features(_inputs(img, self.config.scale).to(self.device))
            logits = self.model.head(feats)
            out.append(SemanticMap(feats[0].cpu().numpy(), logits[0].cpu().numpy(), tuple(img.shape[:2])))
        return out

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, FORMAT, {"config": asdict(self.config), "class_names": list(self.class_names),
                                              "state_dict": self.model.state_dict()})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "BoxSupervisedTeacher":
        def build(blob: dict) -> "BoxSupervisedTeacher":
            cfg = BoxTeacherConfig(**blob["config"])
            model = RenderUNet(len(blob["class_names"]), cfg.width, IN_CHANNELS)
            model.load_state_dict(blob["state_dict"])
            return cls(model, blob["class_names"], cfg, device)

        return load_checkpoint(path, FORMAT, "box-supervised 2D teacher", build, device)


def _train(model: RenderUNet, xs: list[torch.Tensor], ys: list[torch.Tensor], n_classes: int,
           config: BoxTeacherConfig, device: str, progress: bool) -> None:
    """Class-balanced (inverse square-root frequency) cross-entropy on random crops."""
    gen = torch.Generator().manual_seed(config.seed)
    weight = inverse_sqrt_class_weights(sum(torch.bincount(y[y >= 0], minlength=n_classes) for y in ys)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(config.iterations, 1))
    model.train()
    for _ in tqdm(range(config.iterations), desc="train 2D box teacher", disable=not progress, leave=False):
        xb, yb = [], []
        for _ in range(config.batch_size):
            i = int(torch.randint(len(xs), (1,), generator=gen))
            x, y = xs[i], ys[i]
            ch, cw = min(config.crop, x.shape[1]), min(2 * config.crop, x.shape[2])
            oy = int(torch.randint(x.shape[1] - ch + 1, (1,), generator=gen))
            ox = int(torch.randint(x.shape[2] - cw + 1, (1,), generator=gen))
            xb.append(x[:, oy:oy + ch, ox:ox + cw])
            yb.append(y[oy:oy + ch, ox:ox + cw])
        shapes = {t.shape for t in yb}
        if len(shapes) > 1:  # images of different sizes: crop all to the smallest
            h, w = min(s[0] for s in shapes), min(s[1] for s in shapes)
            xb, yb = [t[:, :h, :w] for t in xb], [t[:h, :w] for t in yb]
        segmentation_step(model, opt, sched, torch.stack(xb).to(device), torch.stack(yb).to(device), weight)
    model.eval()
