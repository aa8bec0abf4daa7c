"""`stseg infer`: run one model over one shard (or every shard) of a split on this machine."""

from __future__ import annotations

import click

from stseg_cli.main import cli


def _parse_shard(text: str) -> tuple[str, int]:
    from stseg_core.errors import BadInputError

    k, sep, n = text.partition("/")
    if not sep or not n.isdigit() or int(n) < 1 or not (k == "all" or (k.isdigit() and int(k) < int(n))):
        raise BadInputError(f"--shard {text!r}: use K/N with 0 ≤ K < N, or all/N")
    return k, int(n)


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    from stseg_core.settings import key_value

    return dict(key_value(pair, "--set", example="--set flow=farneback") for pair in pairs)


@cli.command("infer")
@click.option("--model", "model", required=True, help="A registered model name (an unknown name lists them).")
@click.option("--data", "data_root", required=True, help="Split root URI holding JPEGImages/ and Annotations/.")
@click.option("--run", "run_root", required=True, help="Run root URI (e.g. s3://bucket/runs/<run-id> or a path).")
@click.option(
    "--shard",
    default="all/1",
    show_default=True,
    help="K/N: run shard K of an N-shard plan; all/N runs every shard in turn.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model option, repeatable (flowprop: flow=dis|farneback, motion=hybrid|dense, refine=…, reacquire=…, size=…).",
)
@click.option("--checkpoint", default=None, help="Checkpoint URI (file:// or s3://) for models with weights.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="Force the device (default: CUDA when present, else CPU).",
)
@click.option(
    "--scratch",
    default=None,
    type=click.Path(file_okay=False),
    help="Local folder for prefetched frames (default: the system temp folder).",
)
def infer(
    model: str,
    data_root: str,
    run_root: str,
    shard: str,
    sets: tuple[str, ...],
    checkpoint: str | None,
    device: str | None,
    scratch: str | None,
) -> None:
    """Segment the videos of a shard with one model and write pred/<model>/… under the run root.

    Uses the run's plan.json (made here from the split when the run has none). The shard's done marker
    pred/<model>/_done/<K>.json is written last; a shard already marked done is skipped, and a failure
    (one line naming the video) leaves it unmarked so the next run redoes it. Runs in this process, the
    same code a `python -m stseg_jobs.infer` Job runs.
    """
    from stseg_core.models.registry import check_options
    from stseg_core.stages import infer as stage

    k, n = _parse_shard(shard)
    overrides: dict[str, object] = dict(_parse_sets(sets))
    if checkpoint:
        overrides["checkpoint"] = checkpoint
    if device:
        overrides["device"] = device
    configs = [
        stage.InferConfig(
            data_root=data_root,
            run_root=run_root,
            model=model,
            shard=index,
            num_shards=n,
            overrides=overrides,
            scratch=scratch,
        )
        for index in (range(n) if k == "all" else [int(k)])
    ]
    check_options(model, overrides)  # an unknown model or option fails before anything is read
    stage.check_scratch(scratch)
    stage.ensure_plan(data_root, run_root, n)
    for config in configs:
        click.echo(stage.run(config).summary())


@cli.command("models")
def models() -> None:
    """List the registered models and their facts (the registry is the one place they are kept): image family,
    GPU need, whether they need weights, their finetune recipe, whether `stseg submit` runs them by default."""
    from stseg_core.models import registry

    entries = [registry.info(name) for name in registry.available()]
    rows = [("MODEL", "IMAGE", "GPU", "WEIGHTS", "FINETUNE", "DEFAULT", "DESCRIPTION")]
    rows += [
        (
            m.name,
            m.image,
            m.gpu,
            "needed" if m.needs_weights else "-",
            "yes" if m.finetune else "-",
            "yes" if m.default_set else "-",
            m.description,
        )
        for m in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
