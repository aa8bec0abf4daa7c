"""One launch per shard vs one launch per video: wall time per video of the real upstream programs on the CPU.

The same short synthetic videos go through the same adapter twice: once as the old per-video launch (one
process per video: `segment` per video) and once as one launch over all of them (`segment_many`, what the
infer stage now does per shard). Both runs convert every frame. The program's start-up (launch until it
begins writing its first video: imports, weights, set-up) is measured separately on every per-video launch.
The real programs run from `../shared/upstream` (or `make upstream`'s build/upstream) with `device=cpu` and
random weights in their own format (`stseg_core.models.upstream.harness`).

    .venv/bin/python bench/bench_upstream_launch.py                       # xmem, 12 videos of 3-4 frames
    .venv/bin/python bench/bench_upstream_launch.py --models cutie,xmem,livos --videos 16

The saving per video is about one start-up; a MOSE shard of ~34 videos saves ~33 start-ups.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _videos(split: Path) -> list:
    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.base import VideoInput

    data = MoseSplit(split)
    return [VideoInput.from_split(data, name) for name in data.videos()]


def _drain(pairs) -> int:
    frames = 0
    for _video, results in pairs:
        frames += sum(1 for _ in results)
    return frames


def bench(model_name: str, videos: list, work: Path, trees: Path) -> dict:
    from stseg_core.models.upstream import PROGRAMS, build_upstream
    from stseg_core.models.upstream.harness import prepare_checkout, write_random_weights

    program = PROGRAMS[model_name]
    home = prepare_checkout(model_name, trees / program.folder, work / program.folder)
    torch_home = work / "torch"
    weights = write_random_weights(model_name, home, work / f"{model_name}.pth", torch_home=torch_home)
    os.environ["TORCH_HOME"] = str(torch_home)
    model = build_upstream(
        model_name, home=str(home), checkpoint=str(weights), device="cpu", size=96, scratch=str(work)
    )
    startups, layouts = [], []
    start = time.perf_counter()
    frames_old = 0
    for video in videos:  # the old way: one process per video
        frames_old += _drain(model.segment_many([video]))
        startups.append(model.startup_s)
        layouts.append(model.layout_s)
    per_video = time.perf_counter() - start
    start = time.perf_counter()
    frames_new = _drain(model.segment_many(videos))  # one process for all
    per_shard = time.perf_counter() - start
    assert frames_old == frames_new == sum(v.num_frames for v in videos)
    return {
        "model": model_name,
        "videos": len(videos),
        "frames": frames_new,
        "per_video_s": per_video,
        "per_shard_s": per_shard,
        "startup_s": statistics.median(startups),
        "layout_ms_per_video": 1000 * statistics.median(layouts),
        "shard_layout_ms": 1000 * model.layout_s,
        "shard_startup_s": model.startup_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="xmem", help="comma-separated: cutie, xmem, livos")
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads of the programs")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    from stseg_core.data.synth import SynthConfig, generate_split
    from stseg_core.models.upstream.harness import find_trees

    trees = find_trees(ROOT)
    if trees is None:
        raise SystemExit("no upstream checkouts in ../shared/upstream or build/upstream: run `make upstream`")
    with tempfile.TemporaryDirectory(prefix="bench-upstream-") as tmp:
        work = Path(tmp)
        cfg = SynthConfig(
            seed=7, height=96, width=128, videos=args.videos, min_frames=3, max_frames=4, min_objects=1, max_objects=2
        )
        generate_split(work / "data", cfg, "valid")
        videos = _videos(work / "data" / "valid")
        rows = [bench(m.strip(), videos, work, trees) for m in args.models.split(",") if m.strip()]
    print(
        f"{'model':<6} {'videos':>6} {'frames':>6} {'per-video launch s/video':>25} {'per-shard s/video':>18} "
        f"{'ratio':>6} {'start-up s':>10} {'layout ms/video':>15}"
    )
    for r in rows:
        old, new = r["per_video_s"] / r["videos"], r["per_shard_s"] / r["videos"]
        print(
            f"{r['model']:<6} {r['videos']:>6} {r['frames']:>6} {old:>25.2f} {new:>18.2f} {old / new:>6.2f} "
            f"{r['startup_s']:>10.2f} {r['layout_ms_per_video']:>15.2f}"
        )
    for r in rows:
        saved = (r["per_video_s"] - r["per_shard_s"]) / r["videos"]
        print(
            f"{r['model']}: one launch saves {saved:.2f} s per video here (start-up {r['startup_s']:.2f} s per "
            f"launch); estimate for a MOSE shard of 34 videos: 33 start-ups, {33 * r['startup_s']:.0f} s on this "
            f"CPU, plus CUDA context creation per launch on a GPU node"
        )


if __name__ == "__main__":
    main()
