"""`stseg report RUN_ROOT`: the run's self-contained HTML report (index.html + images beside it)."""

from __future__ import annotations

import click

from stseg_cli.main import cli


@cli.command("report")
@click.argument("run_root")
@click.option(
    "--out",
    default="report/",
    show_default=True,
    help="Folder or store URI for the report; --in-run writes it next to the run instead.",
)
@click.option("--in-run", is_flag=True, help="Write to <RUN_ROOT>/report/ (e.g. in S3 beside the run).")
@click.option(
    "--videos", default="", help="Comma-separated videos to show close up (default: the worst and the most disputed)."
)
@click.option(
    "--per-kind",
    type=click.IntRange(0),
    default=2,
    show_default=True,
    help="How many worst and how many most-disputed videos get overlays.",
)
@click.option(
    "--data",
    "data_root",
    default=None,
    help="Split root with the frames (JPEGImages/); default: the ground truth's sibling (<split>_gt → <split>).",
)
@click.option(
    "--gt",
    "gt_root",
    default=None,
    help="Every-frame annotations for the ground-truth row; default: the one eval/ recorded.",
)
def report(
    run_root: str, out: str, in_run: bool, videos: str, per_kind: int, data_root: str | None, gt_root: str | None
) -> None:
    """Write an HTML report of a finished run that opens offline (no CDN, no server).

    It shows Table 2 (every model, bbox-average, bbox-max, the pseudo-label and PGMR, numbers as eval/ wrote
    them), per-video J&F sorted by how much the models disagree with the recommender's choice and reason,
    and for the worst and most-disputed videos mask overlay strips (first frame and around the largest J
    drop, DAVIS palette, ground truth beside), J per frame across models and an animated PGMR preview.
    Without eval/ (no ground truth) it shows agreement with the pseudo-label instead, and says so.
    """
    from stseg_core.names import split_names
    from stseg_core.report.build import ReportConfig, build_report

    wanted = split_names(videos)
    result = build_report(ReportConfig(run_root, None if in_run else out, wanted, data_root, gt_root, per_kind))
    for line in result.missing:
        click.echo(f"missing: {line}", err=True)
    click.echo(
        f"report: {result.index} ({len(result.files)} files, {len(result.selected)} close-ups, {result.seconds:.1f} s)"
    )
