"""The supervisor's own store checks (done markers), and riding out a store it cannot reach.

A store error on one of these checks is an outage, not a failed shard: the shards keep running, the check is
retried with backoff, and only an outage longer than `STSEG_LOCAL_OUTAGE_S` (default 600 s; each check already
retries for `STSEG_S3_DEADLINE_S`) stops the run, with the reason in `stopped.json`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

from stseg_cli.backends.local.procs import settings
from stseg_cli.backends.local.records import RunFiles, read_json
from stseg_cli.spec import JobSpec
from stseg_core.errors import BackendError, StsegError
from stseg_core.runlayout import done_key, done_shards
from stseg_core.store import Store, open_store

MAX_OUTAGE_BACKOFF_S = 10.0
T = TypeVar("T")


class StoreDown(BackendError):
    """A store error on one of the supervisor's own checks: an outage to ride out, not a failed shard (and, in
    `stseg status`, one line)."""


class Stores:
    """The run roots' stores, opened once each; a store error on opening or asking one raises StoreDown."""

    def __init__(self) -> None:
        self._open: dict[str, Store] = {}

    def get(self, run_root: str) -> Store:
        if run_root not in self._open:
            try:
                self._open[run_root] = open_store(run_root)
            except StsegError as err:
                raise StoreDown(str(err)) from None
        return self._open[run_root]

    def exists(self, run_root: str, key: str) -> bool:
        return self.use(run_root, lambda store: store.exists(key))

    def use(self, run_root: str, ask: Callable[[Store], T]) -> T:
        """`ask(store)` on the run root's store; a store error is an outage (StoreDown)."""
        store = self.get(run_root)
        try:
            return ask(store)
        except StsegError as err:
            raise StoreDown(str(err)) from None


def shard_is_done(spec: JobSpec, k: int, files: RunFiles, stores: Stores) -> bool:
    """Done: its done marker is in the store (stages that write one), else its last exit code was 0."""
    if spec.output_prefix:
        return stores.exists(spec.run_root, done_key(spec.output_prefix, k))
    rec = read_json(files.result(spec, k))
    return bool(rec) and rec.get("exit_code") == 0


def unfinished_shards(spec: JobSpec, files: RunFiles, stores: Stores) -> list[int]:
    """The shards of `spec` not done (see `shard_is_done`): for a stage that writes markers, from one listing of
    its `_done/` instead of a probe per shard."""
    prefix = spec.output_prefix
    if not prefix:
        return [k for k in range(spec.shards) if not shard_is_done(spec, k, files, stores)]
    done = set(stores.use(spec.run_root, lambda store: done_shards(store, prefix)))
    return [k for k in range(spec.shards) if str(k) not in done]


class Outage:
    """Failed store checks in a row: the first is logged, each backs off, and past the limit the run stops."""

    def __init__(self, files: RunFiles, run: str) -> None:
        self.files, self.run = files, run
        self.since: float | None = None
        self.failures = 0

    def failed(self, error: str) -> None:
        """One more failed check: back off, or (past the limit) record why the run stops and raise BackendError."""
        if self.since is None:
            self.since = time.monotonic()
        down = time.monotonic() - self.since
        limit = settings().outage_s
        if not self.failures:
            print(
                f"stseg local: store unreachable, shards keep running; retrying for up to {limit:.0f} s: {error}",
                file=sys.stderr,
                flush=True,
            )
        if down >= limit:
            reason = f"store unreachable for {down:.0f} s (STSEG_LOCAL_OUTAGE_S={limit:g}): {error}"
            self.files.stop_reason(reason)
            raise BackendError(f"run {self.run} stopped: {reason}; resume: stseg resume {self.run}")
        time.sleep(min(MAX_OUTAGE_BACKOFF_S, 0.25 * 2**self.failures, max(0.0, limit - down)))
        self.failures += 1

    def passed(self) -> None:
        """A check went through: an outage (if any) is over."""
        if self.since is not None:
            print(
                f"stseg local: store reachable again after {time.monotonic() - self.since:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        self.since, self.failures = None, 0
