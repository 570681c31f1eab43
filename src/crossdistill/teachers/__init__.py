"""2D teachers: protocols, results, disk cache, and one class per real backend.

Protocols and results live in :mod:`.base`, the disk cache in :mod:`.cache`, the table of
backends and the weight check in :mod:`.registry`. Backend classes load their weights
lazily through ``transformers`` (``from_pretrained``) or wrap a ready model
(``from_model``); importing this package does not import ``transformers``.
"""

from crossdistill.teachers._hf import WeightsNotFoundError, local_model_dir, models_dir
from crossdistill.teachers.base import (
    LEVEL_PART,
    LEVEL_SUBPART,
    LEVEL_WHOLE,
    FeatureMaps,
    FeatureTeacher,
    InstanceSet,
    InstanceTeacher,
    MaskSet,
    MaskTeacher,
    PartPredictions,
    SemanticMap,
    SemanticTeacher,
    TextTeacher,
)
from crossdistill.teachers.cache import TeacherCache, cached, default_cache_dir, hash_array, views_key
from crossdistill.teachers.clipseg import ClipSegTextTeacher
from crossdistill.teachers.dinov2 import Dinov2FeatureTeacher
from crossdistill.teachers.grounding_dino import GroundingDinoTextTeacher
from crossdistill.teachers.mask2former import Mask2FormerInstanceTeacher
from crossdistill.teachers.owlv2 import Owlv2TextTeacher
from crossdistill.teachers.registry import BACKENDS, BackendInfo, TeacherStatus, load_teacher, teacher_status
from crossdistill.teachers.sam import AutoMaskSettings, SamMaskTeacher
from crossdistill.teachers.segformer import SegformerSemanticTeacher
from crossdistill.teachers.upsample import BilinearUpsampler, JointBilateralUpsampler

__all__ = [
    "FeatureTeacher", "MaskTeacher", "TextTeacher", "InstanceTeacher", "SemanticTeacher",
    "FeatureMaps", "MaskSet", "PartPredictions", "InstanceSet", "SemanticMap",
    "LEVEL_WHOLE", "LEVEL_PART", "LEVEL_SUBPART",
    "TeacherCache", "cached", "default_cache_dir", "hash_array", "views_key",
    "WeightsNotFoundError", "models_dir", "local_model_dir",
    "BACKENDS", "BackendInfo", "TeacherStatus", "load_teacher", "teacher_status",
    "BilinearUpsampler", "JointBilateralUpsampler",
    "Dinov2FeatureTeacher", "SamMaskTeacher", "AutoMaskSettings", "ClipSegTextTeacher",
    "Owlv2TextTeacher", "GroundingDinoTextTeacher", "Mask2FormerInstanceTeacher", "SegformerSemanticTeacher",
]
