"""`python -m stseg_jobs.infer`: one shard of one model's inference, configured by the Job environment."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from stseg_core.preflight import Preflight
from stseg_jobs._env import (
    Submit,
    check_entry,
    env_field,
    from_env,
    job_main,
    json_object,
    non_negative_int,
    positive_int,
    seconds,
)

SUBMIT = Submit("infer", order=20, per_model=True, sharded=True, runs_model=True)


@dataclass(frozen=True)
class InferEnv:
    """What an infer Job reads. `model_options` are the model's overrides (`STSEG_MODEL_OPTIONS`, a JSON
    object such as {"flow": "farneback"}); `checkpoint` and `device`, when set, join them."""

    run_root: str = env_field("STSEG_RUN_ROOT", doc="the run root URI, e.g. s3://bucket/runs/<run-id>")
    data_root: str = env_field("STSEG_DATA_ROOT", doc="the split root URI holding JPEGImages/ and Annotations/")
    model: str = env_field("STSEG_MODEL", doc="a registered model name")
    num_shards: int = env_field("STSEG_NUM_SHARDS", parse=positive_int, doc="the plan's number of shards")
    shard: int = env_field("JOB_COMPLETION_INDEX", parse=non_negative_int, default=0)
    stage: str = env_field("STSEG_STAGE", default="infer")
    pushgateway: str | None = env_field("STSEG_PUSHGATEWAY", default=None)
    model_options: Mapping[str, object] | None = env_field("STSEG_MODEL_OPTIONS", parse=json_object, default=None)
    checkpoint: str | None = env_field("STSEG_CHECKPOINT", default=None)
    device: str | None = env_field("STSEG_DEVICE", default=None)
    scratch: str | None = env_field("STSEG_SCRATCH", default=None)
    deadline_s: float | None = env_field("STSEG_DEADLINE_S", parse=seconds, default=None)

    def overrides(self) -> dict[str, object]:
        extra = {k: v for k, v in (("checkpoint", self.checkpoint), ("device", self.device)) if v is not None}
        return {**(self.model_options or {}), **extra}


def check(env: Mapping[str, str], pre: Preflight) -> None:
    """What `stseg submit` checks before creating this Job: the environment parsed as `run` parses it, the
    model's weights named and present, the split's layout."""
    from stseg_core.models.registry import check_options
    from stseg_core.preflight import require_weights

    cfg = from_env(InferEnv, env)
    check_options(cfg.model, cfg.overrides())
    require_weights(cfg.model, cfg.overrides(), pre)
    pre.require_data_root(cfg.data_root)


def run(env: Mapping[str, str] | None = None) -> str:
    from stseg_core.stages import infer
    from stseg_core.stages.common import Reporting

    cfg = from_env(InferEnv, env)
    check_entry(cfg.stage, "infer", cfg.shard, cfg.num_shards)
    return infer.run(
        infer.InferConfig(
            data_root=cfg.data_root,
            run_root=cfg.run_root,
            model=cfg.model,
            shard=cfg.shard,
            num_shards=cfg.num_shards,
            overrides=cfg.overrides(),
            scratch=cfg.scratch,
            reporting=Reporting(cfg.pushgateway, cfg.deadline_s),
        )
    ).summary()


def main(env: Mapping[str, str] | None = None) -> int:
    return job_main("infer", lambda: run(env))


if __name__ == "__main__":
    sys.exit(main())
