"""Synthetic benchmark speed on one core at 480p: frames/s rendered, and written (JPEG + palette PNG to a folder).

Reference measured in the same run: encoding alone (JPEG q95 4:4:4 + label PNG of the same frames), the floor
any writer pays. Goal: ≥ 50 frames/s written at 480×854 on one core.
Run: .venv/bin/python bench/bench_synth.py [--videos 3] [--frames 60] [--height 480 --width 854]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    import cv2

    from stseg_core.data.labels import encode_label_png
    from stseg_core.data.mose import encode_jpeg
    from stseg_core.data.synth import SynthConfig, generate_split, render_video

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    # Every hard case on, so the measurement covers the most expensive videos.
    cfg = SynthConfig(seed=args.seed, height=args.height, width=args.width, min_frames=args.frames,
                      max_frames=args.frames, min_objects=6, max_objects=6, videos=args.videos, occlusion=1.0,
                      disappearance=1.0, distractors=1.0, small_objects=1.0, camera_motion=1.0, deformation=1.0,
                      textured_background=1.0)
    n = args.videos * args.frames

    t0 = time.perf_counter()
    frames = []
    for i in range(args.videos):
        gen = render_video(cfg, "train", i)
        for rgb, labels in gen:
            if len(frames) < 2 * args.frames:  # keep a sample for the encoding reference
                frames.append((rgb, labels))
    render_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for k in range(n):
        rgb, labels = frames[k % len(frames)]
        encode_jpeg(rgb)
        encode_label_png(labels)
    encode_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_split(tmp, cfg, "train")
        write_s = time.perf_counter() - t0

    print(f"{args.videos} videos × {args.frames} frames at {args.height}x{args.width}, 6 objects, all hard cases, "
          "1 core")
    print(f"{'stage':<32} {'s':>7} {'frames/s':>9}")
    for name, secs in (("render (plan + draw)", render_s), ("encode only (reference)", encode_s),
                       ("render + encode + write", write_s)):
        print(f"{name:<32} {secs:>7.2f} {n / secs:>9.1f}")
    fps = n / write_s
    print(f"written frames/s ÷ goal 50: {fps / 50:.2f}; encoding share of the write time: {encode_s / write_s:.0%}")


if __name__ == "__main__":
    main()
