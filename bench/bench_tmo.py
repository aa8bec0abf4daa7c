"""TMO: how well its foreground→ids step assigns MOSE ids, and its speed / peak memory on CPU.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_tmo.py          # ids step, ~1 min
    .venv/bin/python bench/bench_tmo.py --speed                           # + speed of the small sizes (~1 min)
    .venv/bin/python bench/bench_tmo.py --speed --big                     # + rn50@256, rn101@384 (~5 min)
    .venv/bin/python bench/bench_tmo.py --skip-ids --upstream             # rn101@384 network: ours vs upstream (~2 min)

1. ids step (no network): on synthetic MOSE-like valid videos (`stseg_core.data.synth`, every hard case on
   at its default rate) the true foreground (union of all objects) is given as TMO's probability, and the
   step must name the objects. Compared in the same run, by DAVIS J&F (frames 1…T−2):
   - `warp+anchors`: the shipped `ForegroundSplitter` (DIS flow through the cached colour-wheel images,
     as `tmo` itself reads it; pixel colour as the anchor feature, standing in for trained decoder features);
   - `nearest-first`: the naive reference, each foreground pixel takes the id of the nearest first-frame pixel.
   The gap shows what flow warping and anchors add (it grows with video length: objects drift away from
   where they started); the true-foreground J&F is an upper bound on what a perfect TMO network would
   reach with this step.
2. speed (`--speed`): frames per second and peak RSS (fresh child process per row, ru_maxrss) of the whole
   `tmo` model (random weights, DIS flow) against `flowprop` on the same 240×427 video, up to the paper's
   ResNet-101 at 384 px (`--big`). The test-size row also sits in `bench_models_cpu.py` with every model.
3. network (`--upstream`): frames/s of the TMO rn101 network at 384 on CPU (one frame per forward, AOS off,
   as upstream tests), ours against upstream's own `TMO.forward` (../shared/upstream/TMO/tmo.py, same
   weights), alternated in the same process; goal: ours / upstream time ≤ 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np


def synth_videos(count: int, frames: int):
    """Yield (name, frames, ground-truth label maps) of synthetic valid videos at 240×427."""
    from stseg_core.data.synth import SynthConfig, plan_video, render_video

    cfg = SynthConfig(seed=11, height=240, width=427, min_frames=frames, max_frames=frames, videos=count, max_objects=4)
    for index in range(count):
        pairs = list(render_video(cfg, "valid", index))
        yield plan_video(cfg, "valid", index).name, [p[0] for p in pairs], [p[1] for p in pairs]


def ids_step_scores(videos: int, frames: int) -> dict[str, float]:
    from scipy import ndimage

    from stseg_core.metrics.jf import VideoAccumulator
    from stseg_core.models.flow import build_flow, flow_to_image, image_to_flow
    from stseg_core.models.tmo_ids import ForegroundSplitter

    dis = build_flow("dis")
    per_method: dict[str, list[float]] = {"warp+anchors": [], "nearest-first": []}
    for name, rgb, gt in synth_videos(videos, frames):
        ids = tuple(sorted(set(np.unique(gt[0]).tolist()) - {0}))
        feat = [f.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5 for f in rgb]
        splitter = ForegroundSplitter(gt[0], ids, feat[0])
        _, (iy, ix) = ndimage.distance_transform_edt(gt[0] == 0, return_indices=True)
        nearest_first = gt[0][iy, ix]
        acc = {m: VideoAccumulator(name, ids) for m in per_method}
        for t in range(1, len(rgb)):
            image, mx = flow_to_image(dis(rgb[t - 1], rgb[t]))
            labels, *_ = splitter.step((gt[t] > 0).astype(np.float32), image_to_flow(image, mx), feat[t])
            if t < len(rgb) - 1:
                acc["warp+anchors"].update(gt[t], labels, str(t))
                acc["nearest-first"].update(gt[t], np.where(gt[t] > 0, nearest_first, 0).astype(np.uint8), str(t))
        for method, a in acc.items():
            for obj in a.result().objects:
                per_method[method].append((obj.summary["J-Mean"] + obj.summary["F-Mean"]) / 2)
    return {m: float(np.mean(v)) for m, v in per_method.items()}


def speed_row(model: str, options: dict, frames: int) -> dict:
    """Run in a child: fps of `model` on one synthetic video, and this process's peak RSS."""
    from stseg_core.models.base import VideoInput
    from stseg_core.models.registry import build_model

    name, rgb, gt = next(synth_videos(1, frames))
    ids = tuple(sorted(set(np.unique(gt[0]).tolist()) - {0}))
    video = VideoInput(
        name=name,
        stems=tuple(f"{i:05d}" for i in range(len(rgb))),
        height=rgb[0].shape[0],
        width=rgb[0].shape[1],
        first_labels=gt[0],
        object_ids=ids,
        frames=lambda: iter(rgb),
    )
    m = build_model(model, **options)
    start = time.perf_counter()
    n = sum(1 for _ in m.segment(video))
    seconds = time.perf_counter() - start
    return {"fps": n / seconds, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def upstream_tmo():
    """Upstream's TMO('rn101', aos=False) from its own tmo.py; its ImageNet download replaced by random weights
    (the weights are loaded from ours after)."""
    import importlib.util
    from pathlib import Path

    import torchvision

    path = Path(__file__).resolve().parents[1].parent / "shared" / "upstream" / "TMO" / "tmo.py"
    spec = importlib.util.spec_from_file_location("tmo_upstream", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    builder = torchvision.models.resnet101
    torchvision.models.resnet101 = lambda pretrained: builder(weights=None)
    try:
        return module.TMO("rn101", False).eval()
    finally:
        torchvision.models.resnet101 = builder


def network_speed(reps: int, threads: int) -> None:
    """Median seconds per frame of our rn101 network and upstream's, alternated on the same 480×854 frame."""
    import torch

    from stseg_core.models.tmo import build_network

    torch.set_num_threads(threads)
    ours = build_network("rn101").eval()
    theirs = upstream_tmo()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    g = torch.Generator().manual_seed(0)
    img, flow = torch.rand(1, 3, 480, 854, generator=g), torch.rand(1, 3, 480, 854, generator=g)
    times: dict[str, list[float]] = {"ours": [], "upstream": []}
    with torch.inference_mode():
        runs = {
            "ours": lambda: torch.softmax(ours(img, flow), dim=1).argmax(dim=1),
            "upstream": lambda: theirs(img[:, None], flow[:, None])["masks"],
        }
        for rep in range(reps + 1):  # the first round warms up and is not counted
            for name, run in runs.items():
                t0 = time.perf_counter()
                run()
                if rep:
                    times[name].append(time.perf_counter() - t0)
        same = torch.equal(runs["ours"]()[0], runs["upstream"]()[0, 0, 0])
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"\nTMO rn101 network at 384 px, 480×854 frame, CPU, {threads} threads, median of {reps}")
    print(f"{'network':<12}{'s/frame':>10}{'frames/s':>10}")
    for name, sec in med.items():
        print(f"{name:<12}{sec:>10.3f}{1 / sec:>10.3f}")
    print(f"ratio ours / upstream: {med['ours'] / med['upstream']:.3f} (goal ≤ 1.05); same masks: {same}")


def child(model: str, options: dict, frames: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps([model, options, frames])],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4, help="synthetic videos for the ids-step comparison")
    ap.add_argument("--frames", type=int, default=60, help="frames per synthetic video (ids step)")
    ap.add_argument("--speed-frames", type=int, default=30, help="frames of the timed video")
    ap.add_argument("--speed", action="store_true", help="also time tmo against flowprop")
    ap.add_argument("--big", action="store_true", help="with --speed: ResNet-50@256 and ResNet-101@384 too (slow)")
    ap.add_argument("--upstream", action="store_true", help="time the rn101 network against upstream's")
    ap.add_argument("--reps", type=int, default=5, help="timed forwards per network (--upstream)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (--upstream)")
    ap.add_argument("--skip-ids", action="store_true", help="skip the ids-step comparison")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, options, frames = json.loads(args.child)
        print(json.dumps(speed_row(model, options, frames)))
        return

    if not args.skip_ids:
        scores = ids_step_scores(args.videos, args.frames)
        print(f"ids step with the true foreground, {args.videos} synthetic videos × {args.frames} frames (240×427)")
        print(f"{'method':<16}{'J&F':>8}")
        for method, jf in scores.items():
            print(f"{method:<16}{100 * jf:>8.1f}")
        print(f"ratio warp+anchors / nearest-first: {scores['warp+anchors'] / scores['nearest-first']:.2f}")
    if args.upstream:
        network_speed(args.reps, args.threads)
    if not args.speed:
        return

    rows = [
        ("flowprop", {}, "reference"),
        ("tmo", {"backbone": "rn18", "size": 64, "device": "cpu"}, "test size"),
        ("tmo", {"backbone": "rn18", "size": 256, "device": "cpu"}, ""),
    ]
    if args.big:
        rows += [
            ("tmo", {"backbone": "rn50", "size": 256, "device": "cpu"}, ""),
            ("tmo", {"backbone": "rn101", "size": 384, "device": "cpu"}, "paper"),
        ]
    print(f"\nCPU speed, one 240×427 video of {args.speed_frames} frames ({os.cpu_count()} cores visible)")
    print(f"{'model':<10}{'options':<58}{'fps':>7}{'peak RSS MiB':>14}{'fps vs flowprop':>17}")
    ref = None
    for model, options, note in rows:
        r = child(model, options, args.speed_frames)
        ref = ref or r["fps"]
        opts = ",".join(f"{k}={v}" for k, v in options.items() if k != "device") or "-"
        print(f"{model:<10}{opts:<58}{r['fps']:>7.2f}{r['rss_mib']:>14.0f}{r['fps'] / ref:>17.2f}  {note}")


if __name__ == "__main__":
    main()
