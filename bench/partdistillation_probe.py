"""Small probes of PartDistillation's decoder against its own proposals (diagnostics, not the report).

Trains the part decoder on the proposals of a few training instances of one category fold
(no self-training) and measures

* fit: how well the decoder reproduces its training targets (ARI / NMI between its partition
  and the K = 4 k-means partition over each training object's cells);
* test: NMI (link) and class-agnostic mIoU (leaf) on the fold's test images, for the decoder
  and for the proposals of the same images.

    python bench/partdistillation_probe.py --fold select --n-train 64 --steps 200 --set pixel_kernel=3
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def _parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fold", default="select", choices=["select", "report"])
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-test", type=int, default=48, help="test images (spread over the fold's categories)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--set", action="append", default=[], help="PartDistillationConfig field=value")
    ap.add_argument("--train-set", action="append", default=[], help="TrainConfig field=value")
    ap.add_argument("--proposal-set", action="append", default=[], help="ProposalConfig field=value of the targets")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "crossdistill_bench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transductive", action="store_true",
                    help="train on the instances of the test images themselves (as k-means sees them)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    import partdistillation as bench
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from crossdistill.methods.partdistillation.decoder import PartDecoder
    from crossdistill.methods.partdistillation.inference import decode_crops
    from crossdistill.methods.partdistillation.pipeline import PartDistillationConfig
    from crossdistill.methods.partdistillation.proposals import (_majority_smooth, absorb_small_pieces,
                                                                 kmeans_partition, part_proposals)
    from crossdistill.methods.partdistillation.training import train_decoder

    def smoothed(labels: np.ndarray, mask: np.ndarray, min_fraction: float) -> np.ndarray:
        """The proposals' post-processing (3x3 majority, small pieces absorbed) on a decoder partition."""
        ids, lab = np.unique(labels[mask], return_inverse=True)
        dense = np.full(labels.shape, -1, np.int64)
        dense[mask] = lab
        out = _majority_smooth(dense, mask, len(ids))
        return absorb_small_pieces(out, mask, max(1, int(np.ceil(min_fraction * mask.sum()))))

    cats = bench.SELECT if args.fold == "select" else bench.REPORT
    path = next(args.cache.glob("partdistillation_192_48_*.pkl"))
    with open(path, "rb") as fh:
        split, _names = pickle.load(fh)
    rng = np.random.default_rng(args.seed)
    train = [c for img in split["train"] if img["category"] in cats for c in img["crops"]]
    train = [train[i] for i in sorted(rng.choice(len(train), min(args.n_train, len(train)), replace=False))]
    test = [img for img in split["test"] if img["category"] in cats and img["crops"]]
    test = [test[i] for i in sorted(rng.choice(len(test), min(args.n_test, len(test)), replace=False))]
    if args.transductive:
        train = [c for img in test for c in img["crops"]]

    cfg = PartDistillationConfig()
    cfg = replace(cfg, **{k: _parse_value(v) for k, v in (s.split("=", 1) for s in args.set)})
    cfg = replace(cfg, train=replace(cfg.train, steps=args.steps,
                                     **{k: _parse_value(v) for k, v in (s.split("=", 1) for s in args.train_set)}))
    tprop = replace(cfg.proposals, **{k: _parse_value(v) for k, v in (s.split("=", 1) for s in args.proposal_set)})
    torch.manual_seed(cfg.seed)
    dec = PartDecoder(cfg.decoder_config(int(train[0].features.shape[0])))
    targets = [part_proposals(c, tprop, cfg.seed) for c in train]
    t0 = time.perf_counter()
    losses = train_decoder(dec, train, targets, cfg.train, progress=False)
    t_train = time.perf_counter() - t0

    out = {"args": vars(args) | {"cache": str(args.cache)}, "s_per_step": t_train / max(args.steps, 1),
           "loss_first_last": [losses[0], float(np.mean(losses[-20:]))]}
    decoded = decode_crops(dec, train, cfg.score_threshold, cfg.min_fraction)
    ari, nm, parts = [], [], []
    for c, d in zip(train, decoded):
        ref = kmeans_partition(c, 4, tprop, cfg.seed)[c.mask]
        ari.append(adjusted_rand_score(ref, d.labels[c.mask]))
        nm.append(normalized_mutual_info_score(ref, d.labels[c.mask]))
        parts.append(len(d.part_queries))
    out["fit"] = {"ari": float(np.mean(ari)), "nmi": float(np.mean(nm)), "parts": float(np.mean(parts))}
    rows = {"decoder": [], "decoder_smoothed": [], "proposals": []}
    for img in test:
        fg = img["inst"].masks.any(0)
        dec_parts = decode_crops(dec, img["crops"], cfg.score_threshold, cfg.min_fraction)
        dl = [d.labels for d in dec_parts]
        ds = [smoothed(d.labels, c.mask, cfg.min_fraction) for d, c in zip(dec_parts, img["crops"])]
        pl = [kmeans_partition(c, 4, cfg.proposals, cfg.seed) for c in img["crops"]]
        for name, labels in (("decoder", dl), ("decoder_smoothed", ds), ("proposals", pl)):
            s = bench.scores_for(img["link"], img["leaf"], bench.image_partition(img, labels, 192), fg)
            if s is not None:
                rows[name].append(s | {"parts": float(np.mean([len(np.unique(x[x >= 0])) for x in labels]))})
    out["test"] = {n: {k: float(np.mean([r[k] for r in v])) for k in ("nmi_link", "miou_leaf", "miou_link", "parts")}
                   for n, v in rows.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
