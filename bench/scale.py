"""Runs that outgrow one process (issue 27): engine overhead, segment throughput, streamed pretraining.

Writes ``docs/results/scale.md`` and ``docs/results/scale.json``. Sections (``--only`` reruns one
and keeps the others' stored figures):

* ``engine`` -- the grouping field (SAMPart3D stage 2, fast preset, the demo robot) trained by the
  loop it had before the engine (``git show BEFORE:.../train.py``) and by ``engine.fit``,
  interleaved: time per step of each, and whether weights, losses and the labels of a full
  ``segment_shape`` run are identical.
* ``segment`` -- ``crossdistill segment FOLDER --workers 1`` then ``--workers 2`` on a few
  ../shared/data/psb_dev meshes: objects per minute, and whether the labels agree.
* ``memory`` -- 1,000 generated shapes (random boxes, cylinders, spheres, cones, capsules) into
  the npz cache (Ray tasks when ray is installed), then one epoch of pretraining streamed from it
  in a fresh process: RSS after 100 / 500 / 1000 shapes; beside it, RSS while the same shapes are
  loaded into memory the pre-cache way.
* ``ddp`` -- pretraining from that cache in 1 process and under ``torchrun --nproc_per_node 2``
  (same global batch): time per step, and the largest difference of the loss curves and weights.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python bench/scale.py [--only SECTION] [--shapes 1000]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "results" / "scale.md"
OUT_JSON = ROOT / "docs" / "results" / "scale.json"
PSB = ROOT.parent / "shared" / "data" / "psb_dev"
BEFORE = "15179e1"  # the last commit whose grouping field had its own loop
TIMING_ITERS, TIMING_PAIRS = 100, 6  # interleaved timing runs of the grouping field
PY = sys.executable
SECTIONS = ("engine", "segment", "memory", "ddp")
WORK = Path(tempfile.gettempdir()) / "crossdistill_bench_scale"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mib() -> float:
    """Current resident memory of this process (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    """Peak resident memory of this process since its exec (VmHWM; ru_maxrss would carry the parent's), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------------ engine


def _old_train_module():
    src = subprocess.check_output(["git", "show", f"{BEFORE}:src/crossdistill/methods/sampart3d/train.py"], cwd=ROOT)
    name = "crossdistill.methods.sampart3d._train_before_engine"
    mod = types.ModuleType(name)
    mod.__file__ = f"{BEFORE}:train.py"
    sys.modules[name] = mod
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod


def loop_overhead(steps: int = 3000, reps: int = 3) -> dict:
    """Microseconds per step that ``engine.fit`` adds to a hand-written loop: a 1-weight model whose
    step costs almost nothing, so what remains is the loop's own work (interleaved runs)."""
    import torch

    from crossdistill.engine.training import TrainConfig, fit

    x = torch.ones(1, 1)

    def make():
        torch.manual_seed(0)
        net = torch.nn.Linear(1, 1, bias=False)
        return net, torch.optim.SGD(net.parameters(), lr=1e-3)

    def hand():
        net, opt = make()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = net(x).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())
        return (time.perf_counter() - t0) / steps * 1e6

    def engine():
        net, opt = make()
        t0 = time.perf_counter()
        fit(net, opt, lambda m, b, i: m(x).sum(), TrainConfig(steps=steps, progress=False, distributed=False))
        return (time.perf_counter() - t0) / steps * 1e6

    us = {"hand": [], "engine": []}
    for _ in range(reps):
        us["hand"].append(hand())
        us["engine"].append(engine())
    return {"steps": steps, "us_per_step": us,
            "overhead_us": float(np.median(us["engine"]) - np.median(us["hand"]))}


def bench_engine() -> dict:
    import torch

    from crossdistill.geometry.demo import demo_shape
    from crossdistill.methods.sampart3d import pipeline, train
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape

    torch.set_num_threads(1)
    old = _old_train_module()
    cfg = preset("fast")
    captured = {}

    class _Stop(Exception):
        pass

    def capture(*a, **k):
        captured.update(args=a, kwargs=k)
        raise _Stop

    pipeline.train_grouping_field = capture
    try:
        segment_shape(demo_shape(), cfg, progress=False)
    except _Stop:
        pass
    a, k = captured["args"], captured["kwargs"]
    load_before = load()
    times: dict[str, list[float]] = {"before": [], "engine": []}
    short = replace(a[4], iterations=TIMING_ITERS)
    fns = {"before": old.train_grouping_field, "engine": train.train_grouping_field}
    for rep in range(TIMING_PAIRS):  # ABBA: before, engine, engine, before, ...
        for impl in (("before", "engine") if rep % 2 == 0 else ("engine", "before")):
            t0 = time.perf_counter()
            fns[impl](*a[:4], short, *a[5:], **{**k, "progress": False})
            times[impl].append((time.perf_counter() - t0) / TIMING_ITERS * 1e3)
    fields = {impl: fns[impl](*a, **{**k, "progress": False}) for impl in ("before", "engine")}  # full runs
    same_w = all(torch.equal(p, q) for p, q in zip(fields["before"].field.parameters(),
                                                    fields["engine"].field.parameters()))
    same_loss = bool(np.array_equal(fields["before"].losses, fields["engine"].losses))
    labels = {}
    for impl in ("before", "engine"):
        pipeline.train_grouping_field = old.train_grouping_field if impl == "before" else train.train_grouping_field
        seg = segment_shape(demo_shape(), cfg, progress=False)
        labels[impl] = [np.asarray(seg.labels(i)) for i in range(len(seg.scales))]
    pipeline.train_grouping_field = train.train_grouping_field
    same_labels = all(np.array_equal(x, y) for x, y in zip(labels["before"], labels["engine"]))
    ratio = float(np.median(times["engine"]) / np.median(times["before"]))
    micro = loop_overhead()
    return {"loop_overhead": micro, "iterations": cfg.train.iterations, "timing_iterations": TIMING_ITERS,
            "ms_per_step": times, "pair_ratios": [e / b for b, e in zip(times["before"], times["engine"])], "median_ratio_engine_over_before": ratio,
            "weights_identical": same_w, "losses_identical": same_loss, "labels_identical_every_scale": same_labels,
            "scales": len(labels["engine"]), "load_before": load_before, "load_after": load()}


# ------------------------------------------------------------------------------------------ segment


def bench_segment(n_objects: int) -> dict:
    if not PSB.is_dir():
        return {"skipped": f"{PSB} not found"}
    cats = sorted(p for p in PSB.iterdir() if p.is_dir())
    picks = [sorted(c.glob("*.ply"))[0] for c in cats][:n_objects]
    folder = WORK / "segment_inputs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in picks:
        shutil.copy(p, folder / f"{p.parent.name}_{p.name}")
    runs = {}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for workers in (1, 2):
        out = WORK / f"segment_w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        before = load()
        t0 = time.perf_counter()
        r = subprocess.run([PY, "-m", "crossdistill.cli.main", "segment", str(folder), "-o", str(out), "--quiet",
                            "--workers", str(workers)], env=env, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        runs[workers] = {"rc": r.returncode, "wall_s": round(wall, 1), "objects": len(picks),
                         "objects_per_min": round(len(picks) / wall * 60, 2), "load_before": before,
                         "load_after": load(), "stderr_tail": r.stderr[-300:] if r.returncode else ""}
    same = []
    for lab in sorted((WORK / "segment_w1").rglob("labels.npy")):
        other = WORK / "segment_w2" / lab.relative_to(WORK / "segment_w1")
        same.append(other.is_file() and np.array_equal(np.load(lab), np.load(other)))
    return {"objects": [f"{p.parent.name}/{p.name}" for p in picks], "runs": runs,
            "label_files_compared": len(same), "labels_equal": bool(same) and all(same),
            "speedup": round(runs[1]["wall_s"] / runs[2]["wall_s"], 2)}


# ------------------------------------------------------------------------------------------ memory


def _pretrain_config(steps: int, batch: int):
    from crossdistill.methods.sampart3d.pretrain import PretrainConfig

    return PretrainConfig(n_points=1024, n_views=6, image_size=64, width=32, n_blocks=2, k=8, steps=steps,
                          batch=batch, lr=2e-3, seed=0)


def make_shapes(folder: Path, n: int) -> None:
    """``n`` random primitives (box, cylinder, sphere, cone, capsule; random size and rotation) as PLY."""
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        path = folder / f"g{i:05d}.ply"
        if path.is_file():
            continue
        kind = i % 5
        s = rng.uniform(0.3, 1.0, 3)
        m = [lambda: trimesh.creation.box(extents=s), lambda: trimesh.creation.cylinder(radius=s[0] / 2, height=s[1]),
             lambda: trimesh.creation.icosphere(subdivisions=2, radius=s[0]),
             lambda: trimesh.creation.cone(radius=s[0] / 2, height=s[1]),
             lambda: trimesh.creation.capsule(height=s[1], radius=s[0] / 3)][kind]()
        m.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
        m.export(path)


def build_bench_cache(n_shapes: int, workers: int = 2) -> tuple[Path, dict]:
    from crossdistill.cli.segment_cmd import find_inputs
    from crossdistill.methods.sampart3d.pretrain_cache import build_cache

    shapes = WORK / f"shapes_{n_shapes}"
    make_shapes(shapes, n_shapes)
    cache_dir = WORK / f"cache_{n_shapes}"
    fresh = not (cache_dir / "manifest.json").is_file()
    try:
        import ray  # noqa: F401
        executor = "ray"
    except ImportError:
        executor = "processes"
    before = load()
    t0 = time.perf_counter()
    cache = build_cache(find_inputs(shapes), cache_dir, _pretrain_config(1, 4), shard_size=50, workers=workers,
                        executor=executor, progress=True)
    info = {"shapes": len(cache), "shards": len(cache.files), "executor": executor, "workers": workers,
            "build_s": round(time.perf_counter() - t0, 1) if fresh else None, "load_before": before,
            "load_after": load(), "shard_mib": round(sum(f.stat().st_size for f in cache.files) / 2**20, 1)}
    return cache_dir, info


def probe_stream(cache_dir: str, out: str) -> None:
    """(subprocess) one epoch of pretraining streamed from the cache; RSS at 100 / 500 / 1000 shapes."""
    import torch

    torch.set_num_threads(1)
    from crossdistill.methods.sampart3d import pretrain_cache
    from crossdistill.methods.sampart3d.pretrain import pretrain_backbone
    from crossdistill.methods.sampart3d.pretrain_cache import ShapeCache

    cache = ShapeCache(cache_dir)
    batch = 4
    marks = {m for m in (100, 300, 500, 700, 1000) if m <= len(cache)}  # multiples of the batch
    rows = [{"shapes": 0, "rss_mib": round(rss_mib(), 1), "peak_mib": round(peak_mib(), 1)}]
    original = pretrain_cache.CacheStream.batches

    def batches(self, start, world):
        seen = start * self.batch_size
        for b in original(self, start, world):
            seen += self.batch_size
            if seen in marks:  # this batch is assembled: the shapes up to it have been streamed
                rows.append({"shapes": seen, "rss_mib": round(rss_mib(), 1), "peak_mib": round(peak_mib(), 1),
                             "shards_read": self.shards_loaded})
            yield b

    pretrain_cache.CacheStream.batches = batches
    t0 = time.perf_counter()
    pretrain_backbone(cache, None, _pretrain_config(len(cache) // batch, batch), progress=False)
    Path(out).write_text(json.dumps({"rows": rows, "train_s": round(time.perf_counter() - t0, 1)}))


def probe_inmemory(cache_dir: str, out: str) -> None:
    """(subprocess) the same shapes held in memory as before the cache (ShapeTargets, int64 kNN)."""
    from crossdistill.methods.sampart3d.pretrain import ShapeTargets
    from crossdistill.methods.sampart3d.pretrain_cache import ShapeCache

    cache = ShapeCache(cache_dir)
    held, rows = [], [{"shapes": 0, "rss_mib": round(rss_mib(), 1)}]
    for i in range(len(cache.files)):
        z = cache.load_shard(i)
        for r in range(len(z["seen"])):
            held.append(ShapeTargets("x", z["inputs"][r].copy(), z["knn"][r].astype(np.int64), z["target"][r].copy(),
                                     z["seen"][r].copy()))
            if len(held) in (100, 300, 500, 700, 1000):
                rows.append({"shapes": len(held), "rss_mib": round(rss_mib(), 1)})
    Path(out).write_text(json.dumps({"rows": rows}))


def bench_memory(n_shapes: int) -> dict:
    cache_dir, info = build_bench_cache(n_shapes)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = {"cache": info, "load_before": load()}
    for mode in ("stream", "inmemory"):
        out = WORK / f"{mode}.json"
        r = subprocess.run([PY, __file__, f"--probe-{mode}", str(cache_dir), str(out)], env=env, cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        res[mode] = json.loads(out.read_text())
    res["load_after"] = load()
    return res


# ------------------------------------------------------------------------------------------ ddp


def probe_ddp(cache_dir: str, out: str, steps: int, batch: int) -> None:
    """(subprocess, 1 process or a torchrun rank) pretraining from the cache; per-step times, losses, weights."""
    import torch

    torch.set_num_threads(1)
    from crossdistill.methods.sampart3d import pretrain_cache
    from crossdistill.methods.sampart3d.pretrain import pretrain_backbone
    from crossdistill.methods.sampart3d.pretrain_cache import ShapeCache

    stamps: list[float] = []
    original = pretrain_cache.CacheStream.batches

    def batches(self, start, world):
        for b in original(self, start, world):
            stamps.append(time.perf_counter())
            yield b

    pretrain_cache.CacheStream.batches = batches
    res = pretrain_backbone(ShapeCache(cache_dir), None, _pretrain_config(steps, batch), progress=False)
    if res.backbone.meta["world_size"] > 1 and int(os.environ.get("RANK", "0")) != 0:
        return
    step_ms = np.diff(stamps) * 1e3
    torch.save({"losses": torch.from_numpy(res.losses), "state": res.backbone.net.state_dict(),
                "step_ms": torch.from_numpy(step_ms), "world": res.backbone.meta["world_size"]}, out)


def bench_ddp(n_shapes: int, steps: int = 60, batch: int = 8) -> dict:
    import torch

    cache_dir, _ = build_bench_cache(n_shapes)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = {}
    for procs in (1, 2):
        out = WORK / f"ddp_{procs}.pt"
        launcher = [PY] if procs == 1 else [PY, "-m", "torch.distributed.run", "--standalone",
                                            "--nproc_per_node", "2"]
        before = load()
        t0 = time.perf_counter()
        r = subprocess.run([*launcher, __file__, "--probe-ddp", str(cache_dir), str(out), str(steps), str(batch)],
                           env=env, cwd=ROOT, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        d = torch.load(out)
        ms = d["step_ms"].numpy()[5:]  # past the first steps (imports, first shard reads)
        runs[procs] = {"world": int(d["world"]), "median_step_ms": round(float(np.median(ms)), 1),
                       "mean_step_ms": round(float(ms.mean()), 1), "wall_s": round(time.perf_counter() - t0, 1),
                       "load_before": before, "load_after": load(), "_d": d}
    a, b = runs[1].pop("_d"), runs[2].pop("_d")
    loss_diff = float((a["losses"] - b["losses"]).abs().max())
    w_diff = max(float((a["state"][k] - b["state"][k]).abs().max()) for k in a["state"])
    return {"steps": steps, "global_batch": batch, "runs": runs, "max_abs_loss_diff": loss_diff,
            "max_abs_weight_diff": w_diff, "tolerance_loss": 1e-4, "tolerance_weights": 1e-3,
            "within_tolerance": loss_diff <= 1e-4 and w_diff <= 1e-3,
            "step_time_ratio_2_over_1": round(runs[2]["median_step_ms"] / runs[1]["median_step_ms"], 2)}


# ------------------------------------------------------------------------------------------ report


def _run(section: dict, key: int) -> dict:
    """A run of a section by its worker / process count (int keys, or str keys after a JSON round trip)."""
    runs = section["runs"]
    return runs[key] if key in runs else runs[str(key)]


def write_report(res: dict, command: str) -> None:
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(res, indent=2, default=str))
    m = res.get("machine", {})
    L = ["# Scale: the training engine, segment workers, streamed pretraining, DDP", "",
         f"Command: `{command}` (sections are rerun with `--only`; each section records its own date and load).",
         f"Machine: {m.get('platform')}, {m.get('cpus')} CPUs, Python {m.get('python')}, torch {m.get('torch')}. "
         "**Most sections ran while the machine was shared with other engineers' jobs**: every section "
         "records `os.getloadavg()` before and after (a load near 1 means quiet); absolute times are under "
         "that load, ratios measured in the same run (interleaved where possible) are the figures to read.", ""]
    e = res.get("engine")
    if e:
        L += ["## The engine's per-step overhead on the grouping field (segment's stage 2)", "",
              f"Date {e['date']}. Fast preset, demo robot, 1 torch thread. Timing: runs of "
              f"{e.get('timing_iterations', e['iterations'])} iterations of the loop before the engine "
              f"(`git show {BEFORE}`) and of `engine.fit`, interleaved (before, engine, engine, before, ...). "
              f"Identity: one full run ({e['iterations']} iterations) of each.", "",
              "| loop | ms per step (each run) | median |", "|---|---|---|"]
        for k in ("before", "engine"):
            v = e["ms_per_step"][k]
            L.append(f"| {k} | {', '.join(f'{x:.1f}' for x in v)} | {np.median(v):.1f} |")
        if e.get("pair_ratios"):
            L += ["", "Engine / before, pair by pair: " + ", ".join(f"{r:.3f}" for r in e["pair_ratios"]) + "."]
        L += ["", f"Median ratio engine / before: **{e['median_ratio_engine_over_before']:.3f}** "
              f"(load {e['load_before']} -> {e['load_after']}). Trained weights identical: "
              f"**{e['weights_identical']}**; loss curves identical: **{e['losses_identical']}**; labels of a whole "
              f"`segment_shape` run of the demo at all {e['scales']} scales identical: "
              f"**{e['labels_identical_every_scale']}** (same seed).", ""]
        lo = e.get("loop_overhead")
        if lo:
            med = float(np.median(e["ms_per_step"]["engine"]))
            L += [f"Under this load two runs of one loop differ by more than the loops do, so the loop's own cost is "
                  f"also measured apart: a 1-weight model whose step costs almost nothing, {lo['steps']} steps, "
                  f"hand-written loop and `fit` interleaved {len(lo['us_per_step']['hand'])} times: "
                  f"{', '.join(f'{v:.0f}' for v in lo['us_per_step']['hand'])} us vs "
                  f"{', '.join(f'{v:.0f}' for v in lo['us_per_step']['engine'])} us per step, "
                  f"difference of the medians **{lo['overhead_us']:.0f} us** per step "
                  f"({lo['overhead_us'] / 1e3 / med * 100:+.2f}% of a grouping-field step, {med:.0f} ms here). "
                  "Reading: the loop's own cost is below what this shared machine can resolve (tens of "
                  "microseconds), i.e. under 0.1% of a grouping-field step; the grouping-field pairs above scatter "
                  "by about +-10% run to run under this load, so their ratio neither shows nor excludes a "
                  "difference of a few percent.", ""]
    s = res.get("segment")
    if s and "runs" in s:
        L += ["## `crossdistill segment` throughput with 1 and 2 worker processes", "",
              f"Date {s['date']}. Objects: {', '.join(s['objects'])} (../shared/data/psb_dev, the first mesh of each "
              "category), fast preset, teacher per shape (default), `OMP_NUM_THREADS=1`; with 2 workers each "
              "worker gets 1 thread (the CPUs shared out).", "",
              "| workers | wall (s) | objects / min | load before | load after |", "|---|---|---|---|---|"]
        for w, r in s["runs"].items():
            L.append(f"| {w} | {r['wall_s']} | {r['objects_per_min']} | {r['load_before']} | {r['load_after']} |")
        busy = max(_run(s, 1)["load_before"][0], _run(s, 2)["load_after"][0]) > 2.5
        where = "on 2 cores shared with other jobs" if busy else "on 2 cores, otherwise quiet (load below 2.5)"
        L += ["", f"Speed-up 2 workers over 1: **{s['speedup']}x** {where}. "
              f"Labels equal between the two runs: **{s['labels_equal']}** ({s['label_files_compared']} label files).",
              ""]
        if s["speedup"] < 1.2:
            L += [f"**Missed here: 2 workers gave {s['speedup']}x, no real gain over 1.** The load average was "
                  f"{_run(s, 1)['load_before'][0]}-{_run(s, 2)['load_after'][0]} on 2 cores during these runs: "
                  "the other engineers' jobs held the cores, so a second worker process found no idle core to use. "
                  "This run shows only that the outputs are equal; the throughput gain needs a quieter machine "
                  "(rerun `--only segment`).", ""]
    mem = res.get("memory")
    if mem:
        c = mem["cache"]
        L += ["## Pretraining memory over 1,000 streamed shapes", "",
              f"Date {mem['date']}. {c['shapes']} generated shapes (random boxes, cylinders, spheres, cones, "
              "capsules; random size and rotation), 1024 points, 6 views of 64 px, offline render-feature teacher "
              f"(33 channels), into {c['shards']} npz shards of 50 ({c['shard_mib']} MiB on disk) by "
              f"{c['workers']} {c['executor']} workers"
              + (f" in {c['build_s']} s" if c.get("build_s") else " (cache reused from an earlier run)")
              + ". Then one epoch (batch 4, 2 shards in memory at a time) of pretraining in a fresh process, "
              f"which took {mem['stream']['train_s']} s; beside it, the same shapes held in memory as the "
              "pre-cache `pretrain` did (a fresh process loading them one by one).", "",
              "| shapes | streamed: RSS (MiB) | streamed: peak RSS (MiB) | held in memory: RSS (MiB) |",
              "|---|---|---|---|"]
        inmem = {r["shapes"]: r for r in mem["inmemory"]["rows"]}
        for r in mem["stream"]["rows"]:
            im = inmem.get(r["shapes"], {}).get("rss_mib", "")
            L.append(f"| {r['shapes']} | {r['rss_mib']} | {r['peak_mib']} | {im} |")
        st = {r["shapes"]: r for r in mem["stream"]["rows"]}
        if 100 in st and 1000 in st:
            a, b = st[100], st[1000]
            L += ["", f"Streamed, 100 -> 1000 shapes: RSS {a['rss_mib']} -> {b['rss_mib']} MiB "
                  f"({b['rss_mib'] - a['rss_mib']:+.1f} MiB), peak {a['peak_mib']} -> {b['peak_mib']} MiB "
                  f"({b['peak_mib'] - a['peak_mib']:+.1f} MiB); {b.get('shards_read')} shard reads for "
                  f"{len(mem['stream']['rows']) and mem['cache']['shards']} shards (each read once per epoch). "
                  f"Held in memory, 100 -> 1000: {inmem.get(100, {}).get('rss_mib')} -> "
                  f"{inmem.get(1000, {}).get('rss_mib')} MiB. "
                  f"Load {mem['load_before']} -> {mem['load_after']}."]
        L.append("")
    d = res.get("ddp")
    if d:
        L += ["## Step time with 1 and 2 processes (torchrun), and how close they are", "",
              f"Date {d['date']}. Pretraining from the cache above, global batch {d['global_batch']} shapes "
              f"(2 processes: 4 each), {d['steps']} steps, 1 thread per process, gloo; times per step from the "
              "data stream's timestamps, first 5 steps left out.", "",
              "| processes | median ms / step | mean ms / step | wall incl. start (s) | load before | load after |",
              "|---|---|---|---|---|---|"]
        for p, r in d["runs"].items():
            L.append(f"| {p} | {r['median_step_ms']} | {r['mean_step_ms']} | {r['wall_s']} | {r['load_before']} | "
                     f"{r['load_after']} |")
        L += ["", f"2 processes / 1 process step time: **{d['step_time_ratio_2_over_1']}** (each process does half "
              "the batch; the machine has 2 cores shared with other jobs). Reproduction: largest difference of "
              f"the loss curves **{d['max_abs_loss_diff']:.2e}**, of the final weights **{d['max_abs_weight_diff']:.2e}**. "
              f"Stated tolerance: {d['tolerance_loss']:g} on every step's loss, {d['tolerance_weights']:g} on every "
              "weight (the two runs sum the same float32 numbers in another order -- per rank, then across ranks; "
              "AdamW divides each update by the gradient's running RMS, so a weight whose gradient is near zero "
              "can move by up to the learning rate (2e-3) per step on a rounding difference): "
              f"**{'met' if d['within_tolerance'] else 'MISSED'}**.", ""]
    L += ["## PTv3-object against the light network", "",
          "<!-- PTv3 comparison: by another engineer (issue 27 item 4) -->",
          "See [ptv3.md](ptv3.md) (time per step, segment quality with each backbone as stage 1).", ""]
    OUT_MD.write_text("\n".join(L))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("--probe-"):
        mode, *rest = sys.argv[1:]
        if mode == "--probe-stream":
            probe_stream(*rest)
        elif mode == "--probe-inmemory":
            probe_inmemory(*rest)
        else:
            probe_ddp(rest[0], rest[1], int(rest[2]), int(rest[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=SECTIONS, action="append", help="sections to (re)run (default: all)")
    ap.add_argument("--shapes", type=int, default=1000, help="generated shapes for memory and ddp (default 1000)")
    ap.add_argument("--objects", type=int, default=4, help="psb_dev objects for segment throughput (default 4)")
    args = ap.parse_args()
    import torch

    WORK.mkdir(parents=True, exist_ok=True)
    res = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {}
    res["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                      "torch": torch.__version__}
    for section in args.only or SECTIONS:
        print(f"[scale] {section} (load {load()})", file=sys.stderr, flush=True)
        out = {"engine": bench_engine, "segment": lambda: bench_segment(args.objects),
               "memory": lambda: bench_memory(args.shapes), "ddp": lambda: bench_ddp(args.shapes)}[section]()
        out["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        res[section] = out
        write_report(res, "OMP_NUM_THREADS=1 .venv/bin/python bench/scale.py " + " ".join(sys.argv[1:]))
    print(f"wrote {OUT_MD}", file=sys.stderr)


if __name__ == "__main__":
    main()
