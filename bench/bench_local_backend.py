"""Local backend: overhead per shard (process start, supervision, done markers) and parallel efficiency.

Prints one table. References measured in the same run:
  * overhead: the same trivial shard script started with a bare `subprocess.run`, one after the other;
  * efficiency: the same CPU-bound shards with 1 worker; efficiency = T(1 worker) / (2 × T(2 workers)).
`--real` adds the real `stseg_jobs.infer` (flowprop) on a small synthetic split, 1 vs 2 workers.

    .venv/bin/python bench/bench_local_backend.py [--shards 16] [--busy 0.5] [--real]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path

from stseg_cli.backends.local import LocalBackend
from stseg_cli.config import Config
from stseg_cli.spec import StageRequest, build_specs

# A shard with the stage contract and no heavy imports: optional busy work, then its done marker.
SHARD = textwrap.dedent("""
    import json, os, time
    from pathlib import Path
    k = os.environ["JOB_COMPLETION_INDEX"]
    end = time.process_time() + float(os.environ.get("STSEG_BUSY", "0"))
    while time.process_time() < end:
        pass
    done = Path(os.environ["STSEG_RUN_ROOT"]) / "pred" / os.environ["STSEG_MODEL"] / "_done"
    done.mkdir(parents=True, exist_ok=True)
    (done / f"{k}.json").write_text(json.dumps({"files": {}}))
""")


def _run(root: Path, run: str, shards: int, workers: int, busy: float, command: tuple[str, ...] | None) -> float:
    cfg = Config(store=str(root / "store"), data_root=str(root / "data" / "valid"), state_dir=str(root / "state"))
    req = StageRequest("infer", models=("flowprop",), shards=shards, options=(("busy", str(busy)),))
    specs = build_specs(cfg, run, req, default_gpus=False)
    if command:
        specs = [replace(s, command=command) for s in specs]
    t0 = time.perf_counter()
    status = LocalBackend(cfg, workers=workers).submit(specs, wait=True)
    seconds = time.perf_counter() - t0
    assert status.succeeded, status
    return seconds


def _bare(script: Path, root: Path, shards: int) -> float:
    t0 = time.perf_counter()
    for k in range(shards):
        env = {
            **os.environ,
            "JOB_COMPLETION_INDEX": str(k),
            "STSEG_RUN_ROOT": str(root / "bare"),
            "STSEG_MODEL": "flowprop",
        }
        subprocess.run([sys.executable, str(script)], env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--busy", type=float, default=0.5, help="CPU seconds per shard in the efficiency test")
    ap.add_argument("--real", action="store_true", help="also time the real infer stage (flowprop)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "store").mkdir()
        script = root / "shard.py"
        script.write_text(SHARD)
        cmd = ("python", str(script))
        bare = _bare(script, root, args.shards)
        local = _run(root, "overhead", args.shards, 1, 0.0, cmd)
        rows.append(("trivial shard, bare subprocess.run", 1, args.shards, bare, bare / args.shards, 1.0))
        rows.append(("trivial shard, local backend", 1, args.shards, local, local / args.shards, local / bare))
        shards = max(2, args.shards // 2)
        one = _run(root, "busy1", shards, 1, args.busy, cmd)
        two = _run(root, "busy2", shards, 2, args.busy, cmd)
        rows.append((f"{args.busy:g} CPU-s shard, 1 worker", 1, shards, one, one / shards, 1.0))
        rows.append((f"{args.busy:g} CPU-s shard, 2 workers", 2, shards, two, two / shards, one / (2 * two)))
        if args.real:
            from stseg_core.data.synth import SynthConfig, generate_split
            from stseg_core.stages.infer import ensure_plan

            generate_split(
                root / "data", SynthConfig(seed=0, height=96, width=160, min_frames=8, max_frames=12, videos=8), "valid"
            )
            for workers in (1, 2):
                run = f"real{workers}"
                run_root = root / "store" / "runs" / run
                ensure_plan(str(root / "data" / "valid"), str(run_root), 4)
                t = _run(root, run, 4, workers, 0.0, None)
                rows.append(
                    (
                        f"real infer flowprop, {workers} worker(s)",
                        workers,
                        4,
                        t,
                        t / 4,
                        1.0 if workers == 1 else rows[-1][3] / (2 * t),
                    )
                )
    print(f"{'case':<38} {'workers':>7} {'shards':>6} {'total s':>8} {'s/shard':>8} {'ratio':>7}")
    for name, workers, shards, total, per, ratio in rows:
        print(f"{name:<38} {workers:>7} {shards:>6} {total:>8.2f} {per:>8.3f} {ratio:>7.2f}")
    print("ratio: local backend ÷ bare subprocess (overhead rows); parallel efficiency T1 / (2·T2) (2-worker rows)")


if __name__ == "__main__":
    main()
