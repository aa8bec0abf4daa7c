"""`python -m stseg_jobs.finetune`: finetune one model (sam2 or tmo), configured by the Job environment.

Under torchrun (`--nproc_per_node=<gpus>`, as the Kubernetes backend launches multi-GPU finetunes) every
process runs this; rank 0 writes checkpoints and validates, the others only train.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from stseg_core.preflight import Preflight
from stseg_jobs._env import Submit, check_entry, env_field, from_env, job_main, json_object, positive_int, seconds

SUBMIT = Submit("finetune", order=10, per_model=True, runs_model=True)


@dataclass(frozen=True)
class FinetuneEnv:
    """What a finetune Job reads. Recipe fields come from STSEG_RECIPE (a JSON object such as
    {"config": "l", "resolution": 1024}; `stseg submit finetune --option recipe=…`) and from STSEG_INIT,
    STSEG_EPOCHS, STSEG_DEVICE (`--option init=… --option epochs=…`), which win over it."""

    run_root: str = env_field("STSEG_RUN_ROOT", doc="the run root URI, <store>/runs/<run-id>")
    data_root: str = env_field("STSEG_DATA_ROOT", doc="the training split root holding JPEGImages/ and Annotations/")
    model: str = env_field("STSEG_MODEL", doc="a model with a finetune recipe (sam2, tmo)")
    stage: str = env_field("STSEG_STAGE", default="finetune")
    store: str | None = env_field(
        "STSEG_STORE", default=None, doc="store root for checkpoints (default: the run root's store)"
    )
    pushgateway: str | None = env_field("STSEG_PUSHGATEWAY", default=None)
    scratch: str | None = env_field("STSEG_SCRATCH", default=None)
    recipe: Mapping[str, object] | None = env_field("STSEG_RECIPE", parse=json_object, default=None)
    init: str | None = env_field("STSEG_INIT", default=None, doc="initial checkpoint URI, or 'random'")
    epochs: int | None = env_field("STSEG_EPOCHS", parse=positive_int, default=None)
    device: str | None = env_field("STSEG_DEVICE", default=None)
    deadline_s: float | None = env_field("STSEG_DEADLINE_S", parse=seconds, default=None)

    def options(self) -> dict[str, object]:
        single = {k: getattr(self, k) for k in ("init", "epochs", "device")}
        return {**(self.recipe or {}), **{k: v for k, v in single.items() if v is not None}}


def check(env: Mapping[str, str], pre: Preflight) -> None:
    """What `stseg submit` checks before creating this Job: the environment and recipe parsed as `run` parses
    them, the init checkpoint and the training split present."""
    from stseg_core.preflight import require_recipe

    cfg = from_env(FinetuneEnv, env)
    require_recipe(cfg.model, cfg.options(), pre)
    pre.require_data_root(cfg.data_root, "training split")


def run(env: Mapping[str, str] | None = None) -> str:
    from stseg_core.names import run_id_of, store_of_run_root
    from stseg_core.stages import finetune
    from stseg_core.stages.common import Reporting

    cfg = from_env(FinetuneEnv, env)
    check_entry(cfg.stage, "finetune")
    return finetune.run(
        finetune.FinetuneConfig(
            model=cfg.model,
            data_root=cfg.data_root,
            store=cfg.store or store_of_run_root(cfg.run_root),
            run_id=run_id_of(cfg.run_root),
            options=cfg.options(),
            scratch=cfg.scratch,
            reporting=Reporting(cfg.pushgateway, cfg.deadline_s),
        )
    ).summary()


def main(env: Mapping[str, str] | None = None) -> int:
    return job_main("finetune", lambda: run(env))


if __name__ == "__main__":
    sys.exit(main())
