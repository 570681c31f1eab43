"""Benchmark-only stand-ins for foundation-model teachers, built from ground truth.

Never a default: they exist so that a benchmark can show what a method does with a real
teacher's kind of output when the teacher's weights cannot be had. Every report that uses
one names it.
"""

from crossdistill.eval.emulators.detector import (DETECTOR_STRENGTHS, Detections, DetectorGroundTruth,
                                                  EmulatedDetectorTeacher)
from crossdistill.eval.emulators.masks import (STRENGTHS, EmulatedMaskTeacher, hierarchy_partitions,
                                               segmentation_partitions)

__all__ = ["EmulatedDetectorTeacher", "DetectorGroundTruth", "Detections", "DETECTOR_STRENGTHS",
           "EmulatedMaskTeacher", "STRENGTHS", "hierarchy_partitions", "segmentation_partitions"]
