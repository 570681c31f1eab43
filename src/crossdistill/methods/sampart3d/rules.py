"""Steps of ours beyond SAMPart3D, in one place: what each does, and which teachers get it.

SAMPart3D as published trains the grouping field on the points' own inputs, clusters its
features with HDBSCAN at a scale and votes the point labels onto the faces. Everything
else stage 3 can do is a named rule here, with its own small settings. Each rule is on
only for the mask teachers where a category-level cross-validation (settings chosen on
some categories, reported on the others) showed it helps; the measurements are in
``docs/results/segment_emulated.md`` (SAM-like masks, through the mask emulator) and
``docs/results/segment_clustering.md`` (the offline render-cue teacher).

Rules (field of :class:`PartRules` -- what it does):

* ``piece_codes`` -- meshes: a random code of each point's connected piece is appended to the
  field's F_B input (connectivity as a cue).
* ``push_floor`` -- training: the push term of Eq. 5 never weighs less than the pull term
  (:class:`.train.GroupingTrainConfig`); with the released code's pair-share weights, images
  where one large part dominates let its pulls outweigh a small part's pushes, and the field
  collapses parts together. Like ``piece_codes`` it acts when the field is trained, so
  re-scoring a trained field under other rules (``pipeline.with_rules``) cannot change it.
* ``group_balance`` -- training: a view's pixels are drawn with probability n^-a (n: the pixel
  count of their group at the step's scale; :class:`.train.GroupingTrainConfig`) instead of
  uniformly, so a small part's mask is supervised about as often as a large part's (0: off).
  A training rule, like ``push_floor``.
* ``face_spill`` -- meshes: a label holding less than this share of its area inside a piece
  is spill-over there and takes the piece's majority label (0: off).
* ``pieces`` -- meshes: parts are kept inside connected pieces (split where a part spans
  pieces) at scales below ``pieces_until``; at and above it parts may span pieces as the
  field groups them. Inside a piece, parts below ``piece_fragment`` of its area fold into
  its main part, except in a piece holding at least ``dominant_piece`` of the object, where
  only parts below ``dominant_fragment`` fold, and not those a 2D mask confirms (visible-
  restricted IoU at least ``fragment_support``, :mod:`.support`; with ``support_everywhere``
  a part the masks confirm does not fold inside any piece; without ``silhouette_support`` a
  mask holding more than :data:`SILHOUETTE_SHARE` of what its view sees confirms nothing).
  ``fragment_fold`` says where
  a fragment goes: "majority", the piece's largest part; "similar", smallest first, the part
  of its piece whose mean grouping feature at the query scale is nearest, until no fragment
  is left (:func:`.vote.fold_fragments_by_feature`).
* ``point_region_deg`` -- point clouds: every smooth region (normals within this angle between
  neighbours) takes its majority part (None: off).
* ``join_margin`` -- clusters whose mean features lie closer than this multiple of the push
  margin are joined, at scales at least ``join_from_scale`` (None there: 1.0 on meshes, 0.0
  on point clouds); None: HDBSCAN's clusters as they are.
* ``part_vote`` -- after the rules above, whole parts that the 2D masks group together at the
  query scale are merged (:mod:`.part_votes`: each view votes for every pair of parts it shows;
  average linkage merges while the share of agreeing views is at least ``part_vote``, over at
  least ``part_vote_min_views`` views, counting a part in a view from ``part_vote_min_points``
  visible points); None: off.
* ``hdbscan_epsilon`` -- HDBSCAN's ``cluster_selection_epsilon`` for this teacher in place of the
  preset's (both presets use the released code's 0.1; the offline teacher's rules were chosen
  with 0.0 and keep it); None: the preset's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class PartRules:
    """Stage-3 rules beyond the paper (see the module docstring); the defaults are all off."""

    piece_codes: bool = False
    push_floor: bool = False
    group_balance: float = 0.0
    face_spill: float = 0.0
    pieces: bool = False
    pieces_until: float | None = None
    piece_fragment: float = 0.2
    dominant_piece: float | None = 0.8
    dominant_fragment: float = 0.1
    fragment_support: float | None = 0.3
    support_everywhere: bool = False
    silhouette_support: bool = True
    fragment_fold: str = "majority"
    point_region_deg: float | None = None
    join_margin: float | None = None
    join_from_scale: float | None = None
    hdbscan_epsilon: float | None = None
    part_vote: float | None = None
    part_vote_min_views: int = 3
    part_vote_min_points: int = 3

    def __post_init__(self) -> None:
        if self.fragment_fold not in ("majority", "similar"):
            raise ValueError(f"fragment_fold must be 'majority' or 'similar', got {self.fragment_fold!r}")

    def keep_in_pieces(self, scale: float) -> bool:
        """Are parts kept inside connected pieces at this query scale?"""
        return self.pieces and (self.pieces_until is None or scale < self.pieces_until)

    def join_at(self, scale: float, is_mesh: bool) -> float | None:
        """The join distance (multiple of the push margin) used at this scale, or None."""
        if self.join_margin is None:
            return None
        start = self.join_from_scale if self.join_from_scale is not None else (1.0 if is_mesh else 0.0)
        return self.join_margin if scale >= start else None

    def merged_pieces(self) -> "PartRules":
        """These rules with parts allowed to span pieces at every scale (``--merge-pieces``)."""
        return replace(self, pieces=False)

    @property
    def names(self) -> list[str]:
        """Names of the rules that are on."""
        on = []
        if self.piece_codes:
            on.append("piece_codes")
        if self.push_floor:
            on.append("push_floor")
        if self.group_balance > 0:
            on.append(f"group_balance={self.group_balance:g}")
        if self.face_spill > 0:
            on.append("face_spill")
        if self.pieces:
            on.append("pieces" if self.fragment_fold == "majority" else f"pieces(fold={self.fragment_fold})")
            if self.support_everywhere and self.fragment_support is not None:
                on.append("support_everywhere")
            if not self.silhouette_support and self.fragment_support is not None:
                on.append("no_silhouette_support")
        if self.point_region_deg is not None:
            on.append("point_regions")
        if self.join_margin is not None:
            on.append("join")
        if self.hdbscan_epsilon is not None:
            on.append(f"hdbscan_epsilon={self.hdbscan_epsilon:g}")
        if self.part_vote is not None:
            on.append(f"part_vote={self.part_vote:g}")
        return on


#: share of a view's visible points from which a mask is that view's silhouette (``silhouette_support``)
SILHOUETTE_SHARE = 0.95

#: SAMPart3D as published: no rule.
PAPER_RULES = PartRules()

#: The offline render-cue teacher (cuts at depth, creases, colour and mesh pieces): every rule,
#: chosen on PartNet-Mobility and measured in ``docs/results/segment_clustering.md``.
RENDER_CUE_RULES = PartRules(piece_codes=True, face_spill=0.5, pieces=True, pieces_until=2.0, piece_fragment=0.2,
                             dominant_piece=0.8, dominant_fragment=0.1, fragment_support=0.3,
                             point_region_deg=10.0, join_margin=1.0, join_from_scale=None, hdbscan_epsilon=0.0)

#: The kinds of shape the rules are chosen for: a mesh that is not one closed surface (objects
#: assembled from pieces, open surfaces), a closed single surface (one connected watertight
#: piece: :func:`crossdistill.teachers.geometric_parts.shape_kind_of` tells which), a point cloud.
SHAPE_KINDS = ("pieces", "closed_surface", "points")

#: no stage-3 rule; in training the push floor and group-balanced pixels (a = 0.5)
_POINT_TRAINING = replace(PAPER_RULES, push_floor=True, group_balance=0.5)

#: SAM-like masks (SAM, and the mask emulator that stands in for it on benchmarks), per shape
#: kind: what held up under the category-level cross-validation of
#: ``docs/results/segment_emulated.md`` (chosen on fold A, a gain on fold B), decided per kind:
#: on meshes of pieces every render-cue rule but the piece codes (the field's input stays as
#: published); on closed surfaces and point clouds no stage-3 candidate gained on fold A. Point
#: clouds train with the push floor (chosen on fold A at strength zero, reported on fold B:
#: ``docs/results/segment_emulated_zero.md``) and group-balanced pixels at a = 0.5 (a declared
#: confirmation on objects outside the grid: ``docs/results/segment_emulated_balance_confirm.md``,
#: after the screen ``segment_emulated_balance_screen.md``; segment_notes.md item 22). Closed
#: surfaces train with group-balanced pixels at a = 0.5 too (chosen on fold A of the mesh screen
#: ``segment_emulated_balance_mesh_screen.md``, confirmed on psb meshes outside the grid:
#: ``segment_emulated_balance_mesh_confirm.md``; notes item 23), without the push floor (on 2
#: meshes per psb category it neither gains nor loses beyond a few hundredths of a point on fold
#: B). Meshes of pieces train with group-balanced pixels too (a = 0.5), together with
#: ``support_everywhere``: uniform draws leave small parts (a laptop's touchpad, a toaster's knobs)
#: on the point of the part around them, and balanced draws separate them, but the piece rule
#: folded them unless the masks confirmed them inside a dominant piece; the pair was chosen on
#: fold A of a declared screen and gained on fold B too (``docs/results/segment_small_parts.md``;
#: silhouette masks confirm nothing there, a guard that changed no grid result and keeps a box seen
#: face-on from confirming each face: ``segment_small_parts_guard.md``;
#: balance alone, on one draw with the rules of then, had not gained on fold A:
#: ``docs/results/segment_emulated_balance_mesh_screen.md``). On meshes of pieces the parts the
#: views' masks group are then merged (``part_vote`` = 0.5: chosen on fold A of a declared screen,
#: gaining on fold B too, ``docs/results/segment_part_vote.md``; the point-set version that ships,
#: confirmed on both folds, ``docs/results/segment_part_vote_points.md``); so are they on closed
#: surfaces (chosen on fold A of a declared screen of the psb meshes, gaining on fold B too:
#: ``docs/results/segment_part_vote_psb.md``) and, at t = 0.7, on point clouds (chosen on fold A of
#: the PartNet-Mobility and psb point clouds together, gaining on fold B of both:
#: ``docs/results/segment_part_vote_point_clouds.md``).
SAM_RULES: dict[str, PartRules] = {"pieces": replace(RENDER_CUE_RULES, piece_codes=False, part_vote=0.5,
                                                     group_balance=0.5, support_everywhere=True,
                                                     silhouette_support=False),
                                   "closed_surface": replace(PAPER_RULES, group_balance=0.5, part_vote=0.5),
                                   "points": replace(_POINT_TRAINING, part_vote=0.7)}

#: The geometric part teacher (spectral partitions of closed single surfaces): no rule, as it was
#: measured in ``docs/results/segment_single_surface.md``.
GEOMETRIC_PART_RULES = PAPER_RULES

#: mask kind of a teacher (``teacher.mask_kind``) -> its rules (one set, or one per shape kind);
#: a teacher without the attribute is taken to be SAM-like (a real 2D model).
RULES_BY_MASK_KIND: dict[str, PartRules | dict[str, PartRules]] = {
    "render-cues": RENDER_CUE_RULES, "sam-like": SAM_RULES, "geometric-parts": GEOMETRIC_PART_RULES}


def rules_for_teacher(teacher, shape_kind: str = "pieces") -> PartRules:
    """The default rules for a mask teacher (by its ``mask_kind``, default "sam-like") on a shape
    of ``shape_kind`` (:data:`SHAPE_KINDS`); None stands for the offline render-cue teacher."""
    if shape_kind not in SHAPE_KINDS:
        raise ValueError(f"shape_kind must be one of {SHAPE_KINDS}, got {shape_kind!r}")
    if teacher is None:
        return RENDER_CUE_RULES
    rules = RULES_BY_MASK_KIND.get(getattr(teacher, "mask_kind", "sam-like"), SAM_RULES)
    return rules[shape_kind] if isinstance(rules, dict) else rules
