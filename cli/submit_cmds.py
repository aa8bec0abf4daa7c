"""`stseg submit …`: a stage's (or the pipeline's) job specs, checked, then rendered (--dry-run) or started."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import click

from stseg_cli.job_stages import Stage, stages
from stseg_cli.main import cli
from stseg_cli.run_watch import attached
from stseg_cli.submit_flags import backend_of, config_from, model_names, parse_options, submit_flags
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models import registry


def _check_store(uri: str) -> None:
    """A store that does not exist fails here, in one line, not in the first shard."""
    from stseg_core.store import open_store

    store = open_store(uri)
    path = store.local_path("")
    if path is not None:
        if not path.is_dir():
            raise BadInputError(
                f"store {uri} does not exist (create the folder, or fix --store / `store:` in stseg.yaml)"
            )
    else:
        store.exists("runs/.stseg-probe")  # raises for a missing bucket or missing credentials


def _submit(kw: dict, build: Callable) -> None:
    kw = dict(kw)
    cfg = config_from(kw)
    backend = backend_of(cfg)
    run = kw.pop("run_id") or datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")
    caps = backend.capabilities
    specs = build(cfg, run, caps.gpus)  # a backend with GPUs gives one to each model that gains from it
    if not caps.local_files:
        for flag, uri in (("--store", cfg.store), ("--data-root", cfg.data_root)):
            if "://" not in uri or uri.startswith("file://"):  # a pod cannot see this machine's folders
                raise BadInputError(
                    f"{flag} {uri}: the {backend.name} backend needs a location pods can reach "
                    "(s3://bucket/prefix), not a local path"
                )
    if not kw["dry_run"]:
        backend.check(specs)  # refuse what the backend cannot do before touching the store
        _check_store(cfg.store)
    _preflight(specs)
    if kw["dry_run"]:
        docs = backend.render(specs)
        if kw["output"] == "json":
            import json

            click.echo(
                json.dumps(docs[0] if len(docs) == 1 else {"apiVersion": "v1", "kind": "List", "items": docs}, indent=2)
            )
        else:
            import yaml

            click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
        return
    _plan(specs)
    wait = not kw["detach"] if caps.waits_by_default else kw["wait"]
    if wait:
        attached(
            backend, run, lambda bars: backend.submit(specs, resume=kw["resume"], wait=True, on_change=bars.refresh)
        )
    else:
        backend.submit(specs, resume=kw["resume"], wait=False)
        click.echo(f"submitted run {run}: {', '.join(s.name for s in specs)}  (watch: stseg status {run})")


def _preflight(specs) -> None:
    """Each Job's environment parsed by the job's own `check` (stseg_jobs.<stage>), and every input URI it names
    checked, before anything is created; what cannot be checked from here is said on stderr."""
    import importlib

    from stseg_core.preflight import Preflight

    pre = Preflight()
    for spec in specs:
        job = importlib.import_module(stages()[spec.stage].module)
        job.check({**spec.env_dict, "JOB_COMPLETION_INDEX": "0"}, pre)
    for note in pre.notes:
        click.echo(f"stseg: note: {note}", err=True)


def _plan(specs) -> None:
    """Write the run's shard plan before any infer shard starts (every shard reads the same plan.json); a
    run planned with another shard count is refused."""
    infer = [s for s in specs if s.stage == "infer"]
    if not infer:
        return
    from stseg_core.stages.infer import ensure_plan

    plan = ensure_plan(infer[0].data_root, infer[0].run_root, infer[0].shards)
    if plan.num_shards != infer[0].shards:
        raise BadInputError(
            f"run {infer[0].run} is planned with {plan.num_shards} shards; submit its infer jobs "
            f"with --shards {plan.num_shards}"
        )


def _request(kw: dict, stage: str, models: tuple[str, ...], shards: int, parallelism=None, gpus=None):
    from stseg_cli.spec import StageRequest

    return StageRequest(
        stage=stage,
        models=models,
        shards=shards,
        parallelism=parallelism,
        gpus=gpus,
        cpu=kw.pop("cpu"),
        memory=kw.pop("memory"),
        retries=kw.pop("retries"),
        deadline_s=kw.pop("deadline"),
        options=parse_options(kw.pop("options")),
    )


def _infer_shards(cfg, run: str, given: int | None) -> int:
    """Shard count of the run's infer jobs: the flag, else the run's plan.json."""
    if given is not None:
        return given
    from stseg_core.names import run_root
    from stseg_core.store import open_store

    root = run_root(cfg.store, run)
    try:
        return int(open_store(root).read_json("plan.json")["num_shards"])
    except MissingArtifactError:
        raise BadInputError(f"pass --infer-shards: {root}/plan.json does not exist yet") from None


class _StageGroup(click.Group):
    """The commands below, and `stseg submit <stage>` for every other stage a job module declares
    (`stseg_cli.job_stages.stages`), so a new stage needs no command here."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *stages()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        return _stage_command(stages()[name]) if command is None and name in stages() else command


@cli.group(cls=_StageGroup)
def submit() -> None:
    """Start stages of a run on the local backend (processes) or Kubernetes (Indexed Jobs).

    Every shard runs `python -m stseg_jobs.<stage>` with the same environment on both backends.
    `--dry-run -o yaml` prints the exact manifests (Kubernetes) or process commands (local).
    """


@submit.command()
@click.option("--model", required=True, help=f"{' or '.join(registry.finetunable())}.")
@click.option("--gpus", type=int, default=None, help="GPUs in the one pod; >1 runs torchrun (Kubernetes only).")
@submit_flags
def finetune(model: str, gpus: int | None, **kw) -> None:
    """Finetune one model on the training split; checkpoints go to <store>/checkpoints/<model>/<run>/."""
    from stseg_cli.spec import build_specs

    req = _request(kw, "finetune", (model,), 1, gpus=gpus)
    _submit(kw, lambda cfg, run, k8s: build_specs(cfg, run, req, default_gpus=k8s))


_ALL_MODELS = registry.default_set()


# The flags of a stage sharded over models' jobs: infer's, and those of a stage with no command of its own.
_SHARDS_FLAG = click.option("--shards", type=int, default=1, show_default=True, help="Shards (one Job index each).")
_MODELS_FLAG = click.option(
    "--models", default=",".join(_ALL_MODELS), show_default=True, help="Comma-separated model names."
)
_PARALLELISM_FLAG = click.option("--parallelism", type=int, default=None, help="Shards running at once (default: all).")
_GPUS_FLAG = click.option(
    "--gpus", type=int, default=None, help="GPUs per shard (default: 1 on Kubernetes, 0 locally)."
)


@submit.command()
@_SHARDS_FLAG
@_MODELS_FLAG
@_PARALLELISM_FLAG
@_GPUS_FLAG
@submit_flags
def infer(shards: int, models: str, parallelism: int | None, gpus: int | None, **kw) -> None:
    """Segment every video of the data root with each model, one job per model, sharded by work."""
    from stseg_cli.spec import build_specs

    req = _request(kw, "infer", model_names(models, _ALL_MODELS), shards, parallelism, gpus)
    _submit(kw, lambda cfg, run, k8s: build_specs(cfg, run, req, default_gpus=k8s))


@submit.command()
@click.option("--models", default=",".join(_ALL_MODELS), show_default=True, help="Models whose masks are fused.")
@click.option("--infer-shards", type=int, default=None, help="Infer shards to wait for (default: the run's plan).")
@submit_flags
def fuse(models: str, infer_shards: int | None, **kw) -> None:
    """PGMR fusion of the run, one index per plan shard (parallel processes locally, an Indexed Job in the
    cluster; the index that finds every index done merges recommend.json and eval/); starts once every infer shard
    of every model is done (in the cluster an init step waits for their done markers). What PGMR keeps and how it
    votes, as `stseg fuse --choose/--raw-confidences`: --option choose=vote|video|span, --option
    raw-confidences=true."""
    from stseg_cli.spec import fuse_specs

    req = _request(kw, "fuse", model_names(models, _ALL_MODELS), 1, gpus=0)
    _submit(
        kw,
        lambda cfg, run, k8s: fuse_specs(
            cfg, run, req, infer_shards=_infer_shards(cfg, run, infer_shards), default_gpus=k8s
        ),
    )


@submit.command("eval")
@click.option(
    "--models", default=",".join(_ALL_MODELS), show_default=True, help="Models scored beside the fusion ('' for none)."
)
@click.option("--fused/--no-fused", default=True, show_default=True, help="Also score the fused masks.")
@click.option("--infer-shards", type=int, default=None, help="Infer shards to wait for (default: the run's plan).")
@submit_flags
def eval_(models: str, fused: bool, infer_shards: int | None, **kw) -> None:
    """J&F (DAVIS toolkit rules) of each model and of the fusion against --gt-root, written to eval/<name>/;
    each job starts once its predictions are done."""
    from stseg_cli.spec import eval_specs

    names = model_names(models, ())
    req = _request(kw, "eval", names, 1, gpus=0)
    _submit(
        kw,
        lambda cfg, run, k8s: eval_specs(
            cfg, run, req, infer_shards=_infer_shards(cfg, run, infer_shards), fused=fused, default_gpus=k8s
        ),
    )


@submit.command()
@click.option("--shards", type=int, default=1, show_default=True, help="Infer shards per model.")
@click.option("--models", default=",".join(_ALL_MODELS), show_default=True, help="Comma-separated model names.")
@click.option("--parallelism", type=int, default=None, help="Infer shards running at once per model.")
@click.option("--gpus", type=int, default=None, help="GPUs per infer shard (default: 1 on Kubernetes, 0 locally).")
@submit_flags
def pipeline(shards: int, models: str, parallelism: int | None, gpus: int | None, **kw) -> None:
    """infer (every model) → fuse → eval, all submitted at once; each stage starts when its inputs are done."""
    from stseg_cli.spec import pipeline_specs

    req = _request(kw, "infer", model_names(models, _ALL_MODELS), shards, parallelism, gpus)
    _submit(kw, lambda cfg, run, k8s: pipeline_specs(cfg, run, req, default_gpus=k8s))


def _stage_command(stage: Stage) -> click.Command:
    """`stseg submit <stage>` for a stage without a command of its own: its help is the job module's docstring,
    its flags what the stage declares (--models when it runs per model, --shards when it is sharded)."""
    import importlib

    from stseg_cli.spec import build_specs

    declared = stage.submit
    flags = [
        *([_SHARDS_FLAG] if declared.sharded else []),
        *([_MODELS_FLAG] if declared.per_model else []),
        *([_PARALLELISM_FLAG] if declared.sharded else []),
        _GPUS_FLAG,
    ]

    def command(models: str = "", shards: int = 1, parallelism: int | None = None, gpus: int | None = None, **kw):
        req = _request(kw, declared.name, model_names(models, _ALL_MODELS), shards, parallelism, gpus)
        _submit(kw, lambda cfg, run, k8s: build_specs(cfg, run, req, default_gpus=k8s))

    for flag in reversed(flags):
        command = flag(command)
    doc = importlib.import_module(stage.module).__doc__ or f"The {declared.name} stage."
    return click.command(declared.name, help=doc)(submit_flags(command))
