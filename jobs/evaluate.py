"""`python -m stseg_jobs.evaluate`: J&F of one run output against ground truth, configured by the Job environment.

Variables (besides the common ones):
- `STSEG_DATA_ROOT` (required): the ground-truth split root (holding `Annotations/`), or its `Annotations` folder.
- `STSEG_RUN_ROOT` (required): the run root; predictions are read from `<run root>/<STSEG_PRED_PREFIX>`.
- `STSEG_PRED_PREFIX`: default `pred/<STSEG_MODEL>` when `STSEG_MODEL` is set, else `fused`.
- `STSEG_EVAL_NAME`: results go to `<run root>/eval/<name>/`; default `STSEG_MODEL`, else `pgmr` (the fuse
  stage's name for its output).
- `STSEG_METRIC`: `davis` (default) or `mosev2`.
- `STSEG_WORKERS`: scoring processes (default: the CPUs this pod may use — its CPU limit, `--cpu`, not the node's
  count). This is how eval scales to MOSE's size: give the Job more CPUs (`stseg submit eval --cpu 8`), not shards
  (every shard would list the whole ground truth and predictions, and the global means need one merge).
- `STSEG_VIDEOS`: comma-separated videos to score (default: all of the ground truth).
- `STSEG_MISSING_AS_EMPTY`: true to score missing prediction frames/videos as empty masks (default false).
- `STSEG_SPLIT`: split name in the CSV file names (default: the ground-truth root's folder name).
Reports `stseg_eval_jf{method=<name>, metric=<statistic>}` (J&F-Mean, J-Mean, F-Mean; the J&Ḟ ones for
mosev2; in percent) and the frames/videos scored (`stseg_core.stages.evaluate`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from stseg_core.names import split_names
from stseg_core.preflight import Preflight
from stseg_jobs._env import Submit, boolean, check_entry, env_field, from_env, job_main, positive_int, seconds

SUBMIT = Submit("eval", order=40, per_model=True)  # `stseg submit eval`; the Job calls itself evaluate


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity set, capped by its cgroup (v2) CPU quota — what a pod's CPU limit
    becomes. `os.cpu_count()` is the node's count: 96 scoring processes in a 2-CPU, 8 GiB pod would thrash or be
    killed for memory."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            n = min(n, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity set is the limit
    return max(1, n)


def _metric(text: str) -> str:
    from stseg_core.metrics.jf import METRICS

    if text not in METRICS:
        raise ValueError(f"must be {' or '.join(METRICS)}")
    return text


@dataclass(frozen=True)
class EvaluateEnv:
    """What an evaluate Job reads (see the module docstring)."""

    data_root: str = env_field("STSEG_DATA_ROOT", doc="the ground-truth split root holding Annotations/")
    run_root: str = env_field("STSEG_RUN_ROOT", doc="the run root URI holding the predictions")
    model: str | None = env_field("STSEG_MODEL", default=None)
    pred_prefix: str | None = env_field("STSEG_PRED_PREFIX", default=None)
    eval_name: str | None = env_field("STSEG_EVAL_NAME", default=None)
    metric: str = env_field("STSEG_METRIC", parse=_metric, default="davis")
    workers: int = env_field("STSEG_WORKERS", parse=positive_int, default_factory=usable_cpus)
    videos: tuple[str, ...] = env_field("STSEG_VIDEOS", parse=split_names, default=())
    missing_as_empty: bool = env_field("STSEG_MISSING_AS_EMPTY", parse=boolean, default=False)
    split: str | None = env_field("STSEG_SPLIT", default=None)
    stage: str = env_field("STSEG_STAGE", default="evaluate")
    pushgateway: str | None = env_field("STSEG_PUSHGATEWAY", default=None)
    deadline_s: float | None = env_field("STSEG_DEADLINE_S", parse=seconds, default=None)


def check(env: Mapping[str, str], pre: Preflight) -> None:
    """What `stseg submit` checks before creating this Job: the environment parsed as `run` parses it and the
    ground truth's Annotations/ present."""
    cfg = from_env(EvaluateEnv, env)
    root, _, last = cfg.data_root.rstrip("/").rpartition("/")
    pre.require_data_root(root if last == "Annotations" else cfg.data_root, "ground truth", folders=("Annotations",))


def run(env: Mapping[str, str] | None = None) -> str:
    from stseg_core.stages import evaluate
    from stseg_core.stages.common import Reporting
    from stseg_core.store import join_key

    cfg = from_env(EvaluateEnv, env)
    check_entry(cfg.stage, "evaluate")
    pred_prefix = cfg.pred_prefix or (join_key("pred", cfg.model) if cfg.model else "fused")
    name = cfg.eval_name or cfg.model or "pgmr"
    where = evaluate.EvaluateConfig.in_run(cfg.data_root, cfg.run_root, pred_prefix, name)
    return evaluate.run(
        replace(
            where,
            metric=cfg.metric,
            workers=cfg.workers,
            videos=cfg.videos,
            missing_as_empty=cfg.missing_as_empty,
            split=cfg.split,
            reporting=Reporting(cfg.pushgateway, cfg.deadline_s),
        )
    ).summary()


def main(env: Mapping[str, str] | None = None) -> int:
    return job_main("evaluate", lambda: run(env))


if __name__ == "__main__":
    sys.exit(main())
