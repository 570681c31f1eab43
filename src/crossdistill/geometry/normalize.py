"""Move shapes into the unit box (centred at the origin, longest side 1)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from crossdistill.errors import InputError
from crossdistill.types import Shape, UnitBoxTransform

__all__ = ["unit_box_transform", "normalize_shape"]


def unit_box_transform(shape: Shape) -> UnitBoxTransform:
    """Transform mapping the shape's bounding box into the unit box.

    ``center`` is the (3,) bounding-box centre, ``scale`` is 1 / longest side, so
    ``transform.apply(shape.vertices)`` lies in [-0.5, 0.5]^3 with one side spanning it.

    Raises:
        InputError: the shape has zero extent (all points identical) or non-finite bounds.
    """
    lo, hi = shape.bounds
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0 or not np.isfinite(1.0 / extent):
        raise InputError(f"{shape.source or 'shape'}: cannot normalise a shape with zero or non-finite extent")
    return UnitBoxTransform(center=(lo + hi) / 2.0, scale=1.0 / extent)


def normalize_shape(shape: Shape) -> tuple[Shape, UnitBoxTransform]:
    """Copy of ``shape`` moved into the unit box, plus the transform used.

    Only ``vertices`` change (translation + uniform scale leave normals, colours and
    the face order untouched); the input is not modified.

    Example:
        >>> s = Shape(vertices=np.array([[0.0, 0, 0], [2, 1, 1]]))
        >>> unit, tf = normalize_shape(s)
        >>> unit.vertices.tolist(), np.allclose(tf.invert(unit.vertices), s.vertices)
        ([[-0.5, -0.25, -0.25], [0.5, 0.25, 0.25]], True)
    """
    transform = unit_box_transform(shape)
    return replace(shape, vertices=transform.apply(shape.vertices)), transform
