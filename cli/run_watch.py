"""Watching a run: progress bars while it goes, the status table when it is done."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from stseg_cli.backends.base import RunStatus


class ProgressBars:
    """One tqdm bar per job of a run (shards done / shards), refreshed at most twice a second."""

    def __init__(self, status: Callable[[], RunStatus]) -> None:
        self._status = status
        self._bars: dict = {}
        self._last = 0.0
        self._shown: RunStatus | None = None

    def __enter__(self) -> ProgressBars:
        return self

    def refresh(self, status: RunStatus | None = None, force: bool = False) -> None:
        """Show `status` (the caller has just computed it), else one fetched now, at most twice a second unless
        `force`: each status lists the run's done markers."""
        if status is None:
            if not force and time.monotonic() - self._last < 0.5:
                return
            self._last = time.monotonic()
            status = self._status()
        self._shown = status
        self._draw(status)

    def _draw(self, status: RunStatus) -> None:
        from tqdm import tqdm

        for job in status.jobs:
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
        if not exc[0] and not (self._shown is not None and self._shown.finished):
            self.refresh(force=True)  # the bars end on the final status (a finished one shown is final)
        for bar in self._bars.values():
            bar.close()


def attached(backend, run: str, start: Callable) -> None:
    """Run `start(bars)` (a submit or resume that waits) under progress bars, print the final status, and exit 1
    when a shard failed."""
    with ProgressBars(lambda: backend.status(run)) as bars:
        final = start(bars)
        bars.refresh(final)
    print_status(final)
    if not final.succeeded:
        click.echo(f"stseg: run {run} finished with failed shards (see `stseg status {run}`)", err=True)
        sys.exit(1)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def print_status(status) -> None:
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
        eta = _duration(None if j.finished else j.eta_s)
        rate = f"{j.frames_per_s:.1f}" if j.frames else "-"  # no frames: a stage without markers, or none done
        click.echo(
            f"{j.name:<{name_w}} {j.stage:<9} {j.model or '-':<{model_w}} {f'{len(j.done)}/{j.shards}':>9} "
            f"{len(j.running):>8} {len(j.failed):>7} {rate:>9} {eta:>8} {state}".rstrip()
        )
        for k, reason in sorted(j.failed.items()):
            click.echo(f"    shard {k}: {reason}")
