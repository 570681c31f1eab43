"""2D teachers: protocols, results, disk cache, and one class per real backend.

Protocols and results live in :mod:`.base`, the disk cache in :mod:`.cache`, the table of
backends and the weight check in :mod:`.registry`. Backend classes load their weights
lazily through ``transformers`` (``from_pretrained``) or wrap a ready model
(``from_model``); importing this package imports neither torch nor ``transformers``.
"""

from __future__ import annotations

from crossdistill._lazy import lazy_getattr

# names are imported from their modules on first use, so that importing this package (or a
# torch-free module of it, such as ``sam_settings``) does not import torch or transformers
_LAZY = {
    "WeightsNotFoundError": "crossdistill.teachers._hf",
    "local_model_dir": "crossdistill.teachers._hf",
    "models_dir": "crossdistill.teachers._hf",
    "LEVEL_PART": "crossdistill.teachers.base",
    "LEVEL_SUBPART": "crossdistill.teachers.base",
    "LEVEL_WHOLE": "crossdistill.teachers.base",
    "FeatureMaps": "crossdistill.teachers.base",
    "FeatureTeacher": "crossdistill.teachers.base",
    "InstanceSet": "crossdistill.teachers.base",
    "InstanceTeacher": "crossdistill.teachers.base",
    "MaskSet": "crossdistill.teachers.base",
    "MaskTeacher": "crossdistill.teachers.base",
    "PartPredictions": "crossdistill.teachers.base",
    "SemanticMap": "crossdistill.teachers.base",
    "SemanticTeacher": "crossdistill.teachers.base",
    "TextTeacher": "crossdistill.teachers.base",
    "TeacherCache": "crossdistill.teachers.cache",
    "cached": "crossdistill.teachers.cache",
    "default_cache_dir": "crossdistill.teachers.cache",
    "hash_array": "crossdistill.teachers.cache",
    "views_key": "crossdistill.teachers.cache",
    "ClipSegTextTeacher": "crossdistill.teachers.clipseg",
    "Dinov2FeatureTeacher": "crossdistill.teachers.dinov2",
    "GroundingDinoTextTeacher": "crossdistill.teachers.grounding_dino",
    "Mask2FormerInstanceTeacher": "crossdistill.teachers.mask2former",
    "Owlv2TextTeacher": "crossdistill.teachers.owlv2",
    "BACKENDS": "crossdistill.teachers.registry",
    "BackendInfo": "crossdistill.teachers.registry",
    "TeacherStatus": "crossdistill.teachers.registry",
    "load_teacher": "crossdistill.teachers.registry",
    "teacher_status": "crossdistill.teachers.registry",
    "AutoMaskSettings": "crossdistill.teachers.sam",
    "SamMaskTeacher": "crossdistill.teachers.sam",
    "SegformerSemanticTeacher": "crossdistill.teachers.segformer",
    "BilinearUpsampler": "crossdistill.teachers.upsample",
    "JointBilateralUpsampler": "crossdistill.teachers.upsample",
}


__getattr__ = lazy_getattr("crossdistill.teachers", _LAZY, globals())
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
