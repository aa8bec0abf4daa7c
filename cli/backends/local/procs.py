"""Process supervision on this machine: is a recorded process still the same process, and stopping groups.

Shard processes and a detached supervisor each lead their own process group (`start_new_session`), so
stopping one stops whatever it started. Stopping is SIGTERM to the group, `STSEG_LOCAL_GRACE_S` (default 10 s)
to clean up and exit, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stseg_cli.backends.local.records import read_json, write_json
from stseg_core.settings import from_env, seconds, setting


@dataclass(frozen=True)
class LocalSettings:
    """The local backend's own variables (read when needed, so a test or a user can change them per run)."""

    grace_s: float = setting(
        "STSEG_LOCAL_GRACE_S",
        parse=seconds,
        default=10.0,
        doc="between SIGTERM and SIGKILL when a shard or a run is stopped",
    )
    outage_s: float = setting(
        "STSEG_LOCAL_OUTAGE_S",
        parse=seconds,
        default=600.0,
        doc="how long the supervisor rides out a store it cannot reach",
    )


def settings() -> LocalSettings:
    return from_env(LocalSettings)


def proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks (guards against pid reuse); None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return "?"
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def terminate(pids: Sequence[int], grace: float) -> None:
    """SIGTERM each process group, wait up to `grace` seconds for them to end, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.killpg(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while any(proc_start(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(proc_start(p) for p in pids):
            return


def pid_alive(path: Path) -> int | None:
    """The pid recorded in `path` when that very process still runs."""
    rec = read_json(path)
    if not rec:
        return None
    start = proc_start(rec["pid"])
    return int(rec["pid"]) if start is not None and start in (rec.get("start"), "?") else None


def record_pid(path: Path, pid: int) -> None:
    write_json(path, {"pid": pid, "start": proc_start(pid)})
