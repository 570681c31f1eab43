"""`crossdistill distill partdistill` defaults are PartDistill's (DistillConfig), which the emulated
detector bench chose (docs/results/partdistill_emulated.md)."""

from __future__ import annotations

from crossdistill.cli.main import build_parser
from crossdistill.methods.partdistill import DistillConfig


def test_cli_defaults_are_the_method_defaults():
    args = build_parser().parse_args(["distill", "partdistill", "--shapes", "s", "--parts", "a,b", "-o", "o"])
    cfg = DistillConfig()
    assert args.size == cfg.image_size
    assert args.min_score == cfg.min_score
    assert args.backward_rule == cfg.backward_rule
    assert (args.backward_init, args.backward_score, args.backward_refine) == (cfg.backward_init, cfg.backward_score,
                                                                              cfg.backward_refine)
    assert args.views == cfg.views and args.backward_rounds == cfg.backward_rounds
    assert args.iterations == cfg.student.iterations and args.points == cfg.student.n_points
    assert args.class_weight_stages == cfg.class_weight_stages
    assert args.backward_evidence == cfg.backward_evidence
    assert (args.class_weights == "none") == (cfg.student.class_weights is None)
    assert args.negative_weight is None  # resolved per teacher: see the test below
    assert args.share_targets == cfg.share_targets


def test_negative_learning_default_follows_the_teacher():
    from crossdistill.methods.partdistill.distill import teacher_negative_weight as negative_weight
    from crossdistill.teachers.fewshot import FewShotTextTeacher

    class Detector:  # a zero-shot teacher: no default of its own
        teacher_id = "owlv2"

    class MaskDetector:
        teacher_id = "clipseg"
        prediction_output = "mask"

    assert negative_weight(Detector()) == DistillConfig().negative_weight == 2.0
    assert negative_weight(MaskDetector()) == 1.0  # lambda 2 scored lower at mask output
    assert negative_weight(MaskDetector(), 0.0) == 0.0
    assert negative_weight(object.__new__(FewShotTextTeacher)) == 0.0
    assert negative_weight(object.__new__(FewShotTextTeacher), 1.5) == 1.5


def test_real_teachers_name_their_output_and_get_its_weight(tmp_path):
    from crossdistill.eval.emulators.detector import EmulatedDetectorTeacher
    from crossdistill.methods.partdistill.distill import teacher_negative_weight
    from crossdistill.teachers.clipseg import ClipSegTextTeacher
    from crossdistill.teachers.grounding_dino import GroundingDinoTextTeacher
    from crossdistill.teachers.owlv2 import Owlv2TextTeacher
    from crossdistill.teachers.cache import cached

    assert [teacher_negative_weight(object.__new__(c)) for c in
            (Owlv2TextTeacher, GroundingDinoTextTeacher, ClipSegTextTeacher)] == [2.0, 2.0, 1.0]
    assert teacher_negative_weight(EmulatedDetectorTeacher([], output="box")) == 2.0
    assert teacher_negative_weight(EmulatedDetectorTeacher([], output="mask")) == 1.0
    # the teacher cache forwards the attribute, as `crossdistill distill partdistill` wraps its teacher
    assert teacher_negative_weight(cached(EmulatedDetectorTeacher([], output="mask"), tmp_path)) == 1.0


def test_an_unknown_prediction_output_is_refused():
    import pytest

    from crossdistill.methods.partdistill.distill import teacher_negative_weight

    class Odd:
        teacher_id = "odd"
        prediction_output = "polygon"

    with pytest.raises(ValueError, match="prediction_output"):
        teacher_negative_weight(Odd())


def test_specificity_default_follows_the_teacher(tmp_path):
    from crossdistill.eval.emulators.detector import EmulatedDetectorTeacher
    from crossdistill.methods.partdistill.distill import SPECIFICITY_BY_OUTPUT, teacher_specificity
    from crossdistill.teachers.cache import cached
    from crossdistill.teachers.fewshot import FewShotTextTeacher
    from crossdistill.teachers.owlv2 import Owlv2TextTeacher

    args = build_parser().parse_args(["distill", "partdistill", "--shapes", "s", "--parts", "a,b", "-o", "o"])
    assert args.specificity is None  # resolved per teacher
    assert teacher_specificity(object.__new__(Owlv2TextTeacher)) == SPECIFICITY_BY_OUTPUT["box"] == 0.5
    assert DistillConfig().specificity == 0.5  # the box-level setting, as negative_weight's default
    assert teacher_specificity(cached(EmulatedDetectorTeacher([], output="mask"), tmp_path)) == \
        SPECIFICITY_BY_OUTPUT["mask"] == 0.0  # lower with masks: off
    assert teacher_specificity(object.__new__(FewShotTextTeacher)) == 0.0
    assert teacher_specificity(object.__new__(FewShotTextTeacher), 0.5) == 0.5
    assert teacher_specificity(object(), None) == DistillConfig().specificity
