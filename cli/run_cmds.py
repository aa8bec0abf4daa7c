"""`stseg runs`, `status`, `logs`, `resume`, `cancel`, and `wait-done` (the init step of waiting Jobs)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from stseg_cli.job_stages import stages
from stseg_cli.main import cli
from stseg_cli.run_watch import ProgressBars, attached, print_status
from stseg_cli.submit_flags import backend_of, config_flags, config_from
from stseg_core.errors import BadInputError, MissingArtifactError

if TYPE_CHECKING:
    from stseg_cli.spec import DoneWait
    from stseg_core.store import Store


@cli.command()
@config_flags
def runs(**kw) -> None:
    """List the runs the backend knows."""
    for run in backend_of(config_from(kw)).runs():
        click.echo(run)


@cli.command()
@click.argument("run")
@click.option("--watch", is_flag=True, help="Show progress bars until the run finishes.")
@config_flags
def status(run: str, watch: bool, **kw) -> None:
    """Per job: shards done/running/failed, frames/s, ETA, and each failed shard's one-line reason."""
    backend = backend_of(config_from(kw))
    current = backend.status(run)
    if watch:  # one status per second, which the bars and then the table show
        with ProgressBars(lambda: backend.status(run)) as bars:
            bars.refresh(current)
            while not current.finished:
                time.sleep(1)
                current = backend.status(run)
                bars.refresh(current)
    print_status(current)


@cli.command()
@click.argument("run")
@click.option("--stage", required=True, type=click.Choice(list(stages())))
@click.option("--model", default="", help="Model of a finetune/infer job.")
@click.option("--shard", type=int, default=0, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the shard runs.")
@config_flags
def logs(run: str, stage: str, model: str, shard: int, follow: bool, **kw) -> None:
    """Print one shard's log (stdout and stderr of its process or pod)."""
    for chunk in backend_of(config_from(kw)).logs(run, stage, model, shard, follow=follow):
        click.echo(chunk, nl=False)


@cli.command()
@click.argument("run")
@click.option("--detach", is_flag=True, help="Return at once; the run goes on in the background.")
@config_flags
def resume(run: str, detach: bool, **kw) -> None:
    """Local backend: go on with a stopped, orphaned or failed run (its unfinished shards run again)."""
    backend = backend_of(config_from(kw))
    if detach:
        backend.resume(run, wait=False)
        click.echo(f"resumed run {run}  (watch: stseg status {run})")
        return
    attached(backend, run, lambda bars: backend.resume(run, wait=True, on_change=bars.refresh))


@cli.command()
@click.argument("run")
@config_flags
def cancel(run: str, **kw) -> None:
    """Stop every job of a run (processes killed / Jobs deleted with their pods); outputs stay in the store."""
    n = backend_of(config_from(kw)).cancel(run)
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
    total = sum(w.shards for w in parsed)
    pending = parsed
    deadline = time.monotonic() + timeout
    while True:
        missing = {w: _missing_markers(store, w) for w in pending}
        pending = [w for w in pending if missing[w]]
        keys = [key for w in pending for key in missing[w]]
        click.echo(f"wait-done: {total - len(keys)} of {total} markers present", err=True)
        if not keys:
            return
        if time.monotonic() >= deadline:
            raise MissingArtifactError(
                f"{store.uri(keys[0])} and {len(keys) - 1} more markers still missing after {timeout:.0f} s"
            )
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _missing_markers(store: Store, wait: DoneWait) -> list[str]:
    """The done-marker keys of `wait` not in the store yet: one listing of its `_done/`, not a probe per shard
    (every fuse index waits for every model's shards, so a per-marker probe would cost indexes × models × shards
    requests per poll)."""
    from stseg_core.runlayout import done_key, done_shards

    done = set(done_shards(store, wait.prefix))
    return [done_key(wait.prefix, k) for k in range(wait.shards) if str(k) not in done]
