"""The local backend: every shard is a `python -m stseg_jobs.<stage>` process on this machine.

A supervisor (in the CLI process, or detached with `python -m stseg_cli.backends.local RUN_DIR`) keeps at most
`workers` shard processes alive, retries failed shards, and starts a job only when the done markers it waits
for exist. Everything it knows is on disk, so a restarted CLI still knows the run:

    <state>/runs/<run>/specs.json            the run's JobSpecs
    <state>/runs/<run>/supervisor.pid        {"pid", "start"} while a supervisor runs (left behind if it is killed)
    <state>/runs/<run>/stopped.json          {"reason", "at"} when the supervisor stopped before the run finished
    <state>/runs/<run>/<job>/<k>.log         shard k's stdout+stderr (appended across attempts)
    <state>/runs/<run>/<job>/<k>.pid         {"pid", "start"} while shard k's process lives
    <state>/runs/<run>/<job>/<k>.json        {"exit_code", "attempts", "reason", "started", "ended"} of the last attempt
    <state>/runs/<run>/<job>/<k>.scratch/    shard k's STSEG_SCRATCH, removed whenever its process ends (SIGKILL too)

A shard is done when the store holds its done marker (stages that write them) or its last exit code was 0.

The supervisor's own store checks (done markers) treat a store error as an outage, not a failure: shards keep
running, the check is retried with backoff, and only an outage longer than `STSEG_LOCAL_OUTAGE_S` (default
600 s; each check already retries for `STSEG_S3_DEADLINE_S`) stops the run, with the reason in `stopped.json`.
Stopping a process is SIGTERM to its group, `STSEG_LOCAL_GRACE_S` (default 10 s), then SIGKILL.

Modules, one concern each: `backend` (LocalBackend: submit, status, logs, cancel, resume), `supervisor` (the
supervisor loop and the detached entry), `storecheck` (done-marker checks and riding out a store outage),
`procs` (process records, stopping process groups, the local settings), `records` (the state folder's files).
"""

from stseg_cli.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
