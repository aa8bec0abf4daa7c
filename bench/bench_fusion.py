"""Speed of PGMR's weighted vote against the time to decode the masks it fuses (goal: fuse ≤ 2 × decode).

Five "models" are the same moving objects with different seeded errors (boundary jitter, a dropped object,
an identity swap), written as palette PNGs. Measured in the same run, per frame of all five models:
decode = reading the five PNGs into arrays; vote = `fuse_video` on the decoded arrays (hard labels,
scores and presence, no soft probabilities) after calibrating every model's confidences; spans = the per-span
choice's extra work (per-frame agreement with the pseudo-label, the cut, stitching with id matching at each
border); baselines = bbox-average and bbox-max, for reference.

    .venv/bin/python bench/bench_fusion.py                   # 480×854, 40 frames, 3 objects
    .venv/bin/python bench/bench_fusion.py --size 720x1280 --frames 60 --objects 5
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_frames(h: int, w: int, frames: int, objects: int, models: int, seed: int) -> list[list[bytes]]:
    """PNG bytes [model][frame] of moving ellipses, each model with its own seeded errors."""
    import cv2

    from stseg_core.data.labels import encode_label_png

    rng = np.random.default_rng(seed)
    centres = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], (objects, 2))
    speed = rng.uniform(-3, 3, (objects, 2))
    axes = rng.uniform(0.05 * min(h, w), 0.2 * min(h, w), (objects, 2))
    out: list[list[bytes]] = [[] for _ in range(models)]
    for t in range(frames):
        gt = np.zeros((h, w), np.uint8)
        for k in range(objects):
            cx, cy = centres[k] + speed[k] * t
            cv2.ellipse(gt, (int(cx), int(cy)), (int(axes[k, 0]), int(axes[k, 1])), 0, 0, 360, k + 1, -1)
        for m in range(models):
            lab = gt.copy()
            noise = rng.random((h, w)) < 0.02
            edge = cv2.morphologyEx(gt, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
            lab[edge & noise] = 0
            if m == 1 and t > frames // 2:
                lab[lab == 1] = 0  # lost an object
            if m == 2 and t > frames // 3 and objects > 1:
                lab = np.choose(np.isin(lab, (1, 2)), (lab, 3 - lab)).astype(np.uint8)  # identity swap
            out[m].append(encode_label_png(lab))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="480x854")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from stseg_core.data.labels import read_label_png
    from stseg_core.fusion.baselines import bbox_fuse_video
    from stseg_core.fusion.calibrate import calibrated, fit
    from stseg_core.fusion.perfdb import FUSED
    from stseg_core.fusion.spans import frame_agreement, split_spans, stitch
    from stseg_core.fusion.video import from_labels
    from stseg_core.fusion.vote import fuse_video

    h, w = (int(x) for x in args.size.split("x"))
    pngs = make_frames(h, w, args.frames, args.objects, args.models, seed=0)
    ids = tuple(range(1, args.objects + 1))
    best = {"decode": np.inf, "vote": np.inf, "spans": np.inf, "bbox-average": np.inf, "bbox-max": np.inf}
    rng = np.random.default_rng(1)
    calibration = fit(rng.random(500), rng.random(500))  # a 20-knot map: what a real database holds
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        labels = [np.stack([read_label_png(b) for b in model]) for model in pngs]
        best["decode"] = min(best["decode"], time.perf_counter() - t0)
        outputs = [from_labels(f"m{i}", lab, ids) for i, lab in enumerate(labels)]
        t0 = time.perf_counter()
        trust = np.linspace(0.6, 0.9, len(outputs))
        fused = fuse_video([calibrated(o, calibration) for o in outputs], ids, trust=trust)
        best["vote"] = min(best["vote"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        agreement = np.stack([frame_agreement(o.labels, fused.labels, ids) for o in outputs])
        cuts = split_spans(agreement)
        plan = [(a, b, outputs[i % len(outputs)].model) for i, (a, b) in enumerate(cuts)]  # worst case: switch each
        stitch(
            {
                FUSED: (fused.labels, fused.scores, fused.present),
                **{o.model: (o.labels, o.scores, o.present) for o in outputs},
            },
            plan,
            ids,
        )
        best["spans"] = min(best["spans"], time.perf_counter() - t0)
        for method in ("bbox-average", "bbox-max"):
            t0 = time.perf_counter()
            bbox_fuse_video(outputs, ids, method)
            best[method] = min(best[method], time.perf_counter() - t0)
    per_frame = {k: 1000 * v / args.frames for k, v in best.items()}
    print(f"{args.models} models, {args.frames} frames of {w}x{h}, {args.objects} objects (best of {args.repeats})")
    print(f"{'step':<28}{'ms/frame':>10}{'× decode':>10}")
    for name, label in (
        ("decode", f"decode {args.models} PNGs (reference)"),
        ("vote", "PGMR weighted vote"),
        ("spans", "per-span cut + stitch"),
        ("bbox-average", "bbox-average"),
        ("bbox-max", "bbox-max"),
    ):
        print(f"{label:<28}{per_frame[name]:>10.2f}{best[name] / best['decode']:>10.2f}")
    ratio = best["vote"] / best["decode"]
    print(f"vote / decode = {ratio:.2f} (goal ≤ 2.00): {'ok' if ratio <= 2 else 'MISSED'}")
    ratio = (best["vote"] + best["spans"]) / best["decode"]
    print(f"(vote + spans) / decode = {ratio:.2f} (goal ≤ 2.00): {'ok' if ratio <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
