"""What the local backend knows of a run, on disk, so that a restarted CLI still knows it (layout in the
package docstring): atomic JSON records, the run lock, and the paths of one run's state folder."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stseg_cli.spec import JobSpec
from stseg_core.errors import BadInputError


def write_json(path: Path, obj: object) -> None:
    """Atomically, through a temp file of its own (two CLIs may write the same run's files at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(obj))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """Held while a submit checks and claims a run, so two concurrent submits of one run id cannot both start it."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def last_line(log: Path, limit: int = 300) -> str:
    """The last non-blank line of a shard's log (its one-line error), for the failure reason."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


class RunFiles:
    """Paths of one run's state folder, and its records."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def job(self, spec: JobSpec) -> Path:
        return self.root / spec.name

    def log(self, spec: JobSpec, k: int) -> Path:
        return self.job(spec) / f"{k}.log"

    def pid(self, spec: JobSpec, k: int) -> Path:
        return self.job(spec) / f"{k}.pid"

    def result(self, spec: JobSpec, k: int) -> Path:
        return self.job(spec) / f"{k}.json"

    def scratch(self, spec: JobSpec, k: int) -> Path:
        return self.job(spec) / f"{k}.scratch"

    def write_result(
        self, spec: JobSpec, k: int, code: int, *, attempts: int, reason: str, final: bool, started: float
    ) -> None:
        """How shard k's last attempt ended (`final`: no retry follows)."""
        write_json(
            self.result(spec, k),
            {
                "exit_code": code,
                "attempts": attempts,
                "reason": reason,
                "final": final,
                "started": started,
                "ended": time.time(),
            },
        )

    def ended(self, spec: JobSpec, k: int) -> None:
        """Shard k's process is gone, however it ended: forget its pid and remove its scratch."""
        self.pid(spec, k).unlink(missing_ok=True)
        shutil.rmtree(self.scratch(spec, k), ignore_errors=True)

    @property
    def specs_file(self) -> Path:
        return self.root / "specs.json"

    @property
    def frames(self) -> Path:
        """{job: {shard: [marker bytes, frames]}}: `stseg status`'s frame counts, kept between calls."""
        return self.root / "frames.json"

    @property
    def supervisor(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def cancelled(self) -> Path:
        return self.root / "cancelled"

    @property
    def stopped(self) -> Path:
        return self.root / "stopped.json"

    def stop_reason(self, reason: str) -> None:
        write_json(self.stopped, {"reason": reason, "at": time.time()})

    def load_specs(self) -> list[JobSpec]:
        data = read_json(self.specs_file)
        if data is None:
            raise BadInputError(f"no local run at {self.root} (see `stseg runs`)")
        return [JobSpec.from_dict(d) for d in data]

    def save_specs(self, specs: Sequence[JobSpec]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.specs_file, [s.to_dict() for s in specs])
