"""PGMR on the synthetic MOSE-like benchmark: the project's Table 2 (single models, bbox-average, bbox-max, PGMR).

Generates `valid` (the performance database's split) and `test` (never seen by the database) with the
synthetic generator, runs flowprop variants and the seeded synthetic predictors (test fixtures imitating
memory-tracker failures) on both, builds the database from valid, then runs the fuse stage on test.

    .venv/bin/python bench/bench_pgmr_synthetic.py --seed 7 --out /tmp/pgmr-bench     # prints the table
    .venv/bin/stseg fuse --run /tmp/pgmr-bench/runs/test --data /tmp/pgmr-bench/data/test \\
        --gt /tmp/pgmr-bench/data/test_gt --db /tmp/pgmr-bench/perfdb --models …  # prints it again
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

FLOWPROP_VARIANTS = ("flowprop", "flowprop-farneback", "flowprop-plain")  # registered names


def _fixtures():
    path = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "synthetic_predictors.py"
    spec = importlib.util.spec_from_file_location("synthetic_predictors", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def prepare(out: Path, seed: int, videos: int, size: tuple[int, int], frames: tuple[int, int], workers: int,
            shards: int) -> list[str]:
    from stseg_core.data.mose import MoseSplit
    from stseg_core.data.synth import SynthConfig, generate_dataset
    from stseg_core.infer import ensure_plan, run_shard
    from stseg_core.plan import ShardPlan
    from stseg_core.store import open_store

    fixtures = _fixtures()
    data = out / "data"
    if not (data / "meta.json").exists():
        cfg = SynthConfig(seed=seed, height=size[0], width=size[1], min_frames=frames[0], max_frames=frames[1],
                          videos=videos, min_objects=1, max_objects=4)
        generate_dataset(str(data), cfg, workers=workers, splits=("valid", "test"))
    models = [*FLOWPROP_VARIANTS, *fixtures.PREDICTORS]
    for split in ("valid", "test"):
        run_root = str(out / "runs" / split)
        ensure_plan(str(data / split), run_root, shards)
        for name in FLOWPROP_VARIANTS:
            t0 = time.perf_counter()
            for shard in range(shards):
                run_shard(data_root=str(data / split), run_root=run_root, model_name=name, shard=shard,
                          num_shards=shards)
            print(f"{split}: {name} {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        run_store = open_store(run_root)
        for name in fixtures.PREDICTORS:
            if not run_store.exists(f"pred/{name}/_done/0.json"):
                fixtures.write_predictions(run_store, name, MoseSplit(str(data / split)),
                                           MoseSplit(str(data / f"{split}_gt"), frames=False), seed,
                                           ShardPlan.load(run_store))
    return models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--videos", type=int, default=16, help="videos per split (valid and test)")
    ap.add_argument("--size", default="192x320", help="HxW of the synthetic frames")
    ap.add_argument("--frames", default="16-32", help="min-max frames per video")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/stseg-pgmr-bench"))
    args = ap.parse_args()
    from stseg_core.fusion.perfdb import render
    from stseg_core.fusion.stage import FuseConfig, build_database, format_table, run_fuse

    h, w = (int(x) for x in args.size.split("x"))
    f0, f1 = (int(x) for x in args.frames.split("-"))
    models = prepare(args.out, args.seed, args.videos, (h, w), (f0, f1), args.workers, args.shards)
    data = args.out / "data"
    db, uri = build_database(str(args.out / "runs" / "valid"), str(data / "valid"), str(data / "valid_gt"), models,
                             str(args.out / "perfdb"))
    print(render(db).split("\n\n")[0] + "\n" + render(db).split("\n\n")[1].split("\n")[0], file=sys.stderr)
    report = run_fuse(FuseConfig(str(args.out / "runs" / "test"), str(data / "test"), tuple(models),
                                 gt_root=str(data / "test_gt"), db_uri=uri))
    print(f"synthetic MOSE-like test split, seed {args.seed}, {args.videos} videos per split, {args.size}, "
          f"frames {args.frames}; database {uri} (built on valid)")
    print(format_table(report))


if __name__ == "__main__":
    main()
