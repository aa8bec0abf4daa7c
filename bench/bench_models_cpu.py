"""Frames per second, peak memory and J&F of every runnable model on CPU, at its test size, on one synthetic split.

Each case runs in a fresh process (so its peak RSS is its own) over the same synthetic validation split,
writes its predictions in the run layout and is scored with the project's J&F. The reference row only decodes
the frames: the other rows' time ratio says how much slower than reading the video a model is, and their
memory column how much it adds to a bare process.

    .venv/bin/python bench/bench_models_cpu.py                  # default cases, 240×432, 3 videos
    .venv/bin/python bench/bench_models_cpu.py --cases all --videos 6 --height 480 --width 854

To add a model, append a `Case` to CASES (`prepare` writes what it needs, e.g. a random-weight checkpoint,
and returns extra overrides); `default=False` keeps a slow case out of the default run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    name: str
    model: str | None  # None: decode frames only (the reference)
    overrides: dict = field(default_factory=dict)
    prepare: Callable[[Path], dict] | None = None
    default: bool = True


def _sam2_checkpoint(work: Path) -> dict:
    from stseg_core.models.sam2 import save_random_checkpoint

    return {"checkpoint": str(save_random_checkpoint(work / "sam2_t_random.pt", config="t", seed=0))}


CASES: list[Case] = [
    Case("decode only (reference)", None),
    Case("flowprop", "flowprop"),
    Case("flowprop flow=farneback", "flowprop", {"flow": "farneback"}),
    Case("flowprop motion=dense", "flowprop", {"motion": "dense"}),
    Case("flowprop refine=false", "flowprop", {"refine": "false"}),
    Case("oneshot", "oneshot"),
    Case("stm", "stm"),
    Case("tmo rn18 64 px (random weights)", "tmo", {"backbone": "rn18", "size": 64, "device": "cpu"}),
    Case("sam2 hiera-t 256 px (random weights)", "sam2", {"config": "t", "size": 256}, _sam2_checkpoint, default=False),
]


def _run_case(case: Case, split_root: str, out_root: str, work: str, threads: int) -> tuple[int, float, int]:
    """In a child process: segment (or only decode) every video; → (frames, seconds, peak RSS bytes)."""
    import cv2

    cv2.setNumThreads(threads)
    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.base import VideoInput
    from stseg_core.models.registry import build_model
    from stseg_core.predictions import write_video_predictions
    from stseg_core.store import open_store

    split = MoseSplit(split_root)
    overrides = dict(case.overrides)
    if case.prepare is not None:
        overrides.update(case.prepare(Path(work)))
    model = build_model(case.model, **overrides) if case.model else None
    if "torch" in sys.modules:  # only models that use torch pay for importing it
        sys.modules["torch"].set_num_threads(threads)
    out = open_store(out_root)
    frames = 0
    t0 = time.perf_counter()
    for name in split.videos():
        video = VideoInput.from_split(split, name)
        if model is None:
            frames += sum(1 for _ in video.frames())
            continue
        write_video_predictions(
            out,
            case.model,
            name,
            model.segment(video),
            stems=video.stems,
            object_ids=video.object_ids,
            confidence_definition=model.confidence_definition,
            prefix="pred",
        )
        frames += video.num_frames
    seconds = time.perf_counter() - t0
    return frames, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="default", help="'default', 'all', or comma-separated case names")
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=432)
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--frames", default="30-40", help="min-max frames per video")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="math/OpenCV threads per case (1 = stable timings)")
    args = ap.parse_args(argv)

    from stseg_core.data.synth import SynthConfig, generate_split
    from stseg_core.metrics.evaluate import evaluate

    if args.cases == "all":
        cases = CASES
    elif args.cases == "default":
        cases = [c for c in CASES if c.default]
    else:
        wanted = [w.strip() for w in args.cases.split(",")]
        cases = [c for c in CASES if c.name in wanted or (c.model is None)]
        missing = set(wanted) - {c.name for c in CASES}
        if missing:
            ap.error(f"unknown case(s) {sorted(missing)}; known: {[c.name for c in CASES]}")
    lo, hi = (int(x) for x in args.frames.split("-"))
    cfg = SynthConfig(
        seed=args.seed, height=args.height, width=args.width, videos=args.videos, min_frames=lo, max_frames=hi
    )
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="stseg-bench-models-") as tmp:
        root = Path(tmp)
        generate_split(root / "synth", cfg, "valid")
        print(
            f"synthetic valid split: {args.videos} videos, {lo}-{hi} frames, {args.height}x{args.width}, "
            f"seed {args.seed}; {args.threads} thread(s) per case; CPU"
        )
        rows = []
        for i, case in enumerate(cases):
            out = root / f"case{i}"
            with ctx.Pool(1) as pool:
                frames, seconds, rss = pool.apply(
                    _run_case, (case, str(root / "synth" / "valid"), str(out), tmp, args.threads)
                )
            jf = None
            if case.model is not None:
                jf = evaluate(str(root / "synth" / "valid_gt"), str(out / "pred")).scores["J&F-Mean"]
            rows.append((case.name, frames, seconds, rss, jf))
    ref_s, ref_rss = rows[0][2], rows[0][3]
    print(
        f"{'case':40s} {'frames':>6s} {'FPS':>7s} {'ms/frame':>9s} {'× decode':>9s} {'peak RSS':>10s} "
        f"{'+ vs ref':>9s} {'J&F':>6s}"
    )
    for name, frames, seconds, rss, jf in rows:
        print(
            f"{name:40s} {frames:6d} {frames / seconds:7.1f} {1000 * seconds / frames:9.1f} "
            f"{seconds / ref_s:9.1f} {rss / 2**20:8.0f} MB {(rss - ref_rss) / 2**20:6.0f} MB "
            f"{'' if jf is None else f'{100 * jf:6.1f}'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
