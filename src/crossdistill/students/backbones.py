"""Point networks by name: the stage-1 backbones :mod:`crossdistill.methods.sampart3d.pretrain` can train.

* ``"light"``: :class:`~crossdistill.students.point_student.PointStudent`, kNN pooling blocks
  (``width`` channels, ``n_blocks`` blocks);
* ``"ptv3"``: :class:`~crossdistill.students.ptv3_object.PTv3Object` with the CPU preset
  :meth:`~crossdistill.students.ptv3_object.PTv3Config.small`;
* ``"ptv3-paper"``: the same network with SAMPart3D's PTv3-object configuration
  (:meth:`~crossdistill.students.ptv3_object.PTv3Config.paper`).

The PTv3 presets fix their own widths; ``width`` and ``n_blocks`` apply to ``"light"`` only.
Every network maps ``(feats (B, N, 9), knn (B, N, 2k))`` to ``(B, N, n_classes)`` and has an
``n_classes`` attribute.
"""

from __future__ import annotations

import torch.nn as nn

__all__ = ["BACKBONES", "make_point_net"]

BACKBONES = ("light", "ptv3", "ptv3-paper")


def make_point_net(name: str, n_classes: int, width: int = 96, n_blocks: int = 4) -> nn.Module:
    """A freshly initialised point network of kind ``name`` (one of :data:`BACKBONES`).

    Raises:
        ValueError: an unknown name.

    Example:
        >>> make_point_net("ptv3", 8).n_classes
        8
    """
    if name == "light":
        from crossdistill.students.point_student import PointStudent

        return PointStudent(n_classes, width=width, n_blocks=n_blocks)
    if name in ("ptv3", "ptv3-paper"):
        from crossdistill.students.ptv3_object import PTv3Config, PTv3Object

        return PTv3Object(n_classes, PTv3Config.small() if name == "ptv3" else PTv3Config.paper())
    raise ValueError(f"unknown point backbone {name!r}; choose from {', '.join(BACKBONES)}")
