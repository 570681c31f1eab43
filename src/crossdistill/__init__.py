"""crossdistill: distil 2D foundation models into part segmentation where labels are scarce.

The few calls a user needs (imported on first use, so ``import crossdistill`` stays light and
never imports torch)::

    import crossdistill
    shape = crossdistill.load("chair.glb")                 # a Shape (mesh or point cloud)
    seg = crossdistill.segment(shape, preset="fast")       # parts at every scale (SAMPart3D)
    seg.labels(1.0), seg.parts(1.0)                        # per-face labels, Part objects
    seg.save("out/chair")                                  # the `crossdistill segment` layout

Deeper modules (``crossdistill.methods``, ``crossdistill.teachers``, ``crossdistill.render``, ...)
stay importable for researchers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossdistill._lazy import lazy_getattr

from crossdistill.engine.threads import passive_waits

passive_waits()  # idle OpenMP threads sleep instead of spinning (must precede `import torch`)

__version__ = "0.1.0"
__all__ = ["load", "segment", "Segmentation", "Part", "Shape", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from crossdistill.api import Part, Segmentation, load, segment
    from crossdistill.types import Shape

_LAZY = {"load": "crossdistill.api", "segment": "crossdistill.api", "Segmentation": "crossdistill.api",
         "Part": "crossdistill.api", "Shape": "crossdistill.types"}


__getattr__ = lazy_getattr("crossdistill", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
