"""Time and memory to build `stseg report` for a 300-video run (goal: < 60 s on 2 cores).

The run is made by the real stages on a small synthetic split: `--base` videos are generated, predicted by the
seeded fixture predictors and fused with ground truth by the fuse stage; then every video is cloned under new
names (hard links for files, copied entries in recommend.json and eval/<method>/results.json) until the run
holds `--videos` videos. The report itself sees an ordinary run of that many videos. Each report is built in a
fresh process (`stseg report`, imports included), so the time is what a user waits and the RSS is its peak.
The reference row is a run of `--base` videos measured in the same invocation; the ratio is against 60 s.

    .venv/bin/python bench/bench_report.py                         # 300 videos cloned from 12, 72×128
    .venv/bin/python bench/bench_report.py --videos 1000 --size 240x427 --frames 30-60
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 60.0
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "support" / "stseg_testing" / "synthetic_predictors.py"


def make_base(root: Path, videos: int, size: tuple[int, int], frames: tuple[int, int], seed: int) -> None:
    """<root>/data/test(+_gt) and <root>/run: fixture predictors' pred/, fused/, recommend.json, eval/."""
    from stseg_core.data.synth import SynthConfig, generate_dataset
    from stseg_core.fusion.stage import FuseConfig, run_fuse

    spec = importlib.util.spec_from_file_location("synthetic_predictors_bench", FIXTURES)
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    cfg = SynthConfig(
        seed=seed,
        height=size[0],
        width=size[1],
        min_frames=frames[0],
        max_frames=frames[1],
        videos=videos,
        min_objects=1,
        max_objects=3,
        noise=1.0,
    )
    generate_dataset(str(root / "data"), cfg, splits=("test",))
    models = fixtures.make_run(root / "data", "test", root / "run", seed)
    run_fuse(
        FuseConfig(
            str(root / "run"), str(root / "data" / "test"), tuple(models), gt_root=str(root / "data" / "test_gt")
        )
    )


def clone_run(base: Path, dest: Path, videos: int) -> None:
    """A copy of `base` (data + run) holding `videos` videos: the base videos, then clones named <video>-<n>."""
    shutil.copytree(base, dest, copy_function=os.link)
    run = dest / "run"
    names = sorted(p.name for p in (dest / "data/test/JPEGImages").iterdir())
    folders = [
        dest / "data/test/JPEGImages",
        dest / "data/test/Annotations",
        dest / "data/test_gt/Annotations",
        run / "fused",
        *(p for p in (run / "pred").iterdir()),
    ]
    rec = json.loads((run / "recommend.json").read_text())
    evals = {p: json.loads(p.read_text()) for p in (run / "eval").glob("*/results.json")}
    for n in range(videos - len(names)):
        src = names[n % len(names)]
        new = f"{src}-{n:04d}"
        for folder in folders:
            shutil.copytree(folder / src, folder / new, copy_function=os.link)
        rec["videos"][new] = {**rec["videos"][src], "video": new}
        for doc in evals.values():
            doc["videos"][new] = doc["videos"][src]
    for path, doc in ((run / "recommend.json", rec), *evals.items()):
        path.unlink()  # a hard link: do not write through to the base run
        path.write_text(json.dumps(doc))


_CHILD = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print(f'maxrss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}',"
    " file=sys.stderr))\n"
    "from stseg_cli.main import main\n"
    "sys.argv = ['stseg', *sys.argv[1:]]\n"
    "main()\n"
)


def build(run: Path, out: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, last line) of `stseg report` in a fresh process that reports its own peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, "report", str(run), "--out", str(out)], capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stseg report failed: {proc.stderr.strip()}")
    rss = next(int(line.split("=")[1]) for line in proc.stderr.splitlines() if line.startswith("maxrss_kib="))
    return seconds, rss / 1024, proc.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--base", type=int, default=12, help="videos made by the real stages before cloning")
    ap.add_argument("--size", default="72x128", help="frame HxW")
    ap.add_argument("--frames", default="10-16", help="frames per video, min-max")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    h, w = (int(x) for x in args.size.split("x"))
    lo, hi = (int(x) for x in args.frames.split("-"))
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_base(root / "base", args.base, (h, w), (lo, hi), args.seed)
        t_base = time.perf_counter() - t0
        t0 = time.perf_counter()
        clone_run(root / "base", root / "big", args.videos)
        t_clone = time.perf_counter() - t0
        print(
            f"set-up: {args.base} videos {h}x{w}, {lo}-{hi} frames by the real stages in {t_base:.1f} s; "
            f"cloned to {args.videos} in {t_clone:.1f} s"
        )
        rows = [
            (f"{args.base} videos (reference)", *build(root / "base/run", root / "rep-base")),
            (f"{args.videos} videos", *build(root / "big/run", root / "rep-big")),
        ]
        print(f"{'run':<24}{'seconds':>9}{'peak RSS MiB':>14}  output")
        for name, sec, rss, line in rows:
            print(f"{name:<24}{sec:>9.2f}{rss:>14.0f}  {line}")
        big = rows[-1][1]
        print(
            f"{args.videos}-video report: {big:.2f} s = {big / TARGET_S:.3f} × the {TARGET_S:.0f} s target; "
            f"{big / rows[0][1]:.2f} × the {args.base}-video run"
        )


if __name__ == "__main__":
    main()
