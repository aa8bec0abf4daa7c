"""SAM2 adapter vs upstream `SAM2VideoPredictor`: time overhead on one video and peak RSS on long 480p videos.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_sam2.py         # overhead + 100-frame RSS (~2 min idle)
    .venv/bin/python bench/bench_sam2.py --long [--direct-long]           # + 500-frame RSS (~4 min per side)

Both sides run hiera-t with the same seeded random-weight checkpoint at `--size` (256) on CPU, on the same
synthetic 854×480 JPEG video with two objects. Upstream decodes every frame into a T×3×S×S float32 tensor
before tracking and keeps every frame's outputs; the adapter decodes one frame at a time and prunes outputs
the model can no longer reach, so its RSS growth should stay flat from 100 to 500 frames. Each RSS figure is
measured in a fresh child process.

Recorded 2026-11-25 on the shared 2-core dev box (CPU only), hiera-t @ 256 px:
    overhead ratio adapter/direct: cpu 0.997, wall 0.997 (8 frames, min of 3; 0.40 s/frame both)
    RSS growth during the video, MiB: adapter 36 (100 frames) / 36 (500); upstream 112 / 450
    (process peak ru_maxrss ≈ 1.3 GiB on both sides, set by loading the 156 MB checkpoint, not by the video)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from PIL import Image

H, W, IDS = 480, 854, (1, 2)


def write_video(folder: Path, frames: int) -> np.ndarray:
    """Two moving ellipses on a textured background as JPEGs; returns the first-frame label map."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    for t in range(frames):
        img = np.roll(base, t, axis=1).copy()
        cv2.ellipse(img, (200 + (t % 300), 200), (60, 40), 0, 0, 360, (220, 40, 40), -1)
        cv2.ellipse(img, (600 - (t % 300), 300), (50, 70), 0, 0, 360, (40, 200, 60), -1)
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=90)
    labels = np.zeros((H, W), np.uint8)
    cv2.ellipse(labels, (200, 200), (60, 40), 0, 0, 360, 1, -1)
    cv2.ellipse(labels, (600, 300), (50, 70), 0, 0, 360, 2, -1)
    return labels


def video_input(folder: Path, labels: np.ndarray):
    from stseg_core.models.base import VideoInput

    paths = sorted(folder.glob("*.jpg"))

    def frames():
        for p in paths:
            yield np.asarray(Image.open(p).convert("RGB"))

    return VideoInput(
        name=folder.name,
        stems=tuple(p.stem for p in paths),
        height=H,
        width=W,
        first_labels=labels,
        object_ids=IDS,
        frames=frames,
    )


def direct_predictor(ckpt: Path, size: int):
    from sam2.build_sam import build_sam2_video_predictor

    return build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        str(ckpt),
        device="cpu",
        apply_postprocessing=False,
        hydra_overrides_extra=[f"++model.image_size={size}"],
    )


def rss_mib() -> float:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_direct(pred, folder: Path, labels: np.ndarray, samples: list[float] | None = None) -> int:
    """What a caller of upstream does to get binary masks per frame and object."""
    state = pred.init_state(str(folder), offload_video_to_cpu=True)
    for i in IDS:
        pred.add_new_mask(state, 0, i, labels == i)
    n = 0
    for _t, _ids, masks in pred.propagate_in_video(state):
        (masks > 0).cpu().numpy()
        n += 1
        if samples is not None:
            samples.append(rss_mib())
    return n


def run_adapter(model, folder: Path, labels: np.ndarray, samples: list[float] | None = None) -> int:
    n = 0
    for _ in model.segment(video_input(folder, labels)):
        n += 1
        if samples is not None:
            samples.append(rss_mib())
    return n


def child(which: str, ckpt: Path, folder: Path, labels_path: Path, size: int, threads: int) -> None:
    """One measured run in this (fresh) process; prints frames, RSS before the video, the peak RSS
    sampled after every frame, and the process's peak RSS (ru_maxrss, includes loading), all MiB."""
    import gc

    import torch

    torch.set_num_threads(threads)
    labels = np.load(labels_path)
    if which == "adapter":
        from stseg_core.models.sam2 import build

        model = build(checkpoint=str(ckpt), size=size, device="cpu")
        run = run_adapter
    else:
        model = direct_predictor(ckpt, size)
        run = run_direct
    gc.collect()
    before, samples = rss_mib(), []
    n = run(model, folder, labels, samples)
    print(n, before, max(samples), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure_rss(which: str, ckpt: Path, folder: Path, labels_path: Path, size: int, threads: int) -> list[float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            which,
            "--ckpt",
            str(ckpt),
            "--video",
            str(folder),
            "--labels",
            str(labels_path),
            "--size",
            str(size),
            "--threads",
            str(threads),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [float(v) for v in out[-4:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="model input size (multiple of 32)")
    ap.add_argument("--frames", type=int, default=8, help="frames of the overhead video")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (alternating; min is reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = least noise on a shared box)")
    ap.add_argument("--long", action="store_true", help="also measure RSS on a 500-frame video (slow)")
    ap.add_argument("--direct-long", action="store_true", help="with --long, also run upstream on 500 frames")
    ap.add_argument("--rss-threads", type=int, default=2, help="torch threads in the RSS runs (time is not measured)")
    ap.add_argument("--skip-rss", action="store_true", help="only the overhead table")
    ap.add_argument("--child", choices=["adapter", "direct"], help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.ckpt, args.video, args.labels, args.size, args.threads)
        return

    import torch

    from stseg_core.models.sam2 import build, save_random_checkpoint

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench_sam2_") as tmp:
        tmp = Path(tmp)
        ckpt = save_random_checkpoint(tmp / "t.pt", "t", seed=0)
        labels = write_video(tmp / "short", args.frames)

        # -- overhead: same weights, same video, alternating order; process CPU time (1 thread) is what the
        # code costs, wall time is shown too but other processes on a shared machine move it --------------
        adapter = build(checkpoint=str(ckpt), size=args.size, device="cpu")
        direct = direct_predictor(ckpt, args.size)
        cpu: dict[str, list[float]] = {"direct": [], "adapter": []}
        wall: dict[str, list[float]] = {"direct": [], "adapter": []}
        run_adapter(adapter, tmp / "short", labels)  # warm-up (allocator, lazy imports)
        for _ in range(args.repeats):
            for name in ("direct", "adapter"):
                c0, w0 = time.process_time(), time.perf_counter()
                n = (
                    run_direct(direct, tmp / "short", labels)
                    if name == "direct"
                    else run_adapter(adapter, tmp / "short", labels)
                )
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)
                assert n == args.frames
        print(
            f"# sam2 hiera-t @ {args.size}px, CPU ({torch.get_num_threads()} threads), {args.frames} frames "
            f"{W}x{H}, {len(IDS)} objects, min of {args.repeats} alternating runs"
        )
        print(f"{'side':<10}{'cpu s':>9}{'wall s':>9}{'wall s/frame':>14}")
        for name in ("direct", "adapter"):
            print(f"{name:<10}{min(cpu[name]):>9.2f}{min(wall[name]):>9.2f}{min(wall[name]) / args.frames:>14.3f}")
        print(
            f"overhead ratio adapter/direct: cpu {min(cpu['adapter']) / min(cpu['direct']):.3f}, "
            f"wall {min(wall['adapter']) / min(wall['direct']):.3f} (goal ≤ 1.05)"
        )
        del adapter, direct
        if args.skip_rss:
            return

        # -- RSS on long 480p videos ---------------------------------------------------------------------
        np.save(tmp / "labels.npy", labels)
        lengths = [100, 500] if args.long else [100]
        print(
            f"\n# RSS (MiB), fresh process per run, {args.rss_threads} threads; growth = peak sampled after each "
            f"frame − RSS before the video; for scale: T full-res uint8 frames = T×{H * W * 3 / 2**20:.2f} MiB"
        )
        print(f"{'frames':>7}{'side':>9}{'before':>9}{'peak':>9}{'growth':>9}{'ru_maxrss':>11}{'T×full-res':>12}")
        for t in lengths:
            folder = tmp / f"long{t}"
            write_video(folder, t)
            sides = ("adapter", "direct") if t <= 100 or args.direct_long else ("adapter",)
            for side in sides:
                _n, before, peak, maxrss = measure_rss(
                    side, ckpt, folder, tmp / "labels.npy", args.size, args.rss_threads
                )
                print(
                    f"{t:>7}{side:>9}{before:>9.0f}{peak:>9.0f}{peak - before:>9.0f}{maxrss:>11.0f}"
                    f"{t * H * W * 3 / 2**20:>12.0f}"
                )


if __name__ == "__main__":
    main()
