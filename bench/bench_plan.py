"""Shard balance on a MOSE-sized set (2,149 videos, lognormal lengths, ~2.4 objects): heaviest shard ÷ mean.

Reference measured in the same run: sharding by video count (round robin) and LPT greedy without refinement.
Run: .venv/bin/python bench/bench_plan.py [--videos 2149] [--shards 64] [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

from stseg_core.data.synth import mose_like_costs
from stseg_core.plan import plan_shards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=2149)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    print(f"{'seed':>4} {'by count':>9} {'LPT':>7} {'LPT+refine':>10} {'time s':>7}  (heaviest shard ÷ mean)")
    worst = 0.0
    for seed in range(args.seeds):
        costs = mose_like_costs(args.videos, seed)
        mean = sum(costs.values()) / args.shards
        names = sorted(costs)
        by_count = max(sum(costs[v] for v in names[i :: args.shards]) for i in range(args.shards)) / mean
        lpt = plan_shards(costs, args.shards, refine_rounds=0).imbalance
        t0 = time.perf_counter()
        plan = plan_shards(costs, args.shards)
        dt = time.perf_counter() - t0
        worst = max(worst, plan.imbalance)
        print(f"{seed:>4} {by_count:>9.4f} {lpt:>7.4f} {plan.imbalance:>10.5f} {dt:>7.2f}")
    print(f"worst heaviest/mean over {args.seeds} sets: {worst:.5f} (goal ≤ 1.05)")


if __name__ == "__main__":
    main()
