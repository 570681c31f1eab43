"""The SAM-mode report (``bench/segment_emulated_report.py``) scores `ours` with the field trained
as the default trains it for each kind of shape (``rules.SAM_RULES``), not always the fast preset's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from segment_emulated_report import BALANCE_VARIANTS, shipped_variant, write_report  # noqa: E402

from crossdistill.methods.sampart3d.rules import SAM_RULES  # noqa: E402


def _run(track: str, variant: str, strength: str, category: str, ours: float) -> dict:
    """One cached run of the bench, as ``run_one`` stores it (only the fields the report reads)."""
    score = {"link": ours, "leaf": ours - 0.1}
    res = {"name": f"{category}/1", "category": category, "dataset": "partnet", "track": track,
           "variant": variant, "strength": strength, "seconds": 10.0, "peak_rss_mib": 100.0,
           "ours": {"best": score, "per_scale": [score] * 5},
           "rules": {"none": {"best": score, "per_scale": [score] * 5},
                     "all_render_rules": {"best": score, "per_scale": [score] * 5}},
           "lift": {"best": {"link": 0.5, "leaf": 0.4}}, "visible_ceiling": {"link": 0.95, "leaf": 0.9}}
    if variant == "fast" and strength == "zero":
        geo = {"best": {"link": 0.3, "leaf": 0.2}}
        res.update({"region_grow": geo, "kmeans": geo} if track == "points" else {"cc": geo, "kmeans": geo})
    return res


def test_shipped_variant_follows_the_rules_of_each_kind_of_shape() -> None:
    for ds, track, kind in (("partnet", "points", "points"), ("psb", "points", "points"),
                            ("partnet", "mesh", "pieces"), ("psb", "mesh", "closed_surface")):
        r = SAM_RULES[kind]
        want = (BALANCE_VARIANTS[(r.push_floor, r.group_balance)] if r.group_balance > 0
                else "push_floor" if r.push_floor else "fast")
        assert shipped_variant(ds, track) == want
    assert shipped_variant("partnet", "points") == "push_floor_balance_half"  # SAM_RULES["points"] now
    # where the shipped variant was not run at a strength, the report falls back to the fast preset
    assert shipped_variant("partnet", "points", {}, "zero") == "fast"


@pytest.mark.parametrize("track", ["points", "mesh"])
def test_targets_use_the_shipped_variant(tmp_path: Path, track: str) -> None:
    runs = [_run(track, v, s, c, ours)
            for c in ("Bottle", "Box")
            for v, ours in (("fast", 0.6), ("push_floor", 0.8), ("push_floor_balance_half", 0.9),
                            ("balance_half", 0.7))
            for s in ("zero", "medium")]
    write_report(runs, tmp_path / "r", "test", threads=1)
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    expect = {"push_floor": 0.8, "push_floor_balance_half": 0.9, "fast": 0.6,
              "balance_half": 0.7}[shipped_variant("partnet", track)]
    zero = [t for t in summary["targets"] if t["what"] == f"zero partnet {track} link"]
    medium = [t for t in summary["targets"] if t["what"] == f"medium partnet {track} link"]
    assert zero and zero[0]["value"] == pytest.approx(expect)
    assert medium and medium[0]["ours"] == pytest.approx(expect)
    assert medium[0]["lift"] == pytest.approx(0.5)


def test_a_screen_on_some_categories_says_so(tmp_path: Path) -> None:
    runs = [_run("points", v, s, "Bottle", 0.7) for v in ("fast", "push_floor") for s in ("zero", "medium")]
    write_report(runs, tmp_path / "screen", "test", threads=1, dataset_categories={"partnet": ["Bottle", "Box"]})
    write_report(runs, tmp_path / "grid", "test", threads=1, dataset_categories={"partnet": ["Bottle"]})
    assert "A screen on some categories only" in (tmp_path / "screen.md").read_text()
    assert "A screen on some categories only" not in (tmp_path / "grid.md").read_text()


def test_pieces_screen_is_chosen_on_fold_a_and_checked_on_fold_b(tmp_path: Path) -> None:
    """The pieces screen compares its candidates with the shipped rules of meshes of pieces on the same
    fields: fold A (Bottle) chooses, fold B (Box) must gain too; it stays out of the rule cross-validation."""
    from segment_emulated_report import PIECES_SCREEN

    def run(category: str, strength: str, gains: dict[str, float]) -> dict:
        r = _run("mesh", "fast", strength, category, 0.6)
        for name in PIECES_SCREEN:
            s = 0.6 + gains.get(name, 0.0)
            r["rules"][name] = {"best": {"link": s, "leaf": s - 0.1}, "per_scale": []}
        return r

    cats = {"partnet": ["Bottle", "Box"]}
    both = [run("Bottle", s, {"pieces_until_1": 0.05, "pieces_until_1.5": 0.02}) for s in ("zero", "medium")]
    for fold_b, adopted in ((0.03, "pieces_until_1"), (-0.03, None)):
        runs = both + [run("Box", s, {"pieces_until_1": fold_b}) for s in ("zero", "medium")]
        write_report(runs, tmp_path / "r", "test", threads=1, dataset_categories=cats)
        summary = json.loads((tmp_path / "r.json").read_text())["summary"]
        assert summary["pieces_screen"] == {"best_on_a": "pieces_until_1", "adopted": adopted}
        assert not set(PIECES_SCREEN) & set(summary["rules_cv"]["pieces"])  # not a candidate of the CV
