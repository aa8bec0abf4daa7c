"""`stseg submit …`, `runs`, `status`, `logs`, `cancel` (and `wait-done`, the init step of waiting Jobs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import click

from stseg_cli.backends.base import BACKENDS
from stseg_cli.main import cli
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models import registry

# Flags that override stseg.yaml / STSEG_* settings (the Config field of the same name).
_CONFIG_FLAGS = [
    click.option(
        "--backend",
        type=click.Choice(sorted(BACKENDS)),
        default=None,
        help="Where jobs run (default: local, or `backend:` in stseg.yaml).",
    ),
    click.option(
        "--config", "config_path", default=None, help="Settings file (default: $STSEG_CONFIG or ./stseg.yaml)."
    ),
    click.option("--store", default=None, help="Store root URI; runs live under <store>/runs/<run>/."),
    click.option("--data-root", default=None, help="MOSE-layout split the stages read (URI)."),
    click.option("--gt-root", default=None, help="Ground truth of the split for eval (default: <data-root>_gt)."),
    click.option("--namespace", default=None, help="Kubernetes namespace."),
    click.option("--kube-context", default=None, help="kubeconfig context (default: the current one)."),
    click.option("--workers", type=int, default=None, help="Local backend: parallel shard processes (default: cores)."),
]
_SUBMIT_FLAGS = [
    click.option("--run", "run_id", default=None, help="Run id (default: run-<UTC time>). Reuse it to add stages."),
    click.option("--image-registry", default=None, help="Registry of the stseg-<family> images."),
    click.option("--image-tag", default=None, help="Tag of the images."),
    click.option("--node-pool", default=None, help="GPU node selection preset: none, gke, eks, karpenter, gfd."),
    click.option("--gpu-type", default=None, help="Value of the preset's GPU label (default: its A100 value)."),
    click.option("--kueue-queue", default=None, help="Kueue LocalQueue: Jobs are created suspended in it."),
    click.option("--s3-secret", default=None, help="Secret holding the S3 credentials (else the service account)."),
    click.option(
        "--checkpoints",
        default=None,
        metavar="MODEL=URI,…",
        help="Weights of each model's infer jobs, e.g. sam2=s3://b/checkpoints/sam2/r/epoch_40.pt.",
    ),
    click.option("--cpu", default=None, help="CPU per shard (Kubernetes quantity)."),
    click.option("--memory", default=None, help="Memory per shard (Kubernetes quantity, e.g. 32Gi)."),
    click.option("--retries", type=int, default=2, show_default=True, help="Retries per shard."),
    click.option("--deadline", type=int, default=24 * 3600, show_default=True, help="Seconds before a job is stopped."),
    click.option(
        "--option",
        "options",
        multiple=True,
        metavar="KEY=VALUE",
        help="Stage option, passed to the job as STSEG_<KEY> (repeatable).",
    ),
    click.option(
        "--resume",
        is_flag=True,
        help="Submit jobs the run already has: local reruns their unfinished shards; kubernetes creates "
        "only missing Jobs and replaces failed ones (done shards are no-ops). Without it such a "
        "submit is refused; new jobs always join an existing run.",
    ),
    click.option("--detach", is_flag=True, help="Local backend: return at once; the run goes on in the background."),
    click.option("--wait", is_flag=True, help="Kubernetes backend: wait for the jobs to finish."),
    click.option("--dry-run", is_flag=True, help="Print what would be created; create nothing."),
    click.option(
        "-o",
        "--output",
        type=click.Choice(["yaml", "json"]),
        default="yaml",
        show_default=True,
        help="Format of --dry-run.",
    ),
]


def _apply(options: list) -> Callable:
    def deco(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return deco


def _config(kw: dict):
    from stseg_cli.config import Config, load_config

    names = set(Config.__dataclass_fields__)
    return load_config(kw.pop("config_path", None), flags={k: kw.pop(k) for k in list(kw) if k in names})


def _backend(cfg):
    from stseg_cli.backends.base import get_backend

    return get_backend(cfg.backend, cfg)


def _parse_options(options: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from stseg_core.settings import key_value

    return tuple(key_value(item, "--option", example="--option epochs=2") for item in options)


def _models(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    from stseg_core.names import split_names

    return split_names(text) if text else default


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


class ProgressBars:
    """One tqdm bar per job of a run (shards done / shards), refreshed at most twice a second."""

    def __init__(self, status: Callable) -> None:
        self._status = status
        self._bars: dict = {}
        self._last = 0.0

    def __enter__(self) -> ProgressBars:
        return self

    def refresh(self, force: bool = False) -> None:
        from tqdm import tqdm

        if not force and time.monotonic() - self._last < 0.5:
            return
        self._last = time.monotonic()
        for job in self._status().jobs:
            bar = self._bars.get(job.name)
            if bar is None:
                bar = self._bars[job.name] = tqdm(
                    total=job.shards,
                    desc=job.name,
                    unit="shard",
                    position=len(self._bars),
                    leave=True,
                    file=sys.stderr,
                    disable=None,
                )  # no bars when stderr is not a terminal
            bar.n = len(job.done)
            bar.set_postfix_str(
                f"running {len(job.running)} failed {len(job.failed)}"
                + (" (waiting for inputs)" if job.waiting else ""),
                refresh=False,
            )
            bar.refresh()

    def __exit__(self, *exc) -> None:
        if not exc[0]:
            self.refresh(force=True)
        for bar in self._bars.values():
            bar.close()


def _submit(kw: dict, build: Callable) -> None:
    kw = dict(kw)
    cfg = _config(kw)
    backend = _backend(cfg)
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
        _attached(
            backend, run, lambda bars: backend.submit(specs, resume=kw["resume"], wait=True, on_change=bars.refresh)
        )
    else:
        backend.submit(specs, resume=kw["resume"], wait=False)
        click.echo(f"submitted run {run}: {', '.join(s.name for s in specs)}  (watch: stseg status {run})")


def _attached(backend, run: str, start: Callable) -> None:
    """Run `start(bars)` (a submit or resume that waits) under progress bars, print the final status, and exit 1
    when a shard failed."""
    with ProgressBars(lambda: backend.status(run)) as bars:
        final = start(bars)
    _print_status(final)
    if not final.succeeded:
        click.echo(f"stseg: run {run} finished with failed shards (see `stseg status {run}`)", err=True)
        sys.exit(1)


def _preflight(specs) -> None:
    """Each Job's environment parsed by the job's own `check` (stseg_jobs.<stage>), and every input URI it names
    checked, before anything is created; what cannot be checked from here is said on stderr."""
    import importlib

    from stseg_cli.spec import STAGE_MODULES
    from stseg_core.preflight import Preflight

    pre = Preflight()
    for spec in specs:
        importlib.import_module(STAGE_MODULES[spec.stage]).check({**spec.env_dict, "JOB_COMPLETION_INDEX": "0"}, pre)
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
        options=_parse_options(kw.pop("options")),
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


def _common(fn):
    return _apply(_CONFIG_FLAGS + _SUBMIT_FLAGS)(fn)


@cli.group()
def submit() -> None:
    """Start stages of a run on the local backend (processes) or Kubernetes (Indexed Jobs).

    Every shard runs `python -m stseg_jobs.<stage>` with the same environment on both backends.
    `--dry-run -o yaml` prints the exact manifests (Kubernetes) or process commands (local).
    """


@submit.command()
@click.option("--model", required=True, help=f"{' or '.join(registry.finetunable())}.")
@click.option("--gpus", type=int, default=None, help="GPUs in the one pod; >1 runs torchrun (Kubernetes only).")
@_common
def finetune(model: str, gpus: int | None, **kw) -> None:
    """Finetune one model on the training split; checkpoints go to <store>/checkpoints/<model>/<run>/."""
    from stseg_cli.spec import build_specs

    req = _request(kw, "finetune", (model,), 1, gpus=gpus)
    _submit(kw, lambda cfg, run, k8s: build_specs(cfg, run, req, default_gpus=k8s))


_ALL_MODELS = registry.default_set()


@submit.command()
@click.option("--shards", type=int, default=1, show_default=True, help="Shards (one Job index each).")
@click.option("--models", default=",".join(_ALL_MODELS), show_default=True, help="Comma-separated model names.")
@click.option("--parallelism", type=int, default=None, help="Shards running at once (default: all).")
@click.option("--gpus", type=int, default=None, help="GPUs per shard (default: 1 on Kubernetes, 0 locally).")
@_common
def infer(shards: int, models: str, parallelism: int | None, gpus: int | None, **kw) -> None:
    """Segment every video of the data root with each model, one job per model, sharded by work."""
    from stseg_cli.spec import build_specs

    req = _request(kw, "infer", _models(models, _ALL_MODELS), shards, parallelism, gpus)
    _submit(kw, lambda cfg, run, k8s: build_specs(cfg, run, req, default_gpus=k8s))


@submit.command()
@click.option("--models", default=",".join(_ALL_MODELS), show_default=True, help="Models whose masks are fused.")
@click.option("--infer-shards", type=int, default=None, help="Infer shards to wait for (default: the run's plan).")
@_common
def fuse(models: str, infer_shards: int | None, **kw) -> None:
    """PGMR fusion of the run, one index per plan shard (parallel processes locally, an Indexed Job in the
    cluster; the index that finds every index done merges recommend.json and eval/); starts once every infer shard
    of every model is done (in the cluster an init step waits for their done markers). What PGMR keeps and how it
    votes, as `stseg fuse --choose/--raw-confidences`: --option choose=vote|video|span, --option
    raw-confidences=true."""
    from stseg_cli.spec import fuse_specs

    req = _request(kw, "fuse", _models(models, _ALL_MODELS), 1, gpus=0)
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
@_common
def eval_(models: str, fused: bool, infer_shards: int | None, **kw) -> None:
    """J&F (DAVIS toolkit rules) of each model and of the fusion against --gt-root, written to eval/<name>/;
    each job starts once its predictions are done."""
    from stseg_cli.spec import eval_specs

    names = _models(models, ())
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
@_common
def pipeline(shards: int, models: str, parallelism: int | None, gpus: int | None, **kw) -> None:
    """infer (every model) → fuse → eval, all submitted at once; each stage starts when its inputs are done."""
    from stseg_cli.spec import pipeline_specs

    req = _request(kw, "infer", _models(models, _ALL_MODELS), shards, parallelism, gpus)
    _submit(kw, lambda cfg, run, k8s: pipeline_specs(cfg, run, req, default_gpus=k8s))


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _print_status(status) -> None:
    """One row per job; the JOB and MODEL columns are as wide as their longest value (`flowprop-farneback`)."""
    click.echo(f"run {status.run}" + (f"  {status.note}" if status.note else ""))
    name_w = max([len("JOB"), *(len(j.name) for j in status.jobs)])
    model_w = max([len("MODEL"), *(len(j.model or "-") for j in status.jobs)])
    click.echo(
        f"{'JOB':<{name_w}} {'STAGE':<9} {'MODEL':<{model_w}} {'DONE':>9} {'RUNNING':>8} {'FAILED':>7} "
        f"{'FRAMES/S':>9} {'ETA':>8}"
    )
    for j in status.jobs:
        state = "waiting" if j.waiting else ""
        eta = _fmt_s(None if j.finished else j.eta_s)
        rate = f"{j.frames_per_s:.1f}" if j.frames else "-"  # no frames: a stage without markers, or none done
        click.echo(
            f"{j.name:<{name_w}} {j.stage:<9} {j.model or '-':<{model_w}} {f'{len(j.done)}/{j.shards}':>9} "
            f"{len(j.running):>8} {len(j.failed):>7} {rate:>9} {eta:>8} {state}".rstrip()
        )
        for k, reason in sorted(j.failed.items()):
            click.echo(f"    shard {k}: {reason}")


def _config_only(fn):
    return _apply(_CONFIG_FLAGS)(fn)


@cli.command()
@_config_only
def runs(**kw) -> None:
    """List the runs the backend knows."""
    for run in _backend(_config(kw)).runs():
        click.echo(run)


@cli.command()
@click.argument("run")
@click.option("--watch", is_flag=True, help="Show progress bars until the run finishes.")
@_config_only
def status(run: str, watch: bool, **kw) -> None:
    """Per job: shards done/running/failed, frames/s, ETA, and each failed shard's one-line reason."""
    backend = _backend(_config(kw))
    if watch:
        with ProgressBars(lambda: backend.status(run)) as bars:
            while not backend.status(run).finished:
                bars.refresh()
                time.sleep(1)
    _print_status(backend.status(run))


@cli.command()
@click.argument("run")
@click.option("--stage", required=True, type=click.Choice(["finetune", "infer", "fuse", "eval"]))
@click.option("--model", default="", help="Model of a finetune/infer job.")
@click.option("--shard", type=int, default=0, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the shard runs.")
@_config_only
def logs(run: str, stage: str, model: str, shard: int, follow: bool, **kw) -> None:
    """Print one shard's log (stdout and stderr of its process or pod)."""
    for chunk in _backend(_config(kw)).logs(run, stage, model, shard, follow=follow):
        click.echo(chunk, nl=False)


@cli.command()
@click.argument("run")
@click.option("--detach", is_flag=True, help="Return at once; the run goes on in the background.")
@_config_only
def resume(run: str, detach: bool, **kw) -> None:
    """Local backend: go on with a stopped, orphaned or failed run (its unfinished shards run again)."""
    backend = _backend(_config(kw))
    if detach:
        backend.resume(run, wait=False)
        click.echo(f"resumed run {run}  (watch: stseg status {run})")
        return
    _attached(backend, run, lambda bars: backend.resume(run, wait=True, on_change=bars.refresh))


@cli.command()
@click.argument("run")
@_config_only
def cancel(run: str, **kw) -> None:
    """Stop every job of a run (processes killed / Jobs deleted with their pods); outputs stay in the store."""
    n = _backend(_config(kw)).cancel(run)
    click.echo(f"cancelled {n} job(s) of run {run}")


@cli.command("wait-done")
@click.argument("run_root")
@click.argument("waits", nargs=-1, required=True, metavar="PREFIX:SHARDS...")
@click.option("--timeout", type=float, default=24 * 3600, show_default=True, help="Seconds before giving up (exit 3).")
@click.option("--poll", type=float, default=10.0, show_default=True, help="Seconds between checks.")
def wait_done(run_root: str, waits: tuple[str, ...], timeout: float, poll: float) -> None:
    """Wait until the done marker `<PREFIX>/_done/<k>.json` of every shard k < SHARDS exists under RUN_ROOT.

    The init step of Jobs that need upstream stages (fuse, eval), so stage ordering holds in the cluster
    even when the machine that submitted the run is gone.
    """
    from stseg_cli.spec import DoneWait
    from stseg_core.store import open_store

    parsed = []
    for w in waits:
        prefix, _, n = w.rpartition(":")
        if not prefix or not n.isdigit() or int(n) < 1:
            raise BadInputError(f"wait-done: {w!r} is not PREFIX:SHARDS (e.g. pred/sam2:64)")
        parsed.append(DoneWait(prefix, int(n)))
    store = open_store(run_root)
    missing = [m for w in parsed for m in w.markers()]
    deadline = time.monotonic() + timeout
    while True:
        missing = [m for m in missing if not store.exists(m)]
        click.echo(
            f"wait-done: {sum(w.shards for w in parsed) - len(missing)} of {sum(w.shards for w in parsed)} "
            "markers present",
            err=True,
        )
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise MissingArtifactError(
                f"{store.uri(missing[0])} and {len(missing) - 1} more markers still missing after {timeout:.0f} s"
            )
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
