"""Peak memory of the fuse stage against the video's length (goal: ≤ 1.5 GiB and ≤ 1.2 × the short video's peak).

One video of `--size` with `--objects` moving ellipses, `--models` models that each paint them with their own
offsets and write soft probabilities (probs.npz, (T, K, H, W) uint8), ground truth for every frame, a plan and
done markers: the whole fuse stage (`run_fuse` with ground truth, so the baselines and J&F run too) in a fresh
process per length and PGMR choice, its peak RSS from /proc/self/status (VmHWM). Every choice votes with a
performance database (built by `build_database` on a 6-frame clip of the same scene, its recommender set to
knn+agreement and its pseudo-label rated lower, so that "video" keeps a model and "span" cuts and stitches: it
reads every candidate a third time). The reference is the same stage and choice on the shortest length, measured
in the same run. What the whole-video fuse held for the longest video is printed beside it: every model's labels
and probabilities as (T, …) arrays.

    .venv/bin/python bench/bench_fuse_memory.py                      # 1280×720, 60 and 300 frames, 5 × 5
    .venv/bin/python bench/bench_fuse_memory.py --size 320x180 --frames 10,40 --objects 3   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
GIB = 1024**3


def make_run(root: Path, w: int, h: int, frames: int, objects: int, models: int, seed: int = 0) -> list[str]:
    """<root>/data/valid (+ valid_gt) with one video, and <root>/run with every model's predictions, plan and
    markers."""
    import cv2

    from stseg_core.data.mose import MoseWriter
    from stseg_core.models.base import FrameResult
    from stseg_core.plan import plan_shards
    from stseg_core.predictions import write_video_predictions
    from stseg_core.runlayout import commit_shard, pred_prefix
    from stseg_core.store import open_store

    rng = np.random.default_rng(seed)
    centres = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], (objects, 2))
    speed = rng.uniform(-1, 1, (objects, 2))
    axes = rng.uniform(0.04 * min(h, w), 0.12 * min(h, w), (objects, 2))
    offsets = rng.integers(-4, 5, (models, objects, 2))
    ids = tuple(range(1, objects + 1))
    video = "v0"

    def paint(t: int, shift: np.ndarray | None) -> np.ndarray:
        lab = np.zeros((h, w), np.uint8)
        for k in range(objects):
            cx, cy = centres[k] + speed[k] * t + (0 if shift is None else shift[k])
            cv2.ellipse(lab, (int(cx), int(cy)), (int(axes[k, 0]), int(axes[k, 1])), 0, 0, 360, k + 1, -1)
        return lab

    data, truth = MoseWriter(open_store(root / "data" / "valid")), MoseWriter(open_store(root / "data" / "valid_gt"))
    texture = rng.integers(0, 255, (h, w, 3), np.uint8)
    for t in range(frames):
        gt = paint(t, None)
        data.write_frame(video, t, np.where(gt[..., None] > 0, 255 - texture, texture).astype(np.uint8))
        truth.write_annotation(video, t, gt)
        if t == 0:
            data.write_annotation(video, t, gt)
    store = open_store(root / "run")
    plan_shards({video: frames * objects}, 1).save(store)
    names = [f"m{m}" for m in range(models)]
    for m, name in enumerate(names):

        def results(m=m):
            for t in range(frames):
                lab = paint(t, offsets[m])
                # soft edges: each object's probability falls off over a few pixels around its mask
                probs = np.stack([cv2.GaussianBlur((lab == i).astype(np.uint8) * 255, (7, 7), 0) for i in ids])
                yield FrameResult(f"{t:05d}", lab, dict.fromkeys(ids, 0.9), dict.fromkeys(ids, True), probs)

        keys = write_video_predictions(
            store,
            name,
            video,
            results(),
            stems=[f"{t:05d}" for t in range(frames)],
            object_ids=ids,
            confidence_definition="bench: constant",
        )
        commit_shard(store, pred_prefix(name), 0, keys)
    return names


def make_database(root: Path, w: int, h: int, objects: int, models: int) -> str:
    """A performance database from a 6-frame clip of the same scene, recommending with knn+agreement and rating
    the pseudo-label 20 J&F lower than it scored there (so that models are kept, per video and per span)."""
    from dataclasses import replace

    from stseg_core.fusion.perfdb import FUSED, load_perfdb, save_perfdb
    from stseg_core.fusion.stage import build_database
    from stseg_core.store import open_store

    names = make_run(root / "clip", w, h, 6, objects, models)
    clip = root / "clip"
    db, _uri = build_database(
        str(clip / "run"), str(clip / "data" / "valid"), str(clip / "data" / "valid_gt"), names, str(root / "perfdb")
    )
    lowered = tuple(replace(r, jf={**r.jf, FUSED: r.jf[FUSED] - 20}) for r in db.records)
    db = replace(load_perfdb(_uri), records=lowered, selection={**db.selection, "method": "knn+agreement"})
    return save_perfdb(open_store(root / "perfdb-bench"), db, prefix="")


# Peak RSS of the child's own address space: VmHWM starts afresh at exec, whereas getrusage's ru_maxrss keeps the
# RSS the parent had when it forked (here the generator's and the database builder's).
_CHILD = """
import json, re, resource, sys, time
from pathlib import Path
from stseg_core.fusion.stage import FuseConfig, run_fuse
root, models, db, choose = sys.argv[1], tuple(sys.argv[2].split(",")), sys.argv[3], sys.argv[4]
start = time.perf_counter()
report = run_fuse(FuseConfig(f"{root}/run", f"{root}/data/valid", models, gt_root=f"{root}/data/valid_gt",
                             db_uri=db, choose=choose))
status = Path("/proc/self/status")
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()) if status.exists() else None
print(json.dumps({"peak_kib": int(hwm.group(1)) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": time.perf_counter() - start, "pgmr": report.table["pgmr"]["J&F"],
                  "kept": sorted(set(report.choices.values()))}))
"""


def measure(root: Path, models: list[str], db: str, choose: str) -> dict:
    """The fuse stage in a fresh process (nothing of the generator in its memory)."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), ",".join(models), db, choose],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode:
        raise SystemExit(f"fuse failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, dict[int, dict]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1280x720", help="WxH")
    ap.add_argument("--frames", default="60,300", help="Comma-separated lengths; the first is the reference.")
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--choose", default="vote,span", help="PGMR choices to measure (vote, video, span).")
    ap.add_argument("--json", action="store_true", help="Print the figures as JSON (for tests).")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    lengths = [int(v) for v in args.frames.split(",")]
    out: dict[str, dict[int, dict]] = {c: {} for c in args.choose.split(",")}
    with tempfile.TemporaryDirectory(prefix="stseg-bench-fuse-db-") as tmp:
        db = make_database(Path(tmp), w, h, args.objects, args.models)
        for frames in lengths:
            with tempfile.TemporaryDirectory(prefix="stseg-bench-fuse-") as run:
                start = time.perf_counter()
                models = make_run(Path(run), w, h, frames, args.objects, args.models)
                made = time.perf_counter() - start
                for choose in out:
                    out[choose][frames] = {**measure(Path(run), models, db, choose), "generate_s": made}
    if args.json:
        print(json.dumps(out))
    else:
        _print(out, lengths, args.models, args.objects, w, h)
    return out


def _print(out: dict[str, dict[int, dict]], lengths: list[int], models: int, objects: int, w: int, h: int) -> None:
    print(
        f"fuse stage, one {w}x{h} video, {models} models x {objects} objects with probabilities, "
        "a performance database, ground truth on (baselines + J&F)"
    )
    print(
        f"{'choose':>7} {'frames':>7} {'peak RSS':>10} {'vs ' + str(lengths[0]) + ' fr':>9} {'fuse s':>8} "
        f"{'s/frame':>8} {'kept':>22} {'whole-video arrays':>19}"
    )
    missed = []
    for choose, rows in out.items():
        ref = rows[lengths[0]]["peak_kib"]
        for frames, row in rows.items():
            whole = frames * models * (objects + 1) * w * h / GIB  # labels + probs, uint8
            print(
                f"{choose:>7} {frames:>7} {row['peak_kib'] / 1024**2:>8.2f} GiB {row['peak_kib'] / ref:>8.2f}x "
                f"{row['seconds']:>8.1f} {row['seconds'] / frames:>8.3f} {','.join(row['kept']):>22} "
                f"{whole:>16.2f} GiB"
            )
        longest = rows[lengths[-1]]["peak_kib"]
        if not (longest / 1024**2 <= 1.5 and longest / ref <= 1.2):
            missed.append(choose)
        print(
            f"  {choose}: goal peak ≤ 1.50 GiB and ≤ 1.20 x the {lengths[0]}-frame peak → "
            f"{longest / 1024**2:.2f} GiB, {longest / ref:.2f} x"
        )
    print(f"goal: {'MISSED for ' + ', '.join(missed) if missed else 'met for every choice'}")


if __name__ == "__main__":
    main()
