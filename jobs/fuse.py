"""`python -m stseg_jobs.fuse`: one index of the PGMR fuse stage (the plan's shards k ≡ index mod
STSEG_NUM_SHARDS; whichever index finds every index done merges recommend.json and eval/), configured by the Job
environment. A done index is skipped (a re-run Indexed Job redoes only what is missing)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from stseg_core.names import split_names
from stseg_core.preflight import Preflight
from stseg_jobs._env import (
    Submit,
    boolean,
    check_entry,
    env_field,
    from_env,
    job_main,
    non_negative_int,
    positive_int,
    seconds,
)

SUBMIT = Submit("fuse", order=30, sharded=True)


def _models(text: str) -> tuple[str, ...]:
    names = split_names(text)
    if not names:
        raise ValueError("no model names (use a comma-separated list, e.g. sam2,tmo,cutie)")
    return names


def _choice(text: str) -> str:
    from stseg_core.fusion.pgmr import CHOICES

    if text not in CHOICES:
        raise ValueError(f"not a PGMR choice (known: {', '.join(CHOICES)})")
    return text


@dataclass(frozen=True)
class FuseEnv:
    """What a fuse Job reads: the run, the split the models ran on, the models, optional ground truth,
    performance database and wait, what PGMR keeps (`--option choose=…`, `--option raw-confidences=true`, as
    `stseg fuse --choose/--raw-confidences`), and which index of how many this is."""

    run_root: str = env_field("STSEG_RUN_ROOT", doc="the run root URI holding plan.json and pred/")
    data_root: str = env_field("STSEG_DATA_ROOT", doc="the split root URI holding JPEGImages/ and Annotations/")
    models: tuple[str, ...] = env_field("STSEG_MODELS", parse=_models, doc="comma-separated model names to fuse")
    gt_root: str | None = env_field("STSEG_GT_ROOT", default=None)
    db_uri: str | None = env_field("STSEG_DB", default=None)
    wait_s: float = env_field("STSEG_WAIT", parse=seconds, default=0.0)
    k: int = env_field("STSEG_NEIGHBOURS", parse=non_negative_int, default=5)
    stage: str = env_field("STSEG_STAGE", default="fuse")
    pushgateway: str | None = env_field("STSEG_PUSHGATEWAY", default=None)
    choose: str = env_field("STSEG_CHOOSE", parse=_choice, default="vote", doc="vote, video or span")
    raw_confidences: bool = env_field("STSEG_RAW_CONFIDENCES", parse=boolean, default=False)
    indexes: int = env_field(
        "STSEG_NUM_SHARDS",
        parse=positive_int,
        default=1,
        doc="fuse indexes (the Job's completions); each fuses the plan shards k ≡ index",
    )
    index: int = env_field("JOB_COMPLETION_INDEX", parse=non_negative_int, default=0)
    deadline_s: float | None = env_field("STSEG_DEADLINE_S", parse=seconds, default=None)


def check(env: Mapping[str, str], pre: Preflight) -> None:
    """What `stseg submit` checks before creating this Job: the environment parsed as `run` parses it, the
    split's layout, the ground truth and performance database when named."""
    cfg = from_env(FuseEnv, env)
    pre.require_data_root(cfg.data_root)
    if cfg.gt_root:
        pre.require_data_root(cfg.gt_root, "ground truth", folders=("Annotations",))
    if cfg.db_uri:
        pre.require_perfdb(cfg.db_uri)


def run(env: Mapping[str, str] | None = None) -> str:
    from stseg_core.fusion.stage import FuseConfig
    from stseg_core.stages import fuse
    from stseg_core.stages.common import Reporting

    cfg = from_env(FuseEnv, env)
    check_entry(cfg.stage, "fuse", cfg.index, cfg.indexes)
    config = FuseConfig(
        cfg.run_root,
        cfg.data_root,
        cfg.models,
        cfg.gt_root,
        cfg.db_uri,
        cfg.wait_s,
        k=max(1, cfg.k),
        choose=cfg.choose,
        calibrate=not cfg.raw_confidences,
        index=cfg.index,
        indexes=cfg.indexes,
        resume=True,
    )
    return fuse.run(fuse.FuseStageConfig(config, Reporting(cfg.pushgateway, cfg.deadline_s))).summary()


def main(env: Mapping[str, str] | None = None) -> int:
    return job_main("fuse", lambda: run(env))


if __name__ == "__main__":
    sys.exit(main())
