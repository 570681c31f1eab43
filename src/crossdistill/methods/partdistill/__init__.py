"""PartDistill (Umam et al., CVPR 2024): semantic parts of a category by bi-directional distillation.

Modules: :mod:`.knowledge` (back-projection of 2D predictions onto points),
:mod:`.student_training` (mask-aware, confidence-weighted student training),
:mod:`.distill` (forward / backward distillation, the lifting baseline),
:mod:`.predict` (checkpoints, labelling new shapes), :mod:`.data` (labelled folders).
"""

from crossdistill.methods.partdistill.distill import (DistillConfig, DistillResult, DistillShape, PartDistill,
                                                      lift_knowledge, partdistill_rig)
from crossdistill.methods.partdistill.knowledge import Knowledge, backproject
from crossdistill.methods.partdistill.predict import StudentCheckpoint, label_shape, load_student, save_student
from crossdistill.methods.partdistill.student_training import StudentConfig, masked_soft_ce, train_student

__all__ = ["DistillConfig", "DistillResult", "DistillShape", "PartDistill", "lift_knowledge", "partdistill_rig",
           "Knowledge", "backproject", "StudentCheckpoint", "label_shape", "load_student", "save_student",
           "StudentConfig", "masked_soft_ce", "train_student"]
