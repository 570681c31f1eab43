"""PartDistill (Umam et al., CVPR 2024): bi-directional distillation from a 2D teacher to a 3D student.

1. **Knowledge extraction**: every shape of the category is rendered (PartSLIP / PartDistill
   use 10 views), a :class:`~crossdistill.teachers.base.TextTeacher` predicts the named
   parts in every view (boxes or masks with confidences), and each prediction is
   back-projected onto the shape's sampled points (:func:`.knowledge.backproject`).
2. **Forward distillation**: one 3D student is trained over *all* shapes at once on the
   predictions at least ``min_score`` confident, weighted by confidence, with no loss on
   points no prediction covers (:mod:`.student_training`).
3. **Backward distillation**: the student scores every 2D prediction of the pool
   (including those below ``min_score``) by the mean probability it gives the
   prediction's label on the prediction's points. Predictions it disagrees with
   (score < ``keep_agreement``) are dropped, the others are kept with the student's
   score as their new confidence (so a low-confidence 2D prediction the student supports
   enters the training set), and a student is trained on the refined set: a fresh one, or
   the previous one continued (``backward_init``), optionally on the predictions cut to the
   student's own mask of their part (``backward_refine``). Repeated ``backward_rounds`` times.

Also here: :func:`lift_knowledge`, the PartSLIP-style baseline that labels each point by
the confidence-weighted vote of the 2D predictions covering it, filling uncovered points
from their nearest covered neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from crossdistill.errors import InputError
from crossdistill.geometry.normalize import normalize_shape
from crossdistill.geometry.sampling import sample_surface
from crossdistill.methods.partdistill.knowledge import Knowledge, backproject, vote_share
from crossdistill.methods.partdistill.student_training import (ShapePoints, StudentConfig, predict_probs,
                                                               train_student)
from crossdistill.render.cameras import orbit_rig
from crossdistill.render.renderer import render_shape
from crossdistill.students.point_student import PointStudent, point_features
from crossdistill.teachers.base import TextTeacher
from crossdistill.types import Cameras, Shape, SurfaceSample

__all__ = ["DistillConfig", "DistillShape", "DistillResult", "PartDistill", "partdistill_rig", "lift_knowledge",
           "shape_points", "select_by_agreement", "BACKWARD_RULES",
           "BACKWARD_INITS", "BACKWARD_SCORES", "CLASS_WEIGHT_STAGES", "LIFT_VOTES"]


BACKWARD_RULES = ("absolute", "class_relative", "reweight")
BACKWARD_INITS = ("fresh", "continue")
BACKWARD_SCORES = ("student", "product")
BACKWARD_EVIDENCE = ("forward", "kept")
CLASS_WEIGHT_STAGES = ("all", "forward")


def select_by_agreement(agreement: np.ndarray, labels: np.ndarray, n_parts: int, keep: float,
                        rule: str = "absolute", reference_quantile: float = 0.9,
                        used: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Backward distillation's choice of 2D predictions from the student's agreement with them.

    Args:
        agreement: (K,) the student's mean probability of each prediction's label over its points.
        labels: (K,) part index of each prediction.
        n_parts: P.
        keep: the threshold ``keep_agreement``.
        rule: ``"absolute"``: keep when agreement >= keep; new score = agreement.
            ``"class_relative"``: the reference of class c is the ``reference_quantile`` of
            the agreements of c's predictions; keep when agreement >= keep * reference;
            new score = min(1, agreement / reference). Small parts get low agreement even
            when right (the student is less sure of them everywhere); this compares each
            prediction with its own class (class-adaptive thresholds, as in FlexMatch).
            ``"reweight"`` (the released PartDistill code): every prediction forward
            distillation used (``used``) is kept with its agreement as its new weight,
            dropped only at agreement 0; a pooled prediction below the forward threshold
            enters when its agreement is at least ``keep``. The caller passes as agreement
            the share of the prediction's points where the student's most probable part
            is its label (the IoU weight of the released code).
        used: (K,) bool, the predictions forward distillation trained on (``"reweight"``
            only; default: all).

    Returns:
        keep (K,) bool, scores (K,) float32 of every prediction.
    """
    agreement = np.asarray(agreement, np.float64)
    labels = np.asarray(labels, np.int64)
    if rule == "absolute":
        return agreement >= keep, agreement.astype(np.float32)
    if rule == "reweight":
        used = np.ones(len(agreement), bool) if used is None else np.asarray(used, bool)
        return np.where(used, agreement > 0, agreement >= keep), agreement.astype(np.float32)
    if rule != "class_relative":
        raise ValueError(f"unknown backward rule {rule!r}")
    ref = np.ones(n_parts)
    for c in range(n_parts):
        if np.any(labels == c):
            ref[c] = max(float(np.quantile(agreement[labels == c], reference_quantile)), 1e-6)
    return agreement >= keep * ref[labels], np.minimum(1.0, agreement / ref[labels]).astype(np.float32)


@dataclass(frozen=True)
class DistillConfig:
    """PartDistill settings.

    Attributes:
        views: rendered views per shape (two orbit rings at +-30 deg, ``views // 2`` each).
        min_score: forward distillation uses 2D predictions at least this confident (0.5 kept
            after the choice among 0.1 / 0.3 / 0.5 in ``partdistill_emulated.md``).
        image_size: render size in pixels (chosen in ``partdistill_emulated.md``).
        pool_min_score: predictions below this are not even kept for backward re-scoring.
        backward_rounds: backward distillation rounds (0: forward only).
        keep_agreement: a prediction survives backward distillation when the student's
            mean probability of its label on its points (its agreement) is at least this
            (``backward_rule="absolute"``), or at least this times its class's reference
            agreement (``"class_relative"``, see :func:`select_by_agreement`).
        backward_rule: "class_relative" (default: chosen with the detector-like teacher emulator,
            box-level, on the selection categories of ``partdistill_emulated.md``; with the
            few-shot pixel-level teacher it was worse on the 5-category mean, see
            ``partdistill_class_relative.md``), "absolute" or "reweight" (the released code's
            soft rule: see :func:`select_by_agreement`).
        backward_init: "continue" (default: the backward student starts from the previous
            student's weights and trains on the re-scored knowledge, as the released code does: it
            reloads its best forward checkpoint and keeps training; chosen over "fresh" and two
            rounds at the students' own budget on the selection categories, and better on the
            held-out ones too, in ``partdistill_emulated_budget.md``) or "fresh" (new weights, seed
            + round; the earlier default, chosen at the bench's smaller CPU budget in
            ``partdistill_emulated_backward.md``).
        backward_refine: 0 (off) or r in (0, 1]: before the backward student trains, every kept
            prediction is cut to the points where the student's probability of its label is at
            least r times its maximum over the prediction (:meth:`.knowledge.Knowledge.refine`:
            a box becomes the student's mask of the part inside it). Re-scoring still reads the
            whole prediction. Default 0.5 (the one value tried, chosen over off and the other
            backward options on the selection categories in ``partdistill_emulated_backward.md``).
        backward_score: the new confidence of a kept prediction: "student" (the student's score
            of :func:`select_by_agreement` replaces the teacher's, as in the paper) or "product"
            (the teacher's confidence times the student's score, so re-scoring can only lower a
            prediction's weight and the teacher's ranking between parts is kept).
        per_point_mean: the student's targets are the mean instead of the sum of the confidences
            of the predictions covering a point (the released code's loss; see
            :meth:`.knowledge.Knowledge.point_targets`), so points covered by few predictions
            (thin parts) weigh as much as points covered by many.
        negative_weight: lambda of negative learning in every student's loss (0: off; default 2:
            negative learning and then lambda 2 over 1 were each adopted by a declared screen with
            the detector-like teacher emulator's boxes, chosen on the selection categories and
            confirmed on the held-out ones, in ``partdistill_emulated_budget.md``, which also checks
            lambda 1 against 0 and 2 with its masks; :func:`teacher_negative_weight` gives mask teachers
            lambda 1 and turns it off for the few-shot teacher, where it scored lower: notes items 20-21).
            A point visible in a view where a part has a forward prediction but outside all of that
            part's predictions there is evidence against the part
            (:meth:`.knowledge.Knowledge.negative_targets` of the forward knowledge, times lambda;
            :func:`.student_training.masked_soft_ce`). Needs the knowledge's visibility
            (:func:`.knowledge.backproject` keeps it); without it the term is zero.
        specificity: gamma of the specificity weighting of the students' knowledge (0: off): every
            prediction's votes and evidence are its confidence times ``min(share^-gamma, 10)``, share
            the part of its view's visible points it covers (:meth:`.knowledge.Knowledge.specificity`),
            so a small part's box, which lies inside the body's box in every view, is not outvoted by
            it. Default 0.5: adopted by a declared screen with the detector-like teacher emulator's boxes,
            chosen on the selection categories and confirmed on the held-out ones
            (``partdistill_specificity.md``, notes item 22); :func:`teacher_specificity` turns it off for
            mask teachers, where a declared check scored lower, and for the few-shot teacher (not measured).
        backward_evidence: the evidence against parts a backward student learns from: ``"forward"``
            (default: the forward knowledge's, :func:`forward_evidence`) or ``"kept"`` (that of the
            predictions re-scoring kept, with the teacher's confidences and boxes, so a wrong box the
            student rejected no longer says where its part is not).
        share_targets: the students' target at a covered point is, for each part covering it,
            :func:`.knowledge.vote_share` of its votes and the forward knowledge's evidence against
            it (the share of the views that saw the part there which cover the point; PartSLIP's
            normalised vote as a soft target) instead of the summed votes. Excludes
            ``per_point_mean``.
        class_weight_stages: which students ``student.class_weights`` applies to: "all" (forward and
            backward) or "forward" (the backward students train unweighted).
        student: the student's settings (points per shape, network, steps).
    """

    views: int = 10
    image_size: int = 128
    min_score: float = 0.5
    pool_min_score: float = 0.05
    backward_rounds: int = 1
    keep_agreement: float = 0.5
    backward_rule: str = "class_relative"
    backward_init: str = "continue"
    backward_refine: float = 0.5
    backward_score: str = "student"
    per_point_mean: bool = False
    class_weight_stages: str = "all"
    negative_weight: float = 2.0
    specificity: float = 0.5
    backward_evidence: str = "forward"
    share_targets: bool = False
    student: StudentConfig = field(default_factory=StudentConfig)

    def __post_init__(self) -> None:
        if self.backward_rule not in BACKWARD_RULES:
            raise InputError(f"backward_rule must be one of {BACKWARD_RULES}, got {self.backward_rule!r}")
        if self.backward_init not in BACKWARD_INITS:
            raise InputError(f"backward_init must be one of {BACKWARD_INITS}, got {self.backward_init!r}")
        if self.backward_evidence not in BACKWARD_EVIDENCE:
            raise InputError(f"backward_evidence must be one of {BACKWARD_EVIDENCE}, got {self.backward_evidence!r}")
        if self.backward_score not in BACKWARD_SCORES:
            raise InputError(f"backward_score must be one of {BACKWARD_SCORES}, got {self.backward_score!r}")
        if self.class_weight_stages not in CLASS_WEIGHT_STAGES:
            raise InputError(f"class_weight_stages must be one of {CLASS_WEIGHT_STAGES}, "
                             f"got {self.class_weight_stages!r}")
        if not (np.isfinite(self.negative_weight) and self.negative_weight >= 0):
            raise InputError(f"negative_weight must be finite and >= 0, got {self.negative_weight!r}")
        if not (np.isfinite(self.specificity) and self.specificity >= 0):
            raise InputError(f"specificity must be finite and >= 0, got {self.specificity!r}")
        if self.share_targets and self.per_point_mean:
            raise InputError("share_targets and per_point_mean are two different targets: choose one")
        if not 0.0 <= self.backward_refine <= 1.0:
            raise InputError(f"backward_refine must be in [0, 1], got {self.backward_refine!r}")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("views", "image_size", "min_score", "pool_min_score", "backward_rounds",
                                           "keep_agreement", "backward_rule", "backward_init", "backward_refine",
                                           "backward_score", "per_point_mean", "class_weight_stages",
                                           "negative_weight", "specificity", "backward_evidence",
                                           "share_targets")}
        d["student"] = self.student.to_dict()
        return d


def partdistill_rig(views: int = 10, size: int = 128) -> Cameras:
    """Two orbit rings at +-30 deg elevation, ``views // 2`` azimuths each (``views`` even, >= 2)."""
    if views < 2 or views % 2:
        raise InputError(f"PartDistill renders an even number of views >= 2, got {views}")
    return orbit_rig((30.0, -30.0), views // 2, size)


def shape_points(shape: Shape, n_points: int, k: int, seed: int = 0, name: str = "") -> tuple[Shape, SurfaceSample,
                                                                                             ShapePoints]:
    """Unit-box copy of ``shape``, its N surface samples and the student's view of them."""
    unit, _ = normalize_shape(shape)
    samples = sample_surface(unit, n_points, seed=seed)
    feats = point_features(samples.points, samples.normals, samples.colors)
    return unit, samples, ShapePoints.build(feats, k, name or shape.source)


@dataclass
class DistillShape:
    """One shape ready for distillation.

    Attributes:
        name: identifier.
        shape: the unit-box shape.
        samples: its N sampled points.
        points: the student's input.
        knowledge: every 2D prediction of the pool back-projected onto the points.
    """

    name: str
    shape: Shape
    samples: SurfaceSample
    points: ShapePoints
    knowledge: Knowledge


@dataclass
class DistillResult:
    """What :meth:`PartDistill.fit` produces.

    Attributes:
        forward_student: the student after forward distillation.
        student: the final student (after the backward rounds; the forward one when 0 rounds).
        knowledge: the refined knowledge of every shape the final student trained on.
        rounds: per stage, counts of predictions used / dropped / added.
    """

    forward_student: PointStudent
    student: PointStudent
    knowledge: list[Knowledge]
    rounds: list[dict]


def _count(knowledge: Sequence[Knowledge]) -> int:
    return int(sum(len(k) for k in knowledge))


def forward_evidence(knowledge: Sequence[Knowledge], n_parts: int, config: DistillConfig) -> list[np.ndarray] | None:
    """Per shape, (N, P) the forward knowledge's evidence against each part, specificity-weighted
    (:meth:`.knowledge.Knowledge.negative_targets`); None when neither negative learning nor share
    targets use it."""
    if not (config.negative_weight > 0 or config.share_targets):
        return None
    return [k.weighted_by_specificity(config.specificity).negative_targets(n_parts) for k in knowledge]


def student_signal(knowledge: Sequence[Knowledge], evidence: Sequence[np.ndarray] | None, n_parts: int,
                   config: DistillConfig) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """What a student trains on: per shape, (N, P) targets and (N, P) negative-learning weights (None: off).

    Targets are the specificity-weighted votes of ``knowledge`` (or their share of ``evidence`` with
    ``share_targets``); the negative weights are ``negative_weight`` times ``evidence``
    (:func:`forward_evidence`).
    """
    targets = [k.weighted_by_specificity(config.specificity).point_targets(n_parts, config.per_point_mean)
               for k in knowledge]
    if config.share_targets:
        targets = [vote_share(t, e) for t, e in zip(targets, evidence)]
    w = config.negative_weight
    negatives = [w * e for e in evidence] if w > 0 else None
    return targets, negatives


class PartDistill:
    """Bi-directional distillation of a text teacher into a point student for one category.

    Args:
        teacher: any :class:`TextTeacher` (a real detector / segmenter, or the offline
            few-shot teacher).
        part_names: the P part names, the prompts and the student's classes.
        config: :class:`DistillConfig`.
        device: torch device of the student.
        progress: tqdm bars.
    """

    def __init__(self, teacher: TextTeacher, part_names: Sequence[str], config: DistillConfig = DistillConfig(),
                 device: str = "cpu", progress: bool = True) -> None:
        if not part_names:
            raise InputError("PartDistill needs at least one part name")
        self.teacher = teacher
        self.part_names = tuple(part_names)
        self.config = config
        self.device = device
        self.progress = progress
        self.rig = partdistill_rig(config.views, config.image_size)

    # ------------------------------------------------------------------ knowledge

    def prepare(self, shape: Shape, name: str = "") -> DistillShape:
        """Render, ask the teacher, back-project: one shape's 2D knowledge on its points."""
        if not shape.is_mesh:
            raise InputError(f"{name or shape.source}: PartDistill renders meshes (got a point cloud)")
        cfg = self.config.student
        unit, samples, points = shape_points(shape, cfg.n_points, cfg.k, cfg.seed, name)
        res = render_shape(unit, self.rig, samples=samples, progress=False)
        preds = self.teacher.predict(res.views, self.part_names)
        knowledge = backproject(preds, res.correspondence)
        knowledge = knowledge.subset(knowledge.scores >= self.config.pool_min_score)
        return DistillShape(name or shape.source, unit, samples, points, knowledge)

    def prepare_all(self, shapes: Sequence[tuple[str, Shape]]) -> list[DistillShape]:
        return [self.prepare(s, n) for n, s in tqdm(list(shapes), desc="2D knowledge", disable=not self.progress)]

    # ------------------------------------------------------------------ distillation

    def _train(self, items: Sequence[DistillShape], knowledge: Sequence[Knowledge], stage: int,
               desc: str, init: PointStudent | None = None,
               evidence: Sequence[np.ndarray] | None = None) -> PointStudent:
        """One student: ``stage`` 0 is forward distillation, r > 0 backward round r (seed + r).

        ``evidence``: per shape, (N, P) the forward knowledge's evidence against each part
        (:meth:`.knowledge.Knowledge.negative_targets`), for negative learning and share targets.
        """
        P = len(self.part_names)
        cfg = replace(self.config.student, seed=self.config.student.seed + stage)
        if stage > 0 and self.config.class_weight_stages == "forward":
            cfg = replace(cfg, class_weights=None)
        targets, negatives = student_signal(knowledge, evidence, P, self.config)
        return train_student([s.points for s in items], targets, P, cfg,
                             self.device, self.progress, desc, init=init, negatives=negatives)

    def rescore(self, student: PointStudent, items: Sequence[DistillShape], refine: float | None = None,
                teacher_scores: bool = False) -> tuple[list[Knowledge], dict]:
        """Backward distillation: the student's agreement with every pooled 2D prediction.

        Returns per shape the kept predictions, with the student's scores (``teacher_scores``: the
        teacher's) and cut by ``refine`` (None: ``backward_refine``), and counts of what changed.
        """
        refine = self.config.backward_refine if refine is None else refine
        refined, dropped, added, kept = [], 0, 0, 0
        P = len(self.part_names)
        soft = [predict_probs(student, s.points, self.device) for s in items]
        # reweight: the share of points the student labels with the part (one-hot); else its probabilities
        probs = [np.eye(P, dtype=np.float32)[p.argmax(1)] for p in soft] \
            if self.config.backward_rule == "reweight" else soft
        agree = [s.knowledge.agreement(p) for s, p in zip(items, probs)]
        keep_all, score_all = select_by_agreement(
            np.concatenate(agree), np.concatenate([s.knowledge.labels for s in items]), P,
            self.config.keep_agreement, self.config.backward_rule,
            used=np.concatenate([s.knowledge.scores >= self.config.min_score for s in items]))
        bounds = np.cumsum([0] + [len(a) for a in agree])
        for i, s in enumerate(items):
            keep, score = keep_all[bounds[i]:bounds[i + 1]], score_all[bounds[i]:bounds[i + 1]]
            if teacher_scores:
                score = s.knowledge.scores
            elif self.config.backward_score == "product":
                score = score * s.knowledge.scores
            was_used = s.knowledge.scores >= self.config.min_score
            dropped += int((was_used & ~keep).sum())
            added += int((~was_used & keep).sum())
            kept += int(keep.sum())
            refined.append(s.knowledge.subset(keep).with_scores(score[keep]).refine(soft[i], refine))
        return refined, {"kept": kept, "dropped_from_forward": dropped, "added_from_pool": added}

    def fit(self, items: Sequence[DistillShape], forward: PointStudent | None = None) -> DistillResult:
        """Forward distillation, then ``backward_rounds`` rounds of re-scoring and re-training.

        ``forward``: a student already trained by forward distillation on these ``items``
        with this config (e.g. from an earlier fit that differs only in the backward
        settings); it is used as is instead of training one.
        """
        if not items:
            raise InputError("no shapes to distil into")
        forward_k = [s.knowledge.subset(s.knowledge.scores >= self.config.min_score) for s in items]
        if _count(forward_k) == 0:
            raise InputError(f"the teacher made no prediction at least {self.config.min_score} confident "
                             "on any shape: nothing to distil")
        rounds = [{"stage": "forward", "predictions": _count(forward_k), "pool": _count(s.knowledge for s in items),
                   "covered_points": float(np.mean([k.covered.mean() for k in forward_k]))}]
        P = len(self.part_names)
        evidence = forward_evidence(forward_k, P, self.config)
        student = forward = forward if forward is not None else self._train(items, forward_k, 0,
                                                                             "forward distillation",
                                                                             evidence=evidence)
        knowledge = forward_k
        for r in range(self.config.backward_rounds):
            refined, stats = self.rescore(student, items)
            if _count(refined) == 0:
                rounds.append({"stage": f"backward {r + 1}", "stopped": "the student supports no prediction", **stats})
                break
            knowledge = refined
            rounds.append({"stage": f"backward {r + 1}", "predictions": _count(refined),
                           "covered_points": float(np.mean([k.covered.mean() for k in refined])), **stats})
            if evidence is not None and self.config.backward_evidence == "kept":
                kept, _ = self.rescore(student, items, refine=0.0, teacher_scores=True)
                evidence = forward_evidence(kept, P, self.config)
            student = self._train(items, refined, r + 1, f"backward distillation {r + 1}",
                                  init=student if self.config.backward_init == "continue" else None,
                                  evidence=evidence)
        return DistillResult(forward, student, knowledge, rounds)


LIFT_VOTES = ("sum", "penalised", "share")


#: The students' negative-learning weight by what a zero-shot teacher predicts (its ``prediction_output``):
#: lambda 2 was adopted with box-level knowledge; with mask-level knowledge lambda 2 scored below lambda 1,
#: so by the declared rule masks keep lambda 1 (docs/results/partdistill_emulated_budget.md; notes item 21).
NEGATIVE_WEIGHT_BY_OUTPUT: dict[str, float] = {"box": 2.0, "mask": 1.0}


def _per_teacher(teacher, given: float | None, own_attr: str, by_output: dict[str, float], fallback: float) -> float:
    """A student setting for ``teacher``, in order: ``given``; the teacher's own ``own_attr`` (the few-shot
    teacher has its own); ``by_output`` of its ``prediction_output`` ("box" for OWLv2 and Grounding DINO, "mask"
    for CLIPSeg); else ``fallback`` (``DistillConfig``'s box-level setting, the paper's main one)."""
    if given is not None:
        return float(given)
    own = getattr(teacher, own_attr, None)
    if own is not None:
        return float(own)
    output = getattr(teacher, "prediction_output", None)
    if output is not None and output not in by_output:
        raise ValueError(f"prediction_output must be one of {tuple(by_output)}, got {output!r}")
    return float(by_output.get(output, fallback))


def teacher_negative_weight(teacher, given: float | None = None) -> float:
    """The students' negative-learning weight for ``teacher`` (the few-shot teacher's own is 0;
    :data:`NEGATIVE_WEIGHT_BY_OUTPUT`; see :func:`_per_teacher` for the order)."""
    return _per_teacher(teacher, given, "default_negative_weight", NEGATIVE_WEIGHT_BY_OUTPUT,
                        DistillConfig.negative_weight)


#: The students' specificity gamma by what a zero-shot teacher predicts (its ``prediction_output``): 0.5 was
#: adopted with box-level knowledge; with mask-level knowledge it scored lower, so masks keep it off
#: (docs/results/partdistill_specificity.md).
SPECIFICITY_BY_OUTPUT: dict[str, float] = {"box": 0.5, "mask": 0.0}


def teacher_specificity(teacher, given: float | None = None) -> float:
    """The students' specificity gamma for ``teacher`` (the few-shot teacher's own is 0;
    :data:`SPECIFICITY_BY_OUTPUT`; see :func:`_per_teacher` for the order)."""
    return _per_teacher(teacher, given, "default_specificity", SPECIFICITY_BY_OUTPUT, DistillConfig.specificity)


def lift_knowledge(knowledge: Knowledge, points: np.ndarray, n_parts: int, vote: str = "sum",
                   negative_weight: float = 1.0, specificity: float = 0.0) -> np.ndarray:
    """(N,) int64 labels by confidence-weighted voting of the 2D predictions (PartSLIP-style).

    Args:
        knowledge: the predictions to lift.
        points: (N, 3) the sampled points (to fill uncovered points).
        n_parts: P.
        vote: how a covered point chooses among the parts that cover it, from pos (N, P), the
            summed confidences of the predictions covering it, and neg (N, P),
            :meth:`.knowledge.Knowledge.negative_targets` (views that saw the part and left the
            point outside it): ``"sum"`` argmax pos; ``"penalised"`` argmax pos -
            ``negative_weight`` * neg; ``"share"`` argmax pos / (pos + neg) (PartSLIP's vote,
            normalised by the views where the point is visible and the part detected).
        negative_weight: lambda of ``"penalised"``.
        specificity: gamma of :meth:`.knowledge.Knowledge.specificity`: each prediction's vote and
            evidence are its confidence times its specificity weight (0: off).

    Points no prediction covers take the label of the nearest covered point; with no
    covered point at all every point gets label 0.
    """
    if vote not in LIFT_VOTES:
        raise ValueError(f"unknown lifting vote {vote!r}; expected one of {LIFT_VOTES}")
    knowledge = knowledge.weighted_by_specificity(specificity)
    votes = knowledge.point_targets(n_parts)
    covered = votes.sum(1) > 0
    if vote == "sum":
        score = votes
    else:
        neg = knowledge.negative_targets(n_parts)
        score = votes - negative_weight * neg if vote == "penalised" else vote_share(votes, neg)
        score = np.where(votes > 0, score, -np.inf)
    labels = score.argmax(1).astype(np.int64)
    if covered.any() and not covered.all():
        _, nn = cKDTree(points[covered]).query(points[~covered], k=1)
        labels[~covered] = labels[covered][nn]
    elif not covered.any():
        labels[:] = 0
    return labels
