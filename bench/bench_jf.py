"""J&F evaluator speed: ms per scored frame for stseg (1 process, all cores), vos-benchmark, and the decode floor.

Generates a synthetic set (default 20 videos × 60 frames × 480×854, 3 objects that move, deform and
disappear for a while, predictions = ground truth shifted, grown/shrunk, with spurious blobs and missed
frames), then times on the same files:
- floor: reading and decoding every PNG the evaluator decodes (`read_label_png`), nothing else;
- stseg: `stseg_core.metrics.evaluate` with 1 worker and with all cores;
- vos-benchmark (PyPI `vos-benchmark`, dev extra), 1 process and all cores, on the same folders.
It also checks that both evaluators give the same global J and F on this data (to 1e-9) where the
comparison is meaningful (vos-benchmark skips frames before an object first appears; see the notes).

    python bench/bench_jf.py                    # 480p (~1 min)
    python bench/bench_jf.py --size 1080p       # 1080×1920
    python bench/bench_jf.py --videos 40 --frames 100 --objects 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920)}


def _frames(rng: np.random.Generator, h: int, w: int, t_len: int, k: int, clean: bool):
    """Yield (gt, pred) label maps of one video."""
    import cv2

    scale = h / 480
    frame = np.array([w, h], dtype=np.float64)
    centre = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], size=(k, 2))
    vel = rng.normal(0, 3 * scale, size=(k, 2))
    axes = rng.uniform(25 * scale, 90 * scale, size=(k, 2))
    gone = {}
    if not clean:  # one object leaves for a stretch of frames (MOSE-like disappearance)
        start = int(rng.integers(t_len // 4, t_len // 2))
        gone[int(rng.integers(0, k))] = range(start, start + int(rng.integers(5, t_len // 3)))
    for t in range(t_len):
        gt = np.zeros((h, w), np.uint8)
        pred = np.zeros((h, w), np.uint8)
        for i in range(k):
            c = centre[i] + vel[i] * t
            c = np.abs((c + frame) % (2 * frame) - frame)  # bounce inside the frame
            ax = axes[i] * (1 + 0.2 * np.sin(t / 7 + i))
            ang = 15.0 * t / 10 + 40 * i
            if t not in gone.get(i, ()) or t == 0:
                cv2.ellipse(gt, (int(c[0]), int(c[1])), (int(ax[0]), int(ax[1])), ang, 0, 360, i + 1, -1)
            if clean or rng.random() > 0.05:  # predictions miss an object now and then
                dc = rng.normal(0, 2 * scale, 2)
                da = ax * (1 + rng.normal(0, 0.05, 2))
                cv2.ellipse(pred, (int(c[0] + dc[0]), int(c[1] + dc[1])), (max(1, int(da[0])), max(1, int(da[1]))),
                            ang + rng.normal(0, 4), 0, 360, i + 1, -1)
            if not clean and rng.random() < 0.2:  # a spurious blob
                p = rng.uniform([0, 0], [w, h]).astype(int)
                cv2.circle(pred, (int(p[0]), int(p[1])), int(rng.uniform(3, 15) * scale), i + 1, -1)
        if clean:  # every object present in every frame of both
            for i in range(k):
                for lab in (gt, pred):
                    if not (lab == i + 1).any():
                        lab[i, : 4 + i] = i + 1
        yield gt, pred


def make_set(root: Path, videos: int, frames: int, objects: int, size: tuple[int, int], clean: bool, seed: int):
    from stseg_core.data.labels import encode_label_png

    rng = np.random.default_rng(seed)
    for v in range(videos):
        name = f"video{v:03d}"
        (root / "gt" / "Annotations" / name).mkdir(parents=True, exist_ok=True)
        (root / "pred" / name).mkdir(parents=True, exist_ok=True)
        for t, (gt, pred) in enumerate(_frames(rng, *size, frames, objects, clean)):
            (root / "gt" / "Annotations" / name / f"{t:05d}.png").write_bytes(encode_label_png(gt))
            (root / "pred" / name / f"{t:05d}.png").write_bytes(encode_label_png(pred))


def decode_floor(root: Path) -> float:
    """Read + decode exactly the PNGs the evaluator decodes: ground truth 0…T−2, predictions 1…T−2."""
    from stseg_core.data.labels import read_label_png

    t0 = time.perf_counter()
    for vdir in sorted((root / "gt" / "Annotations").iterdir()):
        stems = sorted(p.name for p in vdir.iterdir())
        for i, name in enumerate(stems[:-1]):
            read_label_png((vdir / name).read_bytes())
            if i:
                read_label_png((root / "pred" / vdir.name / name).read_bytes())
    return time.perf_counter() - t0


def run_vos_benchmark(root: Path, workers: int):
    from vos_benchmark.benchmark import benchmark

    t0 = time.perf_counter()
    _jf, j, f, _objs = benchmark([str(root / "gt" / "Annotations")], [str(root / "pred")],
                                 num_processes=workers, verbose=False)
    (root / "pred" / "results.csv").unlink(missing_ok=True)  # it writes into the prediction folder
    return time.perf_counter() - t0, j[0] / 100, f[0] / 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="480p")
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2, help="best of N timings per row")
    ap.add_argument("--skip-vos-benchmark", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from stseg_core.metrics.evaluate import evaluate

    size = SIZES[args.size]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_jf_") as tmp:
        for clean in (False, True):
            root = Path(tmp) / ("clean" if clean else "mose_like")
            make_set(root, args.videos, args.frames, args.objects, size, clean, seed=1 + clean)
        root = Path(tmp) / "mose_like"
        scored = args.videos * (args.frames - 2)

        def best(fn):
            return min(fn() for _ in range(args.repeat))

        floor = best(lambda: decode_floor(root))
        ours1 = best(lambda: evaluate(str(root / "gt"), str(root / "pred"), workers=1).seconds)
        oursn = best(lambda: evaluate(str(root / "gt"), str(root / "pred"), workers=args.workers).seconds)
        rows += [("decode floor (1 process)", floor), ("stseg eval, 1 process", ours1),
                 (f"stseg eval, {args.workers} processes", oursn)]
        if not args.skip_vos_benchmark:
            vb1 = run_vos_benchmark(root, 1)[0]
            vbn = run_vos_benchmark(root, args.workers)[0]
            rows += [("vos-benchmark, 1 process", vb1), (f"vos-benchmark, {args.workers} processes", vbn)]
            # agreement on clean data (objects present in every frame, where both definitions coincide)
            clean_root = Path(tmp) / "clean"
            ours = evaluate(str(clean_root / "gt"), str(clean_root / "pred"), workers=args.workers).scores
            _t, vj, vf = run_vos_benchmark(clean_root, args.workers)
            agree = max(abs(ours["J-Mean"] - vj), abs(ours["F-Mean"] - vf))

    h, w = size
    print(f"J&F evaluation, {args.videos} videos × {args.frames} frames × {h}×{w}, {args.objects} objects, "
          f"{scored} scored frames, best of {args.repeat}")
    print(f"{'':34} {'total s':>8} {'ms/frame':>9} {'× floor':>8}")
    for name, secs in rows:
        print(f"{name:34} {secs:8.2f} {1e3 * secs / scored:9.2f} {secs / floor:8.2f}")
    print(f"stseg 1 process / decode floor: {ours1 / floor:.2f} (target ≤ 1.5)")
    if not args.skip_vos_benchmark:
        print(f"vos-benchmark / stseg, 1 process: {vb1 / ours1:.1f}×; {args.workers} processes: {vbn / oursn:.1f}× "
              "(target ≥ 4)")
        print(f"max |stseg − vos-benchmark| on clean data (global J, F): {agree:.2e}")


if __name__ == "__main__":
    main()
