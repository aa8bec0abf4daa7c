"""`stseg eval GT_ROOT PRED_ROOT`: J&F of predictions against ground truth, on any store URI."""

from __future__ import annotations

import os

import click

from stseg_cli.main import cli
from stseg_core.metrics.jf import METRICS


def _videos(_ctx, _param, value: tuple[str, ...]) -> tuple[str, ...]:
    from stseg_core.names import split_names

    return split_names(",".join(value))


@cli.command("eval")
@click.argument("gt_root")
@click.argument("pred_root")
@click.option(
    "--videos",
    multiple=True,
    callback=_videos,
    metavar="NAMES",
    help="Only these videos (repeat the option or separate names with commas). Default: every video "
    "of the ground truth.",
)
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    show_default="all cores",
    type=click.IntRange(1, 512),
    help="Processes scoring videos in parallel.",
)
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    default="davis",
    show_default=True,
    help="davis: DAVIS 2017 / MOSEv1 J&F (Mean, Recall, Decay). mosev2: J&Ḟ with the adaptive boundary "
    "radius plus the disappearance / reappearance scores J&Ḟ_d, J&Ḟ_r.",
)
@click.option(
    "--out",
    "out_uri",
    default=None,
    metavar="URI",
    help="Write global_results-<split>.csv, per-sequence_results-<split>.csv and results.json here.",
)
@click.option(
    "--missing-as-empty",
    is_flag=True,
    help="Score a missing prediction frame or video as an empty mask instead of failing.",
)
@click.option(
    "--split", default=None, metavar="NAME", help="Split name in the CSV file names. Default: GT_ROOT's folder name."
)
@click.option(
    "--rows",
    default=25,
    show_default=True,
    type=click.IntRange(0, 100000),
    help="Videos listed in the terminal table (worst first).",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
def eval_cmd(
    gt_root: str,
    pred_root: str,
    videos: tuple[str, ...],
    workers: int,
    metric: str,
    out_uri: str | None,
    missing_as_empty: bool,
    split: str | None,
    rows: int,
    progress: bool,
) -> None:
    """Score the masks under PRED_ROOT against the ground truth under GT_ROOT.

    GT_ROOT is a MOSE/DAVIS split (holding Annotations/<video>/<frame>.png) or its Annotations folder;
    PRED_ROOT holds <video>/<frame>.png palette masks, e.g. a run's pred/<model>/ or fused/. Both may be a
    path, file:///… or s3://bucket/prefix. Frames 1…T−2 of each video are scored for the objects of its
    first ground-truth frame; global scores are means over all objects of all videos.

    Exit codes: 2 bad input (size mismatch, non-palette PNG, predicted id not in the ground truth),
    3 missing prediction (see --missing-as-empty).
    """
    from stseg_core.errors import BadInputError
    from stseg_core.metrics.tables import format_table
    from stseg_core.stages import evaluate as stage
    from stseg_core.store import open_store

    out_path = open_store(out_uri).local_path("") if out_uri else None
    if out_path is not None and out_path.is_file():  # refused before the scoring, not after
        raise BadInputError(f"--out {out_uri}: is a file, not a folder")
    result = stage.run(
        stage.EvaluateConfig(
            gt_root,
            pred_root,
            name=pred_root.rstrip("/").rsplit("/", 1)[-1],
            out_uri=out_uri,
            metric=metric,
            workers=workers,
            videos=videos,
            missing_as_empty=missing_as_empty,
            split=split,
            progress=progress,
        )
    )
    click.echo(format_table(result.scores, max_rows=rows))
    click.echo(result.summary(), err=True)
