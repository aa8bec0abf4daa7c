"""Job specs: one backend-neutral description of a stage's work, which each backend renders (processes or Jobs)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace

from stseg_cli.job_stages import stages
from stseg_core.errors import BadInputError
from stseg_core.models import registry
from stseg_core.names import check_run_id, run_root

# Job variables the spec or a backend sets: where a job reads and writes, what it runs, and its store endpoint.
# A stage option (`--option key=value` → STSEG_KEY) may never set one of them (it would win over the spec's value
# and point a job at another bucket or endpoint). Both backends add STSEG_SCRATCH to every shard.
RESERVED_ENV = frozenset(
    {
        "STSEG_STAGE",
        "STSEG_RUN_ROOT",
        "STSEG_DATA_ROOT",
        "STSEG_GT_ROOT",
        "STSEG_STORE",
        "STSEG_MODEL",
        "STSEG_MODELS",
        "STSEG_NUM_SHARDS",
        "STSEG_DEADLINE_S",
        "STSEG_PUSHGATEWAY",
        "STSEG_S3_ENDPOINT",
        "STSEG_CHECKPOINT",
        "STSEG_SCRATCH",
    }
)

# Kubernetes quantities for --cpu (cores or millicores) and --memory (bytes with an optional SI/binary suffix).
_CPU_RE = re.compile(r"^(?=.*[1-9])\d+(\.\d+)?m?$")
_MEMORY_RE = re.compile(r"^(?=.*[1-9])\d+(\.\d+)?([KMGTPE]i?|k)?$")


def check_model(name: str, stage: str = "infer") -> str:
    """Refuse an unknown model (listing the known ones) or one the stage cannot use."""
    registry.info(name)  # raises BadInputError listing the known names
    if stage == "finetune":
        registry.recipe_of(name)  # raises BadInputError listing the finetunable models
    return name


def output_prefix(stage: str, model: str) -> str | None:
    """The run-root prefix whose `_done/<shard>.json` markers say a stage's shard is done (None: no markers)."""
    from stseg_core import runlayout

    if stage == "infer":
        return runlayout.pred_prefix(model)
    if stage == "fuse":
        return runlayout.FUSED
    return None


def job_name(run: str, stage: str, model: str = "") -> str:
    """`stseg-<run>-<stage>[-<model>]`: a job's name in both backends (a DNS label, ≤ 63 characters)."""
    return "-".join(p for p in ("stseg", run, stage, model) if p)


@dataclass(frozen=True)
class Resources:
    """What one shard's process/pod needs. Quantities use Kubernetes notation ("4", "500m", "16Gi")."""

    gpus: int = 0
    gpu_type: str = ""  # node-pool label value (e.g. nvidia-tesla-a100); "" = the preset's default
    cpu: str = "2"
    memory: str = "8Gi"
    scratch: str = "20Gi"  # emptyDir for caches and temporary files
    shm: str = "2Gi"  # /dev/shm (data-loader workers share tensors there); counts against `memory`


@dataclass(frozen=True)
class DoneWait:
    """A stage that must be finished first: the done marker of each of its `shards` under `prefix`
    (`pred/<model>` or `fused`, see `stseg_core.runlayout`)."""

    prefix: str
    shards: int


@dataclass(frozen=True)
class JobSpec:
    """One stage of one model of one run: `shards` indexes, each a process/pod running `command`.

    `run_root` (where the stage writes, `<store>/runs/<run>`) and `data_root` (what it reads) are the typed
    copies of `STSEG_RUN_ROOT` / `STSEG_DATA_ROOT`, which backends read instead of digging in `env`; `env` holds
    the whole Job environment except `JOB_COMPLETION_INDEX`, which the backend sets per shard. `waits_for`
    lists the upstream stages whose done markers must all exist before any shard starts.
    """

    run: str
    stage: str
    model: str
    image: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    run_root: str
    data_root: str
    resources: Resources = field(default_factory=Resources)
    shards: int = 1
    parallelism: int = 1
    retries: int = 2  # per shard
    max_failed_shards: int = 1
    deadline_s: int = 24 * 3600
    labels: tuple[tuple[str, str], ...] = ()
    waits_for: tuple[DoneWait, ...] = ()

    def __post_init__(self) -> None:
        env = self.env_dict
        if (env.get("STSEG_RUN_ROOT"), env.get("STSEG_DATA_ROOT")) != (self.run_root, self.data_root):
            raise ValueError(f"{self.name}: run_root/data_root differ from STSEG_RUN_ROOT/STSEG_DATA_ROOT in env")

    @property
    def name(self) -> str:
        return job_name(self.run, self.stage, self.model)

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def output_prefix(self) -> str | None:
        return output_prefix(self.stage, self.model)

    def to_dict(self) -> dict:
        """JSON-able form (the local backend keeps it in the run's state folder)."""
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> JobSpec:
        env = dict(d["env"])  # state written before the typed roots existed holds them only in env
        return cls(
            **{
                "run_root": env["STSEG_RUN_ROOT"],
                "data_root": env["STSEG_DATA_ROOT"],
                **d,
                "command": tuple(d["command"]),
                "env": tuple(tuple(p) for p in d["env"]),
                "resources": Resources(**d["resources"]),
                "labels": tuple(tuple(p) for p in d["labels"]),
                "waits_for": tuple(DoneWait(**w) for w in d["waits_for"]),
            }
        )


@dataclass(frozen=True)
class StageRequest:
    """What the user asked for one stage (after the CLI parsed its flags)."""

    stage: str
    models: tuple[str, ...] = ()
    shards: int = 1
    parallelism: int | None = None
    gpus: int | None = None  # None = the backend's default for the model
    cpu: str | None = None
    memory: str | None = None
    retries: int = 2
    deadline_s: int = 24 * 3600
    options: tuple[tuple[str, str], ...] = ()


def _model_stage(stage: str, model: str) -> bool:
    """Whether a job runs the model itself (its stage declares `runs_model`: infer, finetune) and so needs its image
    and perhaps a GPU; fuse and eval jobs read its masks in the light `fusion` image."""
    return bool(model) and stages()[stage].submit.runs_model


def _image(cfg, stage: str, model: str) -> str:
    family = registry.info(model).image if _model_stage(stage, model) else "fusion"
    return f"{cfg.image_registry.rstrip('/')}/stseg-{family}:{cfg.image_tag}"


def _absolute(uri: str) -> str:
    """A plain relative path becomes absolute, so every process (and a later `stseg status`) sees one place."""
    return uri if "://" in uri else os.path.abspath(os.path.expanduser(uri))


def _option_env(options: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    out = []
    for key, value in options:
        name = re.sub(r"[^A-Za-z0-9]", "_", key).upper()
        if not name or name[0].isdigit():
            raise BadInputError(f"stage option {key!r}: names start with a letter (e.g. --option epochs=2)")
        if f"STSEG_{name}" in RESERVED_ENV:
            raise BadInputError(
                f"--option {key}=…: STSEG_{name} is set by stseg itself and cannot be overridden "
                "(use the matching flag, e.g. --store, --data-root, --models)"
            )
        out.append((f"STSEG_{name}", value))
    return out


def _check_request(req: StageRequest) -> None:
    """Refuse, in one line naming the flag, a request no backend could run."""
    if req.stage not in stages():
        raise BadInputError(f"unknown stage {req.stage!r} (known: {', '.join(stages())})")
    if req.shards < 1:
        raise BadInputError(f"--shards must be at least 1 (got {req.shards})")
    if req.parallelism is not None and req.parallelism < 1:
        raise BadInputError(f"--parallelism must be at least 1 (got {req.parallelism})")
    if req.gpus is not None and req.gpus < 0:
        raise BadInputError(f"--gpus must be 0 or more (got {req.gpus})")
    if req.retries < 0:
        raise BadInputError(f"--retries must be 0 or more (got {req.retries})")
    if req.deadline_s < 1:
        raise BadInputError(f"--deadline must be at least 1 second (got {req.deadline_s})")
    for flag, value, pattern, example in (
        ("--cpu", req.cpu, _CPU_RE, "2 or 500m"),
        ("--memory", req.memory, _MEMORY_RE, "8Gi or 512Mi"),
    ):
        if value is not None and not pattern.match(value):
            raise BadInputError(f"{flag} {value!r} is not a Kubernetes quantity (e.g. {example})")


def build_specs(
    cfg, run: str, req: StageRequest, *, default_gpus: bool, waits_for: tuple[DoneWait, ...] = ()
) -> list[JobSpec]:
    """The JobSpecs of one stage: one per model for finetune/infer/eval (model "" = the fused masks for eval),
    one for fuse.

    `default_gpus` says whether a model that benefits from a GPU gets one when `req.gpus` is None (the
    backend's `gpus` capability: Kubernetes yes, the local backend no).
    """
    check_run_id(run)
    _check_request(req)
    declared = stages()[req.stage].submit
    models = req.models if declared.per_model else ("",)
    if not models:
        raise BadInputError(f"stage {req.stage}: name at least one model (--model/--models)")
    root = run_root(_absolute(cfg.store), run)
    specs = []
    for model in models:
        if model:
            check_model(model, req.stage)
        gpus = req.gpus
        if gpus is None:
            gpus = 1 if default_gpus and _model_stage(req.stage, model) and registry.info(model).gets_gpu else 0
        shards = req.shards if declared.sharded else 1
        # eval scores against the ground truth; every other stage reads the input split
        data_root = _absolute(cfg.ground_truth_root() if req.stage == "eval" else cfg.data_root)
        specs.append(
            JobSpec(
                run=run,
                stage=req.stage,
                model=model,
                image=_image(cfg, req.stage, model),
                command=_command(req.stage, gpus),
                env=tuple(_job_env(cfg, req, model, root, data_root, shards)),
                run_root=root,
                data_root=data_root,
                resources=_resources(cfg, req, gpus),
                shards=shards,
                parallelism=min(req.parallelism or shards, shards),
                retries=req.retries,
                max_failed_shards=math.ceil(shards / 4),
                deadline_s=req.deadline_s,
                labels=(("stseg.io/run", run), ("stseg.io/stage", req.stage), ("stseg.io/model", model or "all")),
                waits_for=waits_for,
            )
        )
    return specs


def _job_env(cfg, req: StageRequest, model: str, root: str, data_root: str, shards: int) -> list[tuple[str, str]]:
    """A job's environment (but JOB_COMPLETION_INDEX): what it runs where, its store endpoint, the user's options."""
    env = [
        ("STSEG_STAGE", stages()[req.stage].job_name),
        ("STSEG_RUN_ROOT", root),
        ("STSEG_DATA_ROOT", data_root),
        ("STSEG_MODEL", model),
        ("STSEG_NUM_SHARDS", str(shards)),
        ("STSEG_DEADLINE_S", str(req.deadline_s)),
        # a Job's output is a log file: upstream progress bars (sam2's propagate_in_video) are noise there
        ("TQDM_DISABLE", "1"),
    ]
    if cfg.pushgateway:
        env.append(("STSEG_PUSHGATEWAY", cfg.pushgateway))
    if cfg.s3_endpoint:
        env.append(("STSEG_S3_ENDPOINT", cfg.s3_endpoint))
    checkpoint = cfg.checkpoint_for(model) if req.stage == "infer" and model else None
    if checkpoint:
        env.append(("STSEG_CHECKPOINT", _absolute(checkpoint)))
    return env + _option_env(req.options)


def _command(stage: str, gpus: int) -> tuple[str, ...]:
    module = stages()[stage].module
    if stage == "finetune" and gpus > 1:
        # One pod, all its GPUs: torchrun starts one process per GPU (DDP over NCCL, no cross-node fabric).
        return ("torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", module)
    return ("python", "-m", module)


def _resources(cfg, req: StageRequest, gpus: int) -> Resources:
    """The flags' CPU and memory, else a size that follows the GPU count (a GPU shard decodes and caches more)."""
    return Resources(
        gpus=gpus,
        gpu_type=cfg.gpu_type,
        cpu=req.cpu or (str(max(4, 8 * gpus)) if gpus else "2"),
        memory=req.memory or (f"{32 * gpus}Gi" if gpus else "8Gi"),
        scratch="100Gi" if gpus else "20Gi",
        shm="8Gi" if gpus else "2Gi",
    )


def _with_models(specs: list[JobSpec], models: tuple[str, ...]) -> list[JobSpec]:
    """fuse and eval learn which models' predictions to read from STSEG_MODELS."""
    return [replace(s, env=(*s.env, ("STSEG_MODELS", ",".join(models)))) for s in specs]


def fuse_specs(cfg, run: str, req: StageRequest, *, infer_shards: int, default_gpus: bool) -> list[JobSpec]:
    """The fuse job: one index per plan shard (each fuses its shard's videos and writes `fused/_done/<k>.json`;
    the last to finish merges recommend.json and eval/); it waits for the done marker of every infer shard of
    every model in `req.models`."""
    if infer_shards < 1:
        raise BadInputError(f"--infer-shards must be at least 1 (got {infer_shards})")
    for m in req.models:
        check_model(m)
    waits = tuple(DoneWait(output_prefix("infer", m), infer_shards) for m in req.models)
    specs = _with_models(
        build_specs(
            cfg, run, replace(req, stage="fuse", shards=infer_shards), default_gpus=default_gpus, waits_for=waits
        ),
        req.models,
    )
    gt = _known_ground_truth(cfg)
    return [replace(s, env=(*s.env, ("STSEG_GT_ROOT", gt))) for s in specs] if gt else specs


def _known_ground_truth(cfg) -> str | None:
    """Ground truth for the fuse job's Table 2 (every model, both baselines, PGMR): an explicit `gt_root`, or the
    default sibling `<data_root>_gt` when it is a local folder that exists. A default on S3 is not probed (a
    dry run must not need the network), and a test split has none: then fuse writes no Table 2."""
    if cfg.gt_root:
        return _absolute(cfg.gt_root)
    default = cfg.ground_truth_root()
    if "://" in default and not default.startswith("file://"):
        return None
    path = default[len("file://") :] if default.startswith("file://") else default
    return _absolute(default) if os.path.isdir(path) else None


def eval_specs(
    cfg, run: str, req: StageRequest, *, infer_shards: int, fused: bool = True, default_gpus: bool
) -> list[JobSpec]:
    """J&F jobs (one index each): one per model in `req.models`, waiting for that model's infer markers, and,
    with `fused`, one for the fused masks, waiting for the fuse markers (one per plan shard)."""
    specs = []
    for model in req.models:
        specs += build_specs(
            cfg,
            run,
            replace(req, stage="eval", models=(model,)),
            default_gpus=default_gpus,
            waits_for=(DoneWait(output_prefix("infer", model), infer_shards),),
        )
    if fused:
        specs += build_specs(
            cfg,
            run,
            replace(req, stage="eval", models=("",)),
            default_gpus=default_gpus,
            waits_for=(DoneWait(output_prefix("fuse", ""), infer_shards),),
        )
    if not specs:
        raise BadInputError("eval: name models to score (--models) or keep --fused")
    return specs


def pipeline_specs(cfg, run: str, infer: StageRequest, *, default_gpus: bool) -> list[JobSpec]:
    """infer (every model) → fuse (waits for every infer marker) → eval of each model and of the fusion."""
    infer_specs = build_specs(cfg, run, infer, default_gpus=default_gpus)
    downstream = replace(infer, parallelism=None, gpus=None if infer.gpus is None else 0)
    fuse = fuse_specs(cfg, run, downstream, infer_shards=infer.shards, default_gpus=default_gpus)
    evals = eval_specs(cfg, run, downstream, infer_shards=infer.shards, default_gpus=default_gpus)
    return [*infer_specs, *fuse, *evals]
