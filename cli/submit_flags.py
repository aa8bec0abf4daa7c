"""The flags `stseg submit …` and the run commands share, and the settings and backend they select."""

from __future__ import annotations

from collections.abc import Callable

import click

from stseg_cli.backends.base import BACKENDS
from stseg_cli.config import NODE_POOLS

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
    click.option("--node-pool", default=None, help=f"GPU node selection preset: {', '.join(NODE_POOLS)}."),
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


def config_from(kw: dict):
    """The settings (stseg.yaml < STSEG_* < flags), taking the settings' flags out of `kw`."""
    from stseg_cli.config import Config, load_config

    names = set(Config.__dataclass_fields__)
    return load_config(kw.pop("config_path", None), flags={k: kw.pop(k) for k in list(kw) if k in names})


def backend_of(cfg):
    from stseg_cli.backends.base import get_backend

    return get_backend(cfg.backend, cfg)


def parse_options(options: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from stseg_core.settings import key_value

    return tuple(key_value(item, "--option", example="--option epochs=2") for item in options)


def model_names(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    from stseg_core.names import split_names

    return split_names(text) if text else default


def submit_flags(fn):
    """The settings' flags and the submit flags every `stseg submit` command takes."""
    return _apply(_CONFIG_FLAGS + _SUBMIT_FLAGS)(fn)


def config_flags(fn):
    """The settings' flags (store, backend, namespace…) of the commands that look at a run."""
    return _apply(_CONFIG_FLAGS)(fn)
