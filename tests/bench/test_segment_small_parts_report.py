"""The small-parts bench (``bench/segment_small_parts.py``) chooses on fold A and checks on fold B, judges a
guard against the adopted rules (a tie is not a loss), and judges issue #22's PartNet-mesh medium target with
the adopted candidate on the mean over seeds 0-2."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import segment_small_parts  # noqa: E402


def _scores(v: float) -> list[dict]:
    return [{"link": v - 0.1, "leaf": v - 0.1}, {"link": v, "leaf": v}]  # best of two scales


def _run(name: str, seed: int, shipped: float, s: float, b: float, bs: float, bsg: float | None = None) -> dict:
    balanced = {"shipped": _scores(b), "support_everywhere": _scores(bs)}
    if bsg is not None:
        balanced["support_everywhere_no_silhouette"] = _scores(bsg)
    return {"name": name, "category": name.split("/")[0], "strength": "medium", "seed": seed,
            "uniform": {"shipped": _scores(shipped), "support_everywhere": _scores(s)}, "balanced": balanced,
            "lift": _scores(0.5), "cc": {"link": 0.6, "leaf": 0.6}}


def test_fold_gains_are_taken_against_what_shipped_or_a_reference() -> None:
    runs = [_run("Box/1", 1, 0.70, 0.71, 0.75, 0.80, 0.80), _run("Cup/2", 1, 0.70, 0.69, 0.72, 0.74, 0.73)]
    gains = segment_small_parts.fold_gains(runs, ["Box"], ["S", "B", "BS"])
    assert round(gains["BS"]["A"], 6) == 10.0 and round(gains["BS"]["B"], 6) == 4.0
    assert round(gains["S"]["B"], 6) == -1.0
    guard = segment_small_parts.fold_gains(runs, ["Box"], ["BSG"], reference="BS")
    assert guard["BSG"]["A"] == 0.0 and round(guard["BSG"]["B"], 6) == -1.0
    # a run made before the guard existed has no BSG scores
    assert segment_small_parts._has(runs[0], "BSG") and not segment_small_parts._has(_run("Box/3", 1, *[0.7] * 4), "BSG")


def test_the_target_is_judged_with_the_adopted_candidate_on_the_seed_mean() -> None:
    runs = [_run(n, seed, 0.68, 0.68, 0.70, 0.72 + 0.01 * seed) for seed in (0, 1, 2) for n in ("Box/1", "Cup/2")]
    text = "\n".join(segment_small_parts.target_lines(runs, "BS"))
    # before: 68 - 60 (connected components) = +8: missed; BS: 73 - 60 = +13 on the mean, lifting 50: +23
    assert "- shipped before the screen: ours - lifting +18.0 / +18.0 (target >= +5), ours - connected components " \
           "+8.0 / +8.0 (target >= +10): **MISSED**" in text
    assert "- BS (adopted): ours - lifting +23.0 / +23.0 (target >= +5), ours - connected components +13.0 / +13.0 " \
           "(target >= +10): **met**" in text
    assert "Not judged" in "\n".join(segment_small_parts.target_lines([r for r in runs if r["seed"] > 0], "BS"))
