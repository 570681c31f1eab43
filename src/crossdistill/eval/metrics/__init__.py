"""Segmentation metrics, each defined once, in numpy (no torch), vectorised.

Every score is a fraction in [0, 1] (papers print x100). Label arrays are integer;
``-1`` means "nothing" as everywhere in crossdistill (see :mod:`crossdistill.types`).
Overlaps come from one weighted contingency table (``np.bincount`` over
``gt * P + pred``), or a mask matrix product for overlapping 2D masks, never a loop over
points. The few loops left run over predictions (greedy matching is sequential).

Families and the convention each follows:

* class-agnostic part mIoU (SAMPart3D / PartObjaverse-Tiny): :func:`class_agnostic_miou`
* semantic part mIoU: PartNetE / PartSLIP :func:`partnete_miou`; ShapeNetPart
  instance / category mIoU :func:`shapenetpart_miou`
* instance AP at IoU 0.5 (per object and per category): :func:`instance_ap`,
  :func:`match_instances`, :func:`category_ap`
* unsupervised 2D parts (PartDistillation): :func:`nmi`, :func:`ari` (:mod:`.clustering`),
  and the Princeton Segmentation Benchmark's :func:`rand_index_error`,
  :func:`average_recall` (:mod:`.instances`)
* LiDAR semantic segmentation: :func:`confusion_matrix`, :func:`per_class_iou`,
  :func:`miou`, :class:`ConfusionAccumulator`

Topic modules: :mod:`.parts` (part mIoU), :mod:`.instances` (AP / AR), :mod:`.clustering`
(NMI / ARI), :mod:`.lidar` (confusion / IoU); their public names are re-exported here.
"""

from __future__ import annotations

from crossdistill.eval.metrics._common import COCO_IOU_THRESHOLDS
from crossdistill.eval.metrics.clustering import ari, nmi, rand_index_error
from crossdistill.eval.metrics.instances import (
    Detections,
    average_precision,
    average_recall,
    category_ap,
    instance_ap,
    match_instances,
)
from crossdistill.eval.metrics.lidar import (
    ConfusionAccumulator,
    SegmentationScores,
    confusion_matrix,
    miou,
    per_class_iou,
)
from crossdistill.eval.metrics.parts import (
    PartIoUResult,
    SemanticPartResult,
    ShapeNetPartResult,
    class_agnostic_miou,
    class_agnostic_part_ious,
    partnete_miou,
    shapenetpart_miou,
    shapenetpart_shape_ious,
)

__all__ = [
    "COCO_IOU_THRESHOLDS", "PartIoUResult", "class_agnostic_part_ious", "class_agnostic_miou",
    "SemanticPartResult", "partnete_miou", "shapenetpart_shape_ious", "ShapeNetPartResult",
    "shapenetpart_miou", "Detections", "match_instances", "average_precision", "instance_ap",
    "category_ap", "nmi", "ari", "rand_index_error", "average_recall", "confusion_matrix", "per_class_iou", "miou",
    "SegmentationScores", "ConfusionAccumulator",
]
