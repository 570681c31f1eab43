"""SAMPart3D stage 1 with PTv3-object against the light network: step cost, and segment quality.

1. **Cost of a training step** at stage 1's point counts (``PretrainConfig``: 4096 points per
   shape, 4 shapes per step) for the light kNN network, PTv3-object's CPU preset (``ptv3``)
   and SAMPart3D's PTv3-object configuration (``ptv3-paper``), on real prepared shapes (the
   offline teacher's 33 target channels). Each measurement runs in its own process (peak
   resident memory is that process's), one torch thread, under a memory cap; rounds alternate
   the networks so a load change on the shared machine hits them alike.
2. **Segment quality with each as stage 1.** Both CPU-trainable networks are distilled on the
   same PartNet-Mobility objects that no segment benchmark scores (``bench/pretrain.py``'s
   pretraining set: ids after the first 8 of each category), with the same steps and
   optimiser, then the held-out meshes of ``bench/segment_clustering.py`` are segmented with
   the default `SegmentConfig` and each backbone feeding the grouping field's F_B branch, and once with
   the positional encoding (no backbone). Best of the paper's 5 scales, class-agnostic mIoU x100.

    python bench/ptv3.py                     # writes docs/results/ptv3.md / .json
    python bench/ptv3.py --per-category 2     # twice the held-out meshes (about twice the time)

No setting here is chosen from a segment score: the presets are fixed beforehand (the CPU
preset for its step time), so no category split is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results" / "ptv3"
CACHE = REPO / "bench" / "_cache" / "ptv3"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def worker(spec: dict) -> dict:
    """Time ``spec["steps"]`` training steps of one network in this process (after one warm-up step)."""
    cap = int(spec["cap_gb"] * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import torch

    torch.set_num_threads(1)
    from crossdistill.students.backbones import make_point_net

    z = np.load(spec["data"])
    B = spec["batch"]
    inputs, knn = torch.from_numpy(z["inputs"][:B]), torch.from_numpy(z["knn"][:B])
    target, seen = torch.from_numpy(z["target"][:B]), torch.from_numpy(z["seen"][:B])
    torch.manual_seed(0)
    out: dict = {"name": spec["name"], "batch": B, "points": int(inputs.shape[1])}
    try:
        net = make_point_net(spec["name"], target.shape[-1]).train()
        out["parameters"] = sum(p.numel() for p in net.parameters())
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        rss0 = _rss_mb()
        times = []
        for i in range(spec["steps"] + 1):
            t = time.perf_counter()
            loss = ((net(inputs, knn) - target) ** 2).mean(-1)[seen].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i or time.perf_counter() - t > spec.get("max_step_s", 1e9):
                times.append(time.perf_counter() - t)
            if time.perf_counter() - t > spec.get("max_step_s", 1e9):
                out["first_step_only"] = i == 0  # one (cold) step is enough to state a cost this large
                break
        out.update(step_s=times, before_mb=rss0,
                   peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except (MemoryError, RuntimeError) as exc:
        out["error"] = str(exc).splitlines()[0][:200]
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_worker(spec: dict, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"no result within {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {**spec, "error": f"worker exit {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1][:200]}"}
    return json.loads(lines[-1])


def timing(files: list[Path], args) -> list[dict]:
    from crossdistill.geometry.io import load_shape
    from crossdistill.methods.sampart3d.pretrain import PretrainConfig, prepare_shape
    from crossdistill.teachers.offline_features import RenderFeatureTeacher

    data_path = CACHE / "timing_batch.npz"
    if not data_path.exists():
        cfg, teacher = PretrainConfig(), RenderFeatureTeacher()
        shapes = [prepare_shape(load_shape(p), teacher, cfg, seed=i) for i, p in enumerate(files[:4])]
        np.savez(data_path, inputs=np.stack([s.inputs for s in shapes]), knn=np.stack([s.knn for s in shapes]),
                 target=np.stack([s.target for s in shapes]).astype(np.float32),
                 seen=np.stack([s.seen for s in shapes]))
    rows = []

    def run(name: str, batch: int, steps: int, cap: float, **extra) -> None:
        rows.append({**run_worker(dict(name=name, batch=batch, steps=steps, data=str(data_path), cap_gb=cap, **extra),
                                  900), **extra, "load_after": os.getloadavg()[0]})
        r = rows[-1]
        print(r.get("error") or f"{name} B={batch}: {np.median(r['step_s']):.2f} s/step, peak {r['peak_mb']:.0f} MB",
              flush=True)

    for r in range(args.rounds):  # the two CPU networks alternate at stage 1's batch
        for name in ("light", "ptv3"):
            run(name, 4, args.timing_steps, args.cap_gb, round=r)
    for name in ("light", "ptv3"):  # one shape per step: the batch the paper's network can take here
        run(name, 1, args.timing_steps, args.cap_gb)
    # the paper's network: a GPU network, one step is its cost on this CPU; 4 shapes is tried under the cap
    for batch in (1, 4):
        run("ptv3-paper", batch, 2, args.paper_cap_gb, max_step_s=60)
        if "error" in rows[-1]:
            break
    return rows


def held_out(per_category: int) -> list[tuple[str, str]]:
    """(category, id) of the meshes after the first 4 ids of each category (``bench/segment_clustering.py``'s
    held-out objects; the main segment benchmark uses the first 4, pretraining the ids after the 8th)."""
    root = DATA / "partnet_mobility_dev"
    out = []
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir()):
        ids = sorted((p.stem for p in (root / cat).glob("*.glb")), key=lambda s: (len(s), s))
        out += [(cat, i) for i in ids[4:4 + per_category]]
    return out


def quality(files: list[Path], args) -> dict:
    import torch

    from crossdistill.eval.segment_protocol import score_levels
    from crossdistill.eval.segment_report import load_labelled
    from crossdistill.geometry.io import load_shape
    from crossdistill.methods.sampart3d.pipeline import SegmentConfig, segment_shape
    from crossdistill.io_utils import write_json
    from crossdistill.methods.sampart3d.pretrain import PointBackbone, PretrainConfig, prepare_shape, pretrain_backbone
    from crossdistill.teachers.offline_features import RenderFeatureTeacher

    torch.set_num_threads(1)
    teacher = RenderFeatureTeacher()
    backbones, train = {}, {}
    data = None
    for name in ("light", "ptv3"):
        path = CACHE / f"backbone_{name}_{args.steps}.pt"
        meta_path = path.with_suffix(".json")
        if not path.exists():
            config = PretrainConfig(steps=args.steps, backbone=name)
            if data is None:
                t0 = time.perf_counter()
                data = [prepare_shape(load_shape(p), teacher, config, seed=i) for i, p in enumerate(files)]
                train["prep_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = pretrain_backbone(data, teacher.teacher_id, config, progress=True)
            commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
            write_json(meta_path, {"train_s": time.perf_counter() - t0, "losses": result.losses.tolist(),
                                   "shapes": len(data), "load_after": os.getloadavg()[0], "commit": commit})
            result.backbone.save(path)
        backbones[name] = PointBackbone.load(path)
        train[name] = json.loads(meta_path.read_text())
        print(f"{name}: trained in {train[name]['train_s']:.0f} s, loss {np.mean(train[name]['losses'][:20]):.3f} -> "
              f"{np.mean(train[name]['losses'][-20:]):.3f}", flush=True)

    rows = []
    for cat, oid in held_out(args.per_category):
        row_path = CACHE / "rows" / f"{args.steps}_{cat}_{oid}.json"
        if row_path.exists():
            rows.append(json.loads(row_path.read_text()))
            continue
        obj = load_labelled(DATA, "mesh", cat, oid)
        weights = obj.shape.face_areas
        row: dict = {"name": obj.name, "category": cat, "id": oid, "seconds": {}}
        for variant, bb in (("positional encoding", None), ("light", backbones["light"]),
                            ("ptv3", backbones["ptv3"])):
            t0 = time.perf_counter()
            seg = segment_shape(obj.shape, SegmentConfig(), backbone=bb, progress=False)
            per_scale = [score_levels(seg.labels(i), obj.labels, weights) for i in range(len(seg.scales))]
            row["seconds"][variant] = time.perf_counter() - t0
            row[variant] = {lvl: 100.0 * max(s[lvl] for s in per_scale) for lvl in per_scale[0]}
        write_json(row_path, row)
        rows.append(row)
        print(row["name"], {v: round(row[v]["link"], 1) for v in ("positional encoding", "light", "ptv3")}, flush=True)
    return {"train": train, "rows": rows}


def report(tim: list[dict], qual: dict, args, load_start: float, t_wall: float) -> None:
    import torch

    from crossdistill.io_utils import write_json, write_text

    light = [r for r in tim if r.get("name") == "light" and "step_s" in r and "round" in r]
    small = [r for r in tim if r.get("name") == "ptv3" and "step_s" in r and "round" in r]
    ratios = [np.median(s["step_s"]) / np.median(lt["step_s"]) for lt, s in zip(light, small)]
    peak_ratios = [(s["peak_mb"] - s["before_mb"]) / max(lt["peak_mb"] - lt["before_mb"], 1.0)
                   for lt, s in zip(light, small)]

    def trow(r: dict) -> str:
        if "error" in r:
            return f"| {r['name']} | {r.get('batch')} x {r.get('points', 4096)} | {r.get('parameters', 0):,} | " \
                   f"failed: {r['error']} | - | {r.get('peak_mb', 0):.0f} |"
        return (f"| {r['name']} | {r['batch']} x {r['points']} | {r['parameters']:,} | "
                f"{np.median(r['step_s']):.2f} ({len(r['step_s'])} step{'s' if len(r['step_s']) > 1 else ''}"
                f"{', cold' if r.get('first_step_only') else ''}) | {r['peak_mb'] - r['before_mb']:.0f} | "
                f"{r['peak_mb']:.0f} |")

    loads = [r["load_after"] for r in tim if "load_after" in r]
    rows = qual["rows"]
    variants = ("positional encoding", "light", "ptv3")
    mean = {v: {lvl: float(np.mean([r[v][lvl] for r in rows])) for lvl in ("link", "leaf")} for v in variants}
    wins = sum(r["ptv3"]["link"] > r["light"]["link"] + 1e-9 for r in rows)
    losses = sum(r["ptv3"]["link"] < r["light"]["link"] - 1e-9 for r in rows)
    tr = qual["train"]
    cats = sorted({r["category"] for r in rows})
    lines = [
        "# SAMPart3D stage 1: PTv3-object against the light network", "",
        "Command: `python bench/ptv3.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "") + "`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}; wall {t_wall / 60:.0f} min for this invocation (parts found in "
        "`bench/ptv3.py`'s cache `bench/_cache/ptv3` are reused, not re-measured: the training times below are "
        "those of the run that made them)  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other "
        f"engineers' jobs), torch {torch.__version__}, 1 torch thread everywhere; 1-minute load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end of this invocation; "
        + (f"{min(loads):.1f}-{max(loads):.1f} after each timing process. " if loads else
           "the step costs below come from the cache, measured in an earlier invocation whose load was not recorded "
           "(the machine was shared then too). ")
        + "Absolute times are under load; the ratios compare runs measured back to back in the same round.", "",
        "## Cost of one training step (CPU)", "",
        "Real prepared shapes (PartNet-Mobility pretraining set, offline teacher, 33 target channels), AdamW, "
        "forward + backward + step; each row its own process. Memory: resident-set growth over the step "
        "(activations, gradients, optimiser state) and the process's peak.", "",
        "| network | shapes x points | parameters | s per step (median) | step memory MB | peak RSS MB |",
        "|---|---|---|---|---|---|",
        *[trow(r) for r in tim], "",
        f"PTv3 CPU preset / light, same round: time x{np.median(ratios):.2f} (rounds: "
        f"{', '.join(f'{x:.2f}' for x in ratios)}), step memory x{np.median(peak_ratios):.2f}.", "",
        "`ptv3-paper` is SAMPart3D's PTv3-object configuration (5 stages, 31 blocks, 384 channels at the end, "
        "patches of 1024, no pooling); one step is its cost here. It is a GPU network (SAMPart3D trained it on "
        "8 GPUs); this bench has no GPU, so no GPU timing is reported.", "",
        f"## Segment quality with each as stage 1 ({len(rows)} held-out meshes, {len(cats)} categories)", "",
        f"- Pretraining: {tr['light']['shapes']} PartNet-Mobility meshes (ids after the first 8 of each category; "
        "labels not read, none scored), 4096 points, 12 views of 224 px, offline render-feature teacher "
        f"(no DINOv2 weights here), {args.steps} steps of 4 shapes, AdamW lr 2e-3 with warm-up and cosine decay "
        f"(`PretrainConfig` defaults; {args.steps} steps instead of 400 to fit the time budget), same data and "
        "seed for both networks; "
        + (f"trained at commit {tr['light']['commit']}." if tr["light"].get("commit") else
           "trained by `pretrain_backbone` as it was when the cache `bench/_cache/ptv3` was made (commit not "
           "recorded; a rerun with an empty cache retrains through the current training loop)."),
        f"- Training time: light {tr['light']['train_s']:.0f} s, ptv3 {tr['ptv3']['train_s']:.0f} s. Loss (MSE in "
        f"standardised teacher units, seen points), first 20 -> last 20 steps: light "
        f"{np.mean(tr['light']['losses'][:20]):.3f} -> {np.mean(tr['light']['losses'][-20:]):.3f}, ptv3 "
        f"{np.mean(tr['ptv3']['losses'][:20]):.3f} -> {np.mean(tr['ptv3']['losses'][-20:]):.3f}.",
        f"- Segmentation: the ids after the first 4 of each category ({args.per_category} per category where "
        f"there are more than 4: {', '.join(cats)}), `segment_shape` with the default `SegmentConfig` (offline "
        "mask teacher), best of its 5 scales, "
        "class-agnostic mIoU x100.", "",
        "| grouping field input (F_B) | link | leaf |", "|---|---|---|",
        *[f"| {v if v == 'positional encoding' else v + ' backbone'} | {mean[v]['link']:.1f} | "
          f"{mean[v]['leaf']:.1f} |" for v in variants], "",
        f"PTv3 scores higher than the light backbone on {wins} of {len(rows)} objects and lower on {losses} (link).", "",
        "| object | positional encoding | light | ptv3 |", "|---|---|---|---|",
        *[f"| {r['name']} | " + " | ".join(f"{r[v]['link']:.1f} / {r[v]['leaf']:.1f}" for v in variants) + " |"
          for r in rows], "",
    ]
    lines += reading(tim, mean, rows, np.median(ratios), np.median(peak_ratios), args, tr)
    write_text(OUT.with_suffix(".md"), "\n".join(lines) + "\n" + args.notes)
    write_json(OUT.with_suffix(".json"), {"timing": tim, "quality": qual, "mean": mean, "steps": args.steps,
                                          "load_start": load_start, "load_end": os.getloadavg()[0]})
    print("\n".join(lines))


def reading(tim: list[dict], mean: dict, rows: list[dict], ratio: float, mem_ratio: float, args,
            qual_train: dict) -> list[str]:
    """The discussion, every figure in it computed from the tables above."""

    def pick(name: str, batch: int) -> dict | None:
        return next((r for r in tim if r.get("name") == name and r.get("batch") == batch and "step_s" in r), None)

    out = ["## What this shows", ""]
    paper, light1, small1 = pick("ptv3-paper", 1), pick("light", 1), pick("ptv3", 1)
    failed4 = next((r for r in tim if r.get("name") == "ptv3-paper" and r.get("batch") == 4 and "error" in r), None)
    out.append(f"- **Step cost.** At stage 1's batch (4 shapes of 4096 points) the PTv3 CPU preset takes x{ratio:.2f} "
               f"the light network's step time and x{mem_ratio:.2f} its step memory. (A one-step profile taken while "
               "writing this, not re-run by the script, put the largest share in the gathers and products of the "
               "submanifold convolutions, one per block for the positional encoding, rather than in the attention.)")
    if paper and light1 and small1:
        t = float(np.median(paper["step_s"]))
        hours = args.steps * 4 * t / 3600
        out.append(
            f"- **The paper's network on this CPU.** One step of SAMPart3D's PTv3-object on one shape took {t:.0f} s "
            f"(x{t / np.median(light1['step_s']):.0f} the light network, x{t / np.median(small1['step_s']):.0f} the "
            f"CPU preset, same batch) and {paper['peak_mb'] / 1024:.1f} GB of resident memory"
            + (f"; 4 shapes per step did not fit under a {args.paper_cap_gb:.0f} GB cap" if failed4 else "")
            + f". Its {paper['parameters'] / 1e6:.0f} M parameters are mostly the 16 blocks at 384 channels, whose "
            "positional-encoding convolution alone holds 27 x 384 x 384 weights per block (SAMPart3D uses spconv and "
            "flash attention in half precision on GPUs). Extrapolated linearly in shapes, the "
            f"{args.steps} steps of 4 shapes trained here would take about {hours:.0f} h on this CPU: it was not "
            "trained here, and its segment quality is not measured.")
    d = mean["ptv3"]["link"] - mean["light"]["link"]
    dp = mean["ptv3"]["link"] - mean["positional encoding"]["link"]
    wins = sum(r["ptv3"]["link"] > r["light"]["link"] + 1e-9 for r in rows)
    loss = sum(r["ptv3"]["link"] < r["light"]["link"] - 1e-9 for r in rows)
    diff = np.array([r["ptv3"]["link"] - r["light"]["link"] for r in rows])
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    out.append(
        f"- **Segment quality.** With the PTv3 CPU preset as stage 1 the mean link mIoU is {d:+.1f} points against "
        f"the light backbone (standard error of the per-object difference {se:.1f}; higher on {wins} of {len(rows)} "
        f"objects, lower on {loss}) and {dp:+.1f} against no backbone (the positional encoding), on {len(rows)} meshes.")
    tr = qual_train
    out.append(
        f"- **Fit vs use.** PTv3 fits the teacher's targets on the training shapes more closely (last-20-step loss "
        f"{np.mean(tr['ptv3']['losses'][-20:]):.3f} vs {np.mean(tr['light']['losses'][-20:]):.3f} for the light "
        + ("network), yet that does not carry over to segment quality here" if d <= 0 else
           "network), and segments better here")
        + f" (training loss is measured on the {tr['light']['shapes']} training shapes, segment quality on other "
        "objects; the per-object table shows where the difference in quality comes from).")
    out.append(
        "- **Why this budget cannot show the paper's gain.** SAMPart3D distils DINOv2 features of 200k Objaverse "
        "shapes for days on 8 GPUs; here both networks see "
        f"{args.steps} steps over 69 shapes, with the offline render-feature teacher (33 channels of position, "
        "normal and shading cues, no DINOv2 weights on this machine), which a local kNN network already fits "
        "well. A transformer's wider context pays off with a semantic teacher and far more data; neither is "
        "available here, so this measures cost and plumbing, and says nothing about PTv3 at the paper's scale.")
    out.append("- No GPU was available to this task, so the CUDA path is covered by a test marked `gpu` (skipped "
               "here) and no GPU timing is given.")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps of each network")
    ap.add_argument("--per-category", type=int, default=1, help="held-out meshes per category")
    ap.add_argument("--max-shapes", type=int, default=None, help="at most this many pretraining shapes")
    ap.add_argument("--timing-steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="alternating light / ptv3 timing rounds")
    ap.add_argument("--cap-gb", type=float, default=6.0, help="address-space cap of a CPU-network timing process")
    ap.add_argument("--paper-cap-gb", type=float, default=12.0, help="the same for the paper's network")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--fresh-timing", action="store_true", help="re-measure the step costs (else reuse the cache)")
    ap.add_argument("--notes-file", default=None, help="markdown appended to the report (the discussion)")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if not (DATA / "partnet_mobility_dev").is_dir():
        sys.exit("skipped: ../shared/data/partnet_mobility_dev not found (the shared data is needed)")
    args.notes = Path(args.notes_file).read_text() if args.notes_file else ""
    from pretrain import pretraining_objects  # bench/pretrain.py: the objects no segment benchmark scores

    CACHE.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    files = pretraining_objects(8)[: args.max_shapes]
    tim_path = CACHE / "timing.json"
    if tim_path.exists() and not args.fresh_timing:
        tim = json.loads(tim_path.read_text())
    else:
        tim = timing(files, args)
        tim_path.write_text(json.dumps(tim))
    if args.skip_quality:
        print(json.dumps(tim, indent=1))
        return
    qual = quality(files, args)
    report(tim, qual, args, load_start, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
