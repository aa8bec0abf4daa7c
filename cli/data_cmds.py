"""`stseg data …`: synthesise, validate, shard, upload and download MOSE-layout splits."""

from __future__ import annotations

import sys
import time

import click

from stseg_cli.main import cli


@cli.group()
def data() -> None:
    """Work with MOSE-layout data sets (JPEGImages/ + Annotations/)."""


def _range(text: str, what: str) -> tuple[int, int]:
    """'30-120' or '40' → (30, 120) / (40, 40)."""
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise click.BadParameter(f"{what} must be N or MIN-MAX, got {text!r}") from None


def _rate_options(fn):
    from stseg_core.data.synth import HARD_CASES, SynthConfig

    defaults = SynthConfig()
    for case in reversed(HARD_CASES):
        fn = click.option(
            f"--{case.replace('_', '-')}",
            case,
            type=click.FloatRange(0.0, 1.0),
            default=getattr(defaults, case),
            show_default=True,
            help=f"Share of videos planned with {case.replace('_', ' ')} (0 = never, 1 = always).",
        )(fn)
    return fn


@data.command("synth")
@click.argument("out_root")
@click.option("--seed", default=0, show_default=True, help="Same seed → byte-identical data set.")
@click.option("--videos", default=4, show_default=True, type=click.IntRange(0), help="Videos per split.")
@click.option("--height", default=480, show_default=True, type=click.IntRange(32))
@click.option("--width", default=854, show_default=True, type=click.IntRange(32))
@click.option("--frames", default="30-120", show_default=True, help="Frames per video: N or MIN-MAX.")
@click.option("--objects", default="1-6", show_default=True, help="Objects per video: N or MIN-MAX.")
@click.option("--splits", default="train,valid,test", show_default=True, help="Comma-separated splits to write.")
@click.option("--noise", default=3.0, show_default=True, type=click.FloatRange(0.0), help="Sensor noise (grey levels).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Videos rendered in parallel.")
@_rate_options
def synth(
    out_root: str,
    seed: int,
    videos: int,
    height: int,
    width: int,
    frames: str,
    objects: str,
    splits: str,
    noise: float,
    workers: int,
    **rates: float,
) -> None:
    """Write a synthetic MOSE-like benchmark to OUT_ROOT (a path, file:// or s3:// URI).

    Layout: train/ (every frame annotated), valid/ and test/ (first-frame annotation only), valid_gt/ and
    test_gt/ (every frame's ground truth, for J&F), and meta.json (per video: which hard cases occur and on
    which frames, measured on the ground truth). Each hard case is switched per video with its rate.
    """
    from stseg_core.data.synth import SPLITS, SynthConfig, generate_dataset
    from stseg_core.errors import BadInputError
    from stseg_core.names import split_names

    chosen = split_names(splits)
    unknown = [s for s in chosen if s not in SPLITS]
    if unknown:
        raise BadInputError(f"--splits: unknown split {unknown[0]!r}; known: {', '.join(SPLITS)}")
    fmin, fmax = _range(frames, "--frames")
    omin, omax = _range(objects, "--objects")
    cfg = SynthConfig(
        seed=seed,
        height=height,
        width=width,
        min_frames=fmin,
        max_frames=fmax,
        min_objects=omin,
        max_objects=omax,
        videos=videos,
        noise=noise,
        **rates,
    )
    start = time.perf_counter()
    meta = generate_dataset(out_root, cfg, workers=workers, splits=chosen)
    elapsed = time.perf_counter() - start
    total = 0
    for split in chosen:
        metas = meta["splits"][split].values()
        n_frames = sum(m["frames"] for m in metas)
        total += n_frames
        counts = {case: sum(case in m["present"] for m in metas) for case in rates}
        cases = ", ".join(f"{case} {n}" for case, n in counts.items())
        click.echo(f"{split}: {len(metas)} videos, {n_frames} frames; videos with {cases}")
    click.echo(
        f"wrote {total} frames ({height}x{width}) to {out_root} in {elapsed:.1f} s "
        f"({total / max(elapsed, 1e-9):.0f} frames/s); meta.json describes every video"
    )


@data.command("validate")
@click.argument("root")
def validate(root: str) -> None:
    """Check a split (or every split under a data set root) and print every problem, one per line.

    A split is a folder with JPEGImages/ and Annotations/; a folder with only Annotations/ (e.g. valid_gt/) is
    checked as ground truth. Every frame and annotation is decoded. Exits 2 when any problem is found.
    """
    from stseg_core.data.mose import MoseSplit, discover_splits
    from stseg_core.store import open_store

    store = open_store(root)
    found = discover_splits(store)
    if not found:
        click.echo(f"{store.root}: no split found (no JPEGImages/ or Annotations/ folder)", err=True)
        sys.exit(2)
    problems = 0
    for prefix, has_frames in found:
        split = MoseSplit(store.child(prefix) if prefix else store, frames=has_frames)
        issues = split.validate()
        for line in issues:
            click.echo(line)
        problems += len(issues)
        kind = "split" if has_frames else "ground truth"
        click.echo(f"{split.store.root}: {kind}, {len(split.videos())} videos, {len(issues)} problem(s)", err=True)
    if problems:
        click.echo(f"{problems} problem(s) found", err=True)
        sys.exit(2)
    click.echo("ok: no problems found", err=True)


@data.command("shard")
@click.argument("root")
@click.option("--shards", required=True, type=int, help="Number of shards (Indexed Job completions).")
@click.option("--out", "run_root", required=True, help="Run root URI; plan.json is written there.")
def shard(root: str, shards: int, run_root: str) -> None:
    """Split the videos of the split ROOT into shards of near-equal work (frames × objects); write plan.json.

    Deterministic: the same split and shard count always give the same plan.
    """
    from stseg_core.data.mose import MoseSplit
    from stseg_core.errors import BadInputError
    from stseg_core.plan import PLAN_FILE, plan_shards, split_costs
    from stseg_core.store import open_store

    split = MoseSplit(open_store(root))
    costs = split_costs(split)
    if not costs:
        raise BadInputError(f"{split.store.uri('JPEGImages')}: no videos to shard")
    plan = plan_shards(costs, shards)
    run = open_store(run_root)
    plan.save(run)
    loads = plan.shard_costs
    click.echo(
        f"{len(costs)} videos, {sum(costs.values())} frame-objects in {shards} shards: heaviest "
        f"{max(loads)}, lightest {min(loads)}, heaviest/mean {plan.imbalance:.4f}"
    )
    click.echo(f"wrote {run.uri(PLAN_FILE)}")
