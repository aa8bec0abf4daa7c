"""`stseg verify RUN_ROOT`: re-read every file each done marker of a run lists (size and sha256)."""

from __future__ import annotations

import sys

import click

from stseg_cli.main import cli


@cli.command("verify")
@click.argument("run_root")
@click.option("--workers", type=click.IntRange(1), default=8, show_default=True, help="Files read at once.")
def verify(run_root: str, workers: int) -> None:
    """Check every done shard of a run (pred/<model>/ and fused/) against its marker: each listed file present,
    of the recorded size and sha256. A shard with a missing or changed file is named, file by file, and marked
    not done (its marker moves to _invalid/), so the next `stseg submit … --resume` redoes it. Exit 3 when any
    shard was bad."""
    from stseg_core.runlayout import DONE_DIR, checked_done_shards
    from stseg_core.store import open_store

    store = open_store(run_root)
    prefixes = sorted(
        {k.split(f"/{DONE_DIR}/")[0] for top in ("pred", "fused") for k in store.list(top) if f"/{DONE_DIR}/" in k}
    )
    if not prefixes:
        click.echo(f"verify: {store.root} has no done markers")
        return
    bad_total = 0
    for prefix in prefixes:
        good, bad = checked_done_shards(store, prefix, sha256=True, workers=workers)
        click.echo(f"{prefix}: {len(good)} shard(s) ok" + (f", {len(bad)} bad (marked not done)" if bad else ""))
        for shard, problems in bad.items():
            for line in problems:
                click.echo(f"    shard {shard}: {line}")
        bad_total += len(bad)
    if bad_total:
        sys.exit(3)
