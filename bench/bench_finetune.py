"""Finetune cost on CPU at the test size: seconds per training step, per trained frame, peak RSS, and the
ratio of training to inference cost per frame (the reference, measured in the same run by the checkpoint's
validation pass through the model's inference adapter).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_finetune.py              # sam2 t@128 + tmo r18@64 (~1-2 min)
    .venv/bin/python bench/bench_finetune.py --sam2-res 256 --epochs 3             # bigger

Each case runs in a fresh child process (ru_maxrss = that case's peak RSS): a synthetic 3-video train split
(2 train / 1 validation video), `--epochs` epochs, one validated checkpoint at the end. The first step is
warm-up and left out of the step statistics. The last lines turn the measured SAM2 train/infer ratio into
an estimate of the full recipe on 8 A100s (see stseg_core/train/README.md for the derivation).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Published: SAM2.1 README inference speed on one A100 (frames/s), by size. Used only for the estimate.
A100_FPS = {"t": 91.2, "s": 84.8, "b+": 64.1, "l": 39.5}
MOSE_TRAIN_VIDEOS = 1507


def child(case: str, args) -> dict:
    from stseg_core.data.synth import SynthConfig, generate_dataset
    from stseg_core.stages.finetune import run_finetune

    tmp = Path(tempfile.mkdtemp(prefix="bench-ft-"))
    frames = args.frames
    length = max(frames, args.video_frames)
    generate_dataset(
        tmp / "ds",
        SynthConfig(
            seed=1, height=96, width=128, min_frames=length, max_frames=length, min_objects=1, max_objects=2, videos=3
        ),
        splits=("train",),
    )
    if case == "sam2":
        from stseg_core.models.sam2 import save_random_checkpoint

        init = save_random_checkpoint(tmp / "t.pt", "t")
        opts = dict(
            init=str(init),
            config="t",
            resolution=args.sam2_res,
            num_frames=frames,
            max_objects=2,
            multiplier=2,
            epochs=args.epochs,
            checkpoint_every=args.epochs,
            device="cpu",
        )
        frames_per_step = frames  # one clip of T frames per step
    else:
        opts = dict(
            init="random",
            backbone="rn18",
            size=args.tmo_size,
            batch_size=4,
            epochs=args.epochs,
            checkpoint_every=args.epochs,
            device="cpu",
        )
        frames_per_step = 4
    t0 = time.perf_counter()
    res = run_finetune(
        case, opts, data_root=str(tmp / "ds/train"), store=str(tmp / "store"), run_id="b", scratch=tmp / "scratch"
    )
    wall = time.perf_counter() - t0
    steps = sorted(res.step_seconds[1:]) or res.step_seconds
    return {
        "case": case,
        "steps": len(res.step_seconds),
        "step_s": steps[len(steps) // 2],
        "frames_per_step": frames_per_step,
        "infer_frame_s": _infer_frame_seconds(case, opts, tmp),
        "wall_s": wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "losses": res.epoch_losses,
    }


def _infer_frame_seconds(case: str, opts: dict, tmp: Path) -> float:
    """The reference: the finetuned checkpoint in its inference adapter, seconds per tracked frame on the
    validation video (model build and the prompted first frame excluded; TMO's flow images come from the
    cache the finetune filled)."""
    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.base import VideoInput
    from stseg_core.models.registry import build_model

    ckpt = str(tmp / f"store/checkpoints/{case}/b/epoch_{opts['epochs']}.pt")
    if case == "sam2":
        model = build_model("sam2", checkpoint=ckpt, config="t", size=opts["resolution"], device="cpu")
    else:
        model = build_model("tmo", checkpoint=ckpt, size=opts["size"], device="cpu", flow_cache=str(tmp / "store"))
    data = MoseSplit(str(tmp / "ds/train"))
    video = VideoInput.from_split(
        data, json.loads((tmp / f"store/checkpoints/{case}/b/split.json").read_text())["val"][0]
    )
    frames = model.segment(video)
    next(frames)
    t0 = time.perf_counter()
    n = sum(1 for _ in frames)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=("sam2", "tmo"))
    ap.add_argument("--cases", default="sam2,tmo")
    ap.add_argument("--sam2-res", type=int, default=128)
    ap.add_argument("--tmo-size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=3, help="sam2 clip length T")
    ap.add_argument("--video-frames", type=int, default=8, help="frames per synthetic video")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    rows = []
    for case in args.cases.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            case,
            "--sam2-res",
            str(args.sam2_res),
            "--tmo-size",
            str(args.tmo_size),
            "--frames",
            str(args.frames),
            "--video-frames",
            str(args.video_frames),
            "--epochs",
            str(args.epochs),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"{'case':<24} {'steps':>5} {'s/step':>8} {'s/frame train':>13} {'s/frame infer':>13} "
        f"{'train/infer':>11} {'peak RSS MiB':>12} {'wall s':>7}"
    )
    for r in rows:
        label = (
            f"sam2 hiera-t @{args.sam2_res} T={r['frames_per_step']}"
            if r["case"] == "sam2"
            else f"tmo rn18 @{args.tmo_size} B=4"
        )
        per_frame = r["step_s"] / r["frames_per_step"]
        r["ratio"] = per_frame / r["infer_frame_s"]
        print(
            f"{label:<24} {r['steps']:>5} {r['step_s']:>8.3f} {per_frame:>13.3f} {r['infer_frame_s']:>13.3f} "
            f"{r['ratio']:>10.1f}x {r['peak_rss_mib']:>12.0f} {r['wall_s']:>7.1f}"
        )
    sam2 = next((r for r in rows if r["case"] == "sam2"), None)
    if sam2:
        # Full recipe: 85% of MOSE train, multiplier 2, batch 1 clip of 8 frames per GPU, 8 GPUs, 40 epochs.
        steps = 40 * (round(0.85 * MOSE_TRAIN_VIDEOS) * 2 // 8)
        step_s = sam2["ratio"] * 8 / A100_FPS["l"]
        hours = steps * step_s / 3600
        print(
            f"\nESTIMATE (derived, not measured on a GPU): SAM2.1-L recipe, 8×A100, {steps} steps; per step "
            f"{sam2['ratio']:.1f} (CPU-measured train/infer ratio) × 8 frames / {A100_FPS['l']} fps "
            f"(published A100 inference) = {step_s:.2f} s → {hours:.1f} h wall, {8 * hours:.0f} GPU-hours"
        )


if __name__ == "__main__":
    main()
