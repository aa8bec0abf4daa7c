"""J&F evaluator speed: ms per scored frame for stseg (1 process, all cores), vos-benchmark, and the decode floor.

Generates a synthetic set (default 20 videos × 60 frames × 480×854, 3 objects that move, deform and
disappear for a while, predictions = ground truth shifted, grown/shrunk, with spurious blobs and missed
frames), then times on the same files:
- floor: reading and decoding every PNG the evaluator decodes with `read_label_png` (Pillow), nothing else;
- stseg: `stseg_core.metrics.evaluate` with 1 worker and with all cores;
- vos-benchmark (PyPI `vos-benchmark`, dev extra): its per-video evaluator in this process on the first
  `--ref-videos` videos, and its `benchmark()` with a pool of all cores on every video.
Single-process rows compare CPU time of this process (stable on a shared machine); pool rows are wall time.
It also checks that both evaluators give the same global J and F on clean data (every object present in
every frame: vos-benchmark skips an object's frames before it first appears, the DAVIS toolkit does not).

    python bench/bench_jf.py                    # 480p (~1.5 min)
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
                cv2.ellipse(
                    pred,
                    (int(c[0] + dc[0]), int(c[1] + dc[1])),
                    (max(1, int(da[0])), max(1, int(da[1]))),
                    ang + rng.normal(0, 4),
                    0,
                    360,
                    i + 1,
                    -1,
                )
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


def _decode_all(root: Path, reader) -> None:
    """Read + decode exactly the PNGs the evaluator decodes: ground truth 0…T−2, predictions 1…T−2."""
    for vdir in sorted((root / "gt" / "Annotations").iterdir()):
        stems = sorted(p.name for p in vdir.iterdir())
        for i, name in enumerate(stems[:-1]):
            reader((vdir / name).read_bytes())
            if i:
                reader((root / "pred" / vdir.name / name).read_bytes())


def _timed(fn, repeat: int) -> tuple[float, float]:
    """Best (CPU seconds of this process, wall seconds) over `repeat` runs. CPU time is what a single-process
    row is compared by: it does not move when other jobs share the machine's cores."""
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall)


def _vos_benchmark_in_process(root: Path, videos: list[str]) -> None:
    """vos-benchmark's own per-video evaluator, called in this process (what each of its pool workers runs)."""
    import contextlib
    import io

    from vos_benchmark.benchmark import VideoEvaluator

    evaluator = VideoEvaluator(str(root / "gt" / "Annotations"), str(root / "pred"))
    with contextlib.redirect_stdout(io.StringIO()):
        for v in videos:
            evaluator(v)


def _vos_benchmark_pool(root: Path, workers: int) -> tuple[float, float]:
    """vos-benchmark's `benchmark()` with its process pool: (wall seconds, global J, global F in [0, 1])."""
    import contextlib
    import io

    from vos_benchmark.benchmark import benchmark

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        _jf, j, f, _objs = benchmark(
            [str(root / "gt" / "Annotations")], [str(root / "pred")], num_processes=workers, verbose=False
        )
    (root / "pred" / "results.csv").unlink(missing_ok=True)  # it writes into the prediction folder
    return time.perf_counter() - t0, j[0] / 100, f[0] / 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="480p")
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings per stseg/floor row")
    ap.add_argument(
        "--ref-videos",
        type=int,
        default=None,
        help="videos vos-benchmark is timed on (default: max(4, workers); it is slow, and per-frame "
        "figures stay comparable)",
    )
    ap.add_argument("--skip-vos-benchmark", action="store_true")
    args = ap.parse_args()

    from stseg_core.data.labels import read_label_png
    from stseg_core.metrics.decode import read_label_png_fast
    from stseg_core.metrics.evaluate import evaluate

    size = SIZES[args.size]
    per_frame = args.frames - 2
    rows = []  # (name, seconds, frames, clock)
    with tempfile.TemporaryDirectory(prefix="bench_jf_") as tmp:
        root = Path(tmp) / "mose_like"
        make_set(root, args.videos, args.frames, args.objects, size, clean=False, seed=1)
        scored = args.videos * per_frame
        gt, pred = str(root / "gt"), str(root / "pred")
        floor = _timed(lambda: _decode_all(root, read_label_png), args.repeat)
        fast = _timed(lambda: _decode_all(root, read_label_png_fast), args.repeat)
        ours1 = _timed(lambda: evaluate(gt, pred, workers=1), args.repeat)
        oursn = _timed(lambda: evaluate(gt, pred, workers=args.workers), args.repeat)
        rows += [
            ("decode floor: read_label_png (Pillow)", floor[0], scored, "cpu"),
            ("  stseg's exact fast reader alone", fast[0], scored, "cpu"),
            ("stseg eval, 1 process", ours1[0], scored, "cpu"),
            (f"stseg eval, {args.workers} processes", oursn[1], scored, "wall"),
        ]
        if not args.skip_vos_benchmark:
            n_ref = args.ref_videos or max(4, args.workers)
            ref = sorted(p.name for p in (root / "gt" / "Annotations").iterdir())[:n_ref]
            vb1 = _timed(lambda: _vos_benchmark_in_process(root, ref), 1)
            rows.append(("vos-benchmark, 1 process", vb1[0], len(ref) * per_frame, "cpu"))
            subset = Path(tmp) / "subset"  # the same videos, linked, for the pooled run
            for part in ("gt/Annotations", "pred"):
                (subset / part).mkdir(parents=True)
                for v in ref:
                    (subset / part / v).symlink_to(root / part / v)
            vbn = _vos_benchmark_pool(subset, args.workers)[0]
            rows.append((f"vos-benchmark, {args.workers} processes", vbn, len(ref) * per_frame, "wall"))
            # agreement on clean data (objects present in every frame, where both definitions coincide)
            clean = Path(tmp) / "clean"
            make_set(clean, min(args.videos, 6), min(args.frames, 20), args.objects, size, clean=True, seed=2)
            ours = evaluate(str(clean / "gt"), str(clean / "pred"), workers=args.workers).scores
            _t, vj, vf = _vos_benchmark_pool(clean, args.workers)
            agree = max(abs(ours["J-Mean"] - vj), abs(ours["F-Mean"] - vf))

    h, w = size
    ms = {name: 1e3 * secs / frames for name, secs, frames, _c in rows}
    floor_ms = ms[rows[0][0]]
    print(
        f"J&F evaluation: {args.videos} videos × {args.frames} frames × {h}×{w}, {args.objects} objects, "
        f"{scored} scored frames; best of {args.repeat}; {os.cpu_count()} cores"
    )
    print(f"{'':40} {'clock':>5} {'ms/frame':>9} {'× floor':>8}")
    for name, _secs, _frames, clock in rows:
        print(f"{name:40} {clock:>5} {ms[name]:9.2f} {ms[name] / floor_ms:8.2f}")
    one = ms["stseg eval, 1 process"]
    print(f"stseg 1 process / decode floor: {one / floor_ms:.2f} (target ≤ 1.5)")
    if not args.skip_vos_benchmark:
        many = ms[f"stseg eval, {args.workers} processes"]
        print(
            f"vos-benchmark / stseg: {ms['vos-benchmark, 1 process'] / one:.1f}× (1 process), "
            f"{ms[f'vos-benchmark, {args.workers} processes'] / many:.1f}× ({args.workers} processes) (target ≥ 4)"
        )
        print(f"max |stseg − vos-benchmark| on clean data (global J, F): {agree:.1e}")


if __name__ == "__main__":
    main()
