"""The part_vote bench (``bench/segment_part_vote.py``) judges issue #22's medium targets on the mean
over seeds 0-2: ours minus each seed's own lifting (>= +5) and ours minus the best geometric baseline
(>= +10), with only the objects every seed has."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import segment_part_vote  # noqa: E402


def _run(name: str, seed: int, ours: float, voted: float, lift: float, cc: float | None) -> dict:
    score = lambda v: [{"link": v - 0.05, "leaf": v - 0.05}, {"link": v, "leaf": v}]  # best of two scales
    run = {"name": name, "category": name.split("/")[0], "strength": "medium", "seed": seed,
           "shipped": score(ours), "part_vote": {"0.5": score(voted)}, "lift": score(lift),
           "cc": None if cc is None else {"link": cc, "leaf": cc}}
    return run


def test_targets_are_judged_on_the_seed_mean_against_lifting_and_geometry() -> None:
    segment_part_vote.METRICS = ("link", "leaf")
    runs = []
    for seed, lift in ((0, 0.60), (1, 0.66), (2, 0.63)):
        # ours 0.70 shipped, 0.76 with the vote; connected components 0.62 on every seed
        runs += [_run("Box/1", seed, 0.70, 0.76, lift, 0.62), _run("Pot/2", seed, 0.70, 0.76, lift, 0.62)]
    runs.append(_run("Cup/3", 0, 0.10, 0.10, 0.0, 0.62))  # seed 0 only: must not count
    lines = segment_part_vote.target_lines(runs, "0.5", ["0.5"])
    text = "\n".join(lines)
    # shipped: ours - lifting = 70 - mean(60, 66, 63) = +7.0; ours - cc = +8.0: missed on geometry
    assert "- shipped rules: ours - lifting +7.0 / +7.0 (target >= +5), ours - connected components +8.0 / +8.0" in text
    assert text.count("**MISSED**") == 1
    # the vote: +13.0 over lifting, +14.0 over connected components: met
    assert "with part_vote 0.5 (adopted): ours - lifting +13.0 / +13.0" in text and "+14.0 / +14.0 (target >= +10): **met**" in text
    assert "Objects every seed has: 2." in text


def test_targets_are_not_judged_without_every_seed() -> None:
    segment_part_vote.METRICS = ("link", "leaf")
    runs = [_run("Box/1", seed, 0.7, 0.7, 0.6, 0.5) for seed in (1, 2)]
    lines = segment_part_vote.target_lines(runs, None, ["0.5"])
    assert any("Not judged: the runs cover seeds 1, 2." in line for line in lines)


def test_without_connected_components_the_geometric_baseline_comes_from_the_seed_report(tmp_path: Path,
                                                                                        monkeypatch) -> None:
    segment_part_vote.METRICS = ("miou", "ri")
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "segment_emulated_seeds.json").write_text(
        '{"tracks": {"psb/points": {"metrics": {"miou": {"geometry": "region_grow", "geometry_value": 0.3},'
        ' "ri": {"geometry": "region_grow", "geometry_value": 0.7}}}}}')
    monkeypatch.setattr(segment_part_vote, "REPO", tmp_path)
    runs = []
    for seed in (0, 1, 2):
        s = [{"miou": 0.8, "ri": 0.9}]
        runs.append({"name": "Cup/1", "category": "Cup", "strength": "medium", "seed": seed, "shipped": s,
                     "part_vote": {}, "lift": [{"miou": 0.7, "ri": 0.86}], "cc": None})
    text = "\n".join(segment_part_vote.target_lines(runs, None, [], "psb", "points"))
    # ri: 90 - 86 = +4 over lifting: missed, though mIoU (+10) and geometry (+50 / +20) hold
    assert "ours - lifting +10.0 / +4.0 (target >= +5), ours - normal region growing, best of 5 angles +50.0 / +20.0" in text
    assert "**MISSED**" in text


def _write_run(cache: Path, name: str, seed: int, shipped: float, voted: dict[str, float]) -> None:
    import json

    run = {"name": name, "category": name.split("/")[0], "strength": "medium", "seed": seed,
           "shipped": [{"miou": shipped, "ri": shipped}],
           "part_vote": {t: [{"miou": v, "ri": v}] for t, v in voted.items()}, "cc": None}
    f = cache / "medium" / f"seed{seed}" / (name.replace("/", "_") + ".json")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(run))


def test_a_joint_screen_takes_the_best_mean_fold_a_gain_and_needs_every_fold_to_gain(tmp_path: Path) -> None:
    here = {"0.5": {"A": 0.4, "B": 0.2}, "0.7": {"A": 0.2, "B": 0.3}}
    # the other dataset (folds: Ant, Cat = A; Bee = B): 0.5 loses on its fold A, 0.7 gains everywhere
    for seed in (1, 2):
        _write_run(tmp_path, "Ant/1", seed, 0.80, {"0.5": 0.78, "0.7": 0.81})
        _write_run(tmp_path, "Bee/1", seed, 0.80, {"0.5": 0.85, "0.7": 0.82})
        _write_run(tmp_path, "Cat/1", seed, 0.80, {"0.5": 0.79, "0.7": 0.80})
    decision, lines = segment_part_vote.joint_decision(here, tmp_path, ["0.5", "0.7"])
    # mean fold A: 0.5 -> (0.4 + -1.5) / 2 < 0.7 -> (0.2 + 0.5) / 2
    assert decision == "0.7"
    assert any("part_vote 0.7 (+0.350)" in line and "**adopted**" in line for line in lines)
    here["0.7"]["B"] = -0.1  # a loss on one fold B of one dataset stops it
    decision, lines = segment_part_vote.joint_decision(here, tmp_path, ["0.5", "0.7"])
    assert decision is None and any("**not adopted**" in line for line in lines)
