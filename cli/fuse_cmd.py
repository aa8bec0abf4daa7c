"""`stseg fuse` (the PGMR stage on this machine) and `stseg recommend …` (the performance database)."""

from __future__ import annotations

import click

from stseg_cli.main import cli


def _models(text: str) -> tuple[str, ...]:
    from stseg_core.errors import BadInputError
    from stseg_core.names import split_names

    names = split_names(text)
    if not names:
        raise BadInputError(f"--models {text!r}: give a comma-separated list of model names")
    return names


@cli.command("fuse")
@click.option("--run", "run_root", required=True, help="Run root URI holding plan.json and pred/<model>/.")
@click.option(
    "--data", "data_root", required=True, help="Split root URI the models ran on (JPEGImages/, Annotations/)."
)
@click.option("--models", required=True, help="Comma-separated model names to fuse (their pred/ folders).")
@click.option(
    "--gt",
    "gt_root",
    default=None,
    help="Ground truth with every frame annotated (e.g. a synthetic test_gt/): prints and writes Table 2.",
)
@click.option(
    "--db",
    "db_uri",
    default=None,
    help="Performance database: a version file or its folder (latest). Without it: equal trust, "
    "pseudo-label everywhere.",
)
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for unfinished infer shards before giving up.",
)
@click.option(
    "--neighbours",
    "k",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Database videos the recommender compares each video with.",
)
@click.option(
    "--choose",
    default=None,
    help="What PGMR keeps: vote (the pseudo-label; the default), video (the recommended output per "
    "video) or span (per span).",
)
@click.option(
    "--raw-confidences",
    is_flag=True,
    help="Vote with the models' own confidences instead of the database's calibrated ones.",
)
def fuse(
    run_root: str,
    data_root: str,
    models: str,
    gt_root: str | None,
    db_uri: str | None,
    wait_s: float,
    k: int,
    choose: str | None,
    raw_confidences: bool,
) -> None:
    """Fuse the models' masks with PGMR and keep the pseudo-label (or, with --choose, the best predicted output
    per video or per span).

    Refuses to start until every shard of every model is done (names what is missing). Writes fused/,
    recommend.json and, with --gt, eval/<method>/results.json and eval/table2.json; prints the table of
    single models, bbox-average, bbox-max, the vote-only pseudo-label and PGMR. Runs the same code as a
    `python -m stseg_jobs.fuse` Job.
    """
    from stseg_core.fusion.stage import FuseConfig, format_table
    from stseg_core.stages import fuse as stage

    options = {"calibrate": not raw_confidences, **({"choose": choose} if choose else {})}
    config = FuseConfig(run_root, data_root, _models(models), gt_root, db_uri, wait_s, k=k, **options)
    report = stage.run(stage.FuseStageConfig(config)).report
    if report.table:
        click.echo(format_table(report))
    else:
        kept = ", ".join(f"{v}: {c}" for v, c in report.choices.items())
        click.echo(f"fused {len(report.videos)} videos (no --gt, no table); kept {kept}")
    for line in report.fallbacks:
        click.echo(f"fallback: {line}", err=True)


@cli.group()
def recommend() -> None:
    """The model performance database behind PGMR's per-video recommendation."""


@recommend.command("build")
@click.option("--run", "run_root", required=True, help="Run root of the models' outputs on a split with ground truth.")
@click.option(
    "--data", "data_root", required=True, help="That split's root URI (JPEGImages/, first-frame Annotations/)."
)
@click.option("--gt", "gt_root", required=True, help="Its ground truth with every frame annotated.")
@click.option("--models", required=True, help="Comma-separated model names.")
@click.option("--out", "out_uri", required=True, help="Database folder URI; the next version vNNNN.json is added.")
@click.option("--neighbours", "k", type=click.IntRange(1), default=5, show_default=True)
def recommend_build(run_root: str, data_root: str, gt_root: str, models: str, out_uri: str, k: int) -> None:
    """Score every model (and the fused pseudo-label) per video and save a new database version."""
    from stseg_core.fusion.perfdb import render
    from stseg_core.fusion.stage import build_database

    db, uri = build_database(run_root, data_root, gt_root, _models(models), out_uri, k=k)
    click.echo(f"wrote {uri}")
    click.echo(render(db))


@recommend.command("show")
@click.argument("db_uri")
def recommend_show(db_uri: str) -> None:
    """Print a performance database: provenance, mean J&F per output, recommender comparison, per-video rows."""
    from stseg_core.fusion.perfdb import load_perfdb, render

    click.echo(render(load_perfdb(db_uri)))
