"""Markdown report and notes of ``bench/teachers.py`` (written from its JSON payload).

    python bench/teachers.py --from-json docs/results/teachers.json   # re-write the report only
"""

from __future__ import annotations

from pathlib import Path


def _parts():
    from crossdistill.teachers.testing import PART_NAMES

    return PART_NAMES


def _f(x: float | None, nd: int = 2) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{nd}f}" if x >= 0.01 else f"{x:.4f}"


def _shape(s) -> str:
    return "x".join(str(d) for d in s[-2:]) if s else "-"


def write_report(payload: dict, out_base: Path, full_configs: dict) -> None:
    """Write ``out_base``.md from the payload; ``full_configs``: backend -> published architecture."""
    m, a = payload["machine"], payload["args"]
    tiny = [r for r in payload["results"] if r["size"] == "tiny"]
    full = [r for r in payload["results"] if r["size"] == "full"]
    L = [
        "# Teacher benchmark: seconds per view on the CPU, and the disk cache",
        "",
        f"Command: `{payload['command']}`  ",
        f"Date: {payload['date']}  ",
        f"Machine: {m['cpu_model']}, nproc {m['nproc']}, Python {m['python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}; **`torch.set_num_threads(1)`** for every measurement  ",
        f"Shared machine: two other long benchmarks ran during these timings and this run was niced "
        f"(`nice -n 19`); 1-minute load average {payload['load_avg_start'][0]:.1f} before and "
        f"{payload['load_avg_end'][0]:.1f} after the run (per full-size row below). Absolute seconds are therefore pessimistic "
        "and noisy; ratios between rows of one table are the useful part.  ",
        f"Total wall time of the run: {payload['total_s']:.0f} s.",
        "",
        f"Views: `{payload['object']}` from `../shared/data/partnet_mobility_dev`, `load_shape` + `normalize_shape`, "
        f"rendered by `render_shape(shape, orbit_rig((20,), {a['views']}, {a['size']}))` "
        f"({a['views']} views of {a['size']}x{a['size']} px, ring at 20 deg elevation; "
        f"render {payload['render_s']:.2f} s, foreground {payload['foreground_fraction']:.1%} of the pixels). "
        f"Text teachers get the 3 prompts {', '.join(payload['part_names'])} (the test tokenizers' words).",
        "",
        "All models have **random weights**, built in code (no download): outputs are noise, costs are real. "
        "Post-processing thresholds are opened up (SAM IoU/stability -1, OWLv2/Grounding DINO/Mask2Former "
        "score 0) so that NMS and mask resizing see every candidate: an upper bound on post-processing.",
        "",
        "## Full-size architectures (random weights)",
        "",
        f"One call on the first 1-2 views through `cached(teacher, TeacherCache(tmpdir))`, no warm-up; "
        f"compute = first call minus the cache write. Stopped after {a['budget']:.0f} s if not finished.",
        "",
        "| backend | params | views | network input | s / view | image encoder s / view | cache write | "
        "second call (cache hit) | saving | entry | load avg | output |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in full:
        if not r["finished"]:
            enc = (f"{_f(r['encoder_s'] / r['views'])} ({r['encoder_calls']} encoder calls done)"
                   if r.get("encoder_calls") else "not reached")
            L.append(f"| {r['backend']} | {r['params_M']:.0f} M | {r['views']} | {_shape(r.get('encoder_input'))} | "
                     f"**not finished in {r['stopped_after_s']:.0f} s** | {enc} | - | - | - | - | "
                     f"{r['load_avg_start']:.1f} -> {r['load_avg_end']:.1f} | - |")
            continue
        extra = ""
        if "to_pixels_s" in r:
            extra = f" ({_f(r['features_s'] / r['views'])} features + {_f(r['to_pixels_s'] / r['views'])} to pixels)"
        L.append(
            f"| {r['backend']} | {r['params_M']:.0f} M | {r['views']} | {_shape(r['encoder_input'])} | "
            f"**{_f(r['per_view_s'])}**{extra} | {_f(r['encoder_s'] / r['views'])} | {_f(r['cache_write_s'])} s | "
            f"{_f(r['cache_second_s'])} s | {r['cache_first_s'] / max(r['cache_second_s'], 1e-9):.0f}x | "
            f"{r['cache_bytes'] / 1e3:.0f} kB | {r['load_avg_start']:.1f} -> {r['load_avg_end']:.1f} | "
            f"{r['summary']} |")
    L += ["", "Model construction (random init + the teacher's weight fingerprint), seconds: "
          + ", ".join(f"{k} {v:.1f}" for k, v in payload["build_full_s"].items()) + ".", "",
          "What \"full size\" is (the published architecture of each backend's default checkpoint):", ""]
    L += [f"- **{k}**: {v}" for k, v in full_configs.items()]
    L += [
        "",
        "## Tiny random configs (the test models)",
        "",
        f"All {a['views']} views per call, after a 1-view warm-up; median of {a['repeats']} calls. Configs: "
        "`crossdistill.teachers.testing.tiny_*` (hidden sizes 16-32, 1-2 layers, 64 px model input size). "
        "DINOv2 runs at a 224 px input here (28x28 patches of 8 px); the other teachers use their default "
        "processors (network input column). These rows measure the teacher code around the network.",
        "",
        "| backend | views | network input | s / view | image encoder s / view | first call (cached) | "
        "second call (cache hit) | saving | model calls 1st / 2nd | entry | output |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in tiny:
        extra = ""
        if "to_pixels_s" in r:
            extra = (f" ({_f(r['features_s'] / r['views'], 3)} + {_f(r['to_pixels_s'] / r['views'], 3)} "
                     "to pixels)")
        L.append(
            f"| {r['backend']} | {r['views']} | {_shape(r['encoder_input'])} | **{_f(r['per_view_s'], 3)}**{extra} | "
            f"{_f(r['encoder_s'] / r['views'], 3)} | {_f(r['cache_first_s'], 3)} s | {_f(r['cache_second_s'], 3)} s | "
            f"{r['cache_first_s'] / max(r['cache_second_s'], 1e-9):.0f}x | "
            f"{r['cache_model_calls'][0]} / {r['cache_model_calls'][1]} | {r['cache_bytes'] / 1e3:.0f} kB | "
            f"{r['summary']} |")
    L += [
        "",
        "## Cache",
        "",
        "`cached(teacher, TeacherCache(tmpdir))`: the first call runs the model and writes one compressed npz "
        "(boolean masks bit-packed), the second call finds the entry by the hash of the rendered rgb + face ids, "
        "the camera rig, the teacher id (and the prompts) and runs no model forward at all (model calls column"
        + ("; full-size rows, model calls 1st / 2nd: "
           + ", ".join(f"{r['backend']} {r['cache_model_calls'][0]} / {r['cache_model_calls'][1]}"
                       for r in full if r["finished"]) if full else "") + "). "
        "For DINOv2 the cache stores the low-resolution patch features; upsampling to pixels (bilinear or JBU) is "
        "lazy and is paid on every use, cached or not (the \"to pixels\" part).",
        "",
        "## Notes",
        "",
    ]
    L += [f"- {n}" for n in payload["notes"]]
    L += [
        "",
        "## GPU",
        "",
        "Not re-measured here (this machine has no GPU). As reported by an earlier session: the teachers test "
        "suite (`pytest tests/teachers`, tiny random models) was run on an NVIDIA H100 with "
        "`CROSSDISTILL_TEST_DEVICE=cuda` (transformers 5.17 there): 46 passed, 1 skipped (the shared-data test, "
        "data absent on that machine). No GPU timings exist yet.",
        "",
        f"Raw numbers: `{out_base.with_suffix('.json').name}`.",
        "",
    ]
    out_base.with_suffix(".md").write_text("\n".join(L))


def notes(results: list[dict], size: int) -> list[str]:
    """Observations drawn from the measured results (full-size runs where they finished)."""
    by = {(r["backend"], r["size"]): r for r in results}
    done = lambda r: r is not None and r.get("finished")  # noqa: E731
    notes = []
    for name in ("dinov2 (jbu)", "dinov2 (bilinear)"):
        r = by.get((name, "full"))
        if done(r):
            notes.append(f"{name} full size: upsampling the 384-channel 32x32 patch features to {size}x{size} "
                         f"px costs {_f(r['to_pixels_s'] / r['views'])} s/view vs "
                         f"{_f(r['features_s'] / r['views'])} s/view for the ViT-S features themselves.")
    s8, s32 = by.get(("sam", "full")), by.get(("sam (32x32 grid)", "full"))
    if done(s8):
        line = (f"SAM full size, 8x8 grid: {_f(s8['encoder_s'] / s8['views'])} s/view in the ViT-B image encoder "
                f"at 1024 px, {_f((s8['call_s'] - s8['encoder_s']) / s8['views'])} s/view for prompts, mask "
                "decoding and post-processing")
        if done(s32):
            rest = (s32["call_s"] - s32["encoder_s"]) / s32["views"]
            enc = s32["encoder_s"] / s32["views"]
            line += (f"; with SAM's default 32x32 grid (16x the prompts) the latter is {_f(rest)} s/view, "
                     f"{'more' if rest > enc else 'less'} than the image encoder ({_f(enc)} s/view in that run)")
        notes.append(line + ".")
    cs = by.get(("clipseg", "full")) or by.get(("clipseg", "tiny"))
    if cs and cs.get("encoder_calls"):
        notes.append(
            f"CLIPSeg encodes every (view, prompt) pair separately: its image tower saw {cs['encoder_images']} "
            f"images for {cs['views']} view(s) x {len(_parts())} prompts in the {cs['size']} run, so its cost "
            "grows linearly with the number of part names (encoding each view once and reusing the activations "
            "for every prompt would divide the image-tower cost by the number of prompts).")
    gd = by.get(("grounding_dino", "full"))
    if done(gd):
        notes.append(f"Grounding DINO full size: the Swin-T backbone is {_f(gd['encoder_s'] / gd['views'])} of "
                     f"{_f(gd['per_view_s'])} s/view; the rest is BERT, the 6-layer deformable encoder over ~13k "
                     "multi-scale tokens of the 800x800 input with text cross-attention, and the 900-query decoder.")
    m2f = by.get(("mask2former", "full"))
    if done(m2f):
        notes.append(f"Mask2Former's cache entry is large ({m2f['cache_bytes'] / 1e6 / m2f['views']:.1f} MB/view; "
                     f"write {_f(m2f['cache_write_s'])} s): the float32 256-channel pixel-decoder features at 1/4 of "
                     "the input dominate it; `feature_dtype=np.float16` halves that part.")
    for r in results:
        if r["size"] == "full" and not r["finished"]:
            notes.append(f"{r['backend']} full size did not finish within the budget: reported as such with what "
                         "completed; rerun with a larger `--budget` for the complete number.")
    return notes
