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
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from stseg_cli.backends.base import Backend, Capabilities, JobStatus, RunStatus, done_frames
from stseg_cli.spec import JobSpec
from stseg_core.errors import BackendError, BadInputError, StsegError
from stseg_core.runlayout import done_key, done_shards, shard_done
from stseg_core.store import Store, open_store

_T = TypeVar("_T")
POLL_S = 0.05
WAIT_POLL_S = 1.0  # a job waiting for another's done markers lists them at most this often
BAD_INPUT_EXIT = 2  # the stage's BadInputError: retrying cannot help
MAX_OUTAGE_BACKOFF_S = 10.0


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise BadInputError(f"{name}={raw!r}: not a number of seconds") from None
    if value < 0:
        raise BadInputError(f"{name}={raw!r}: must be 0 or more seconds")
    return value


def outage_limit_s() -> float:
    """How long the supervisor rides out a store it cannot reach before it stops the run."""
    return _env_seconds("STSEG_LOCAL_OUTAGE_S", 600.0)


def grace_s() -> float:
    """Between SIGTERM and SIGKILL when a shard (or a run) is stopped: time to clean scratch and exit."""
    return _env_seconds("STSEG_LOCAL_GRACE_S", 10.0)


def terminate(pids: Sequence[int], grace: float) -> None:
    """SIGTERM each process group, wait up to `grace` seconds for them to end, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.killpg(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while any(_proc_start(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(_proc_start(p) for p in pids):
            return


class _StoreDown(BackendError):
    """A store error on one of the supervisor's own checks: an outage to ride out, not a failed shard (and, in
    `stseg status`, one line)."""


def _proc_start(pid: int) -> str | None:
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


def _write_json(path: Path, obj) -> None:
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


@contextmanager
def _run_lock(root: Path) -> Iterator[None]:
    """Held while a submit checks and claims a run, so two concurrent submits of one run id cannot both start it."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(path: Path) -> int | None:
    """The pid recorded in `path` when that very process still runs."""
    rec = _read_json(path)
    if not rec:
        return None
    start = _proc_start(rec["pid"])
    return rec["pid"] if start is not None and start in (rec.get("start"), "?") else None


def _record_pid(path: Path, pid: int) -> None:
    _write_json(path, {"pid": pid, "start": _proc_start(pid)})


def _last_line(log: Path, limit: int = 300) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


class _RunFiles:
    """Paths of one run's state folder."""

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

    def ended(self, spec: JobSpec, k: int) -> None:
        """Shard k's process is gone, however it ended: forget its pid and remove its scratch."""
        self.pid(spec, k).unlink(missing_ok=True)
        shutil.rmtree(self.scratch(spec, k), ignore_errors=True)

    @property
    def specs_file(self) -> Path:
        return self.root / "specs.json"

    @property
    def frames(self) -> Path:
        return self.root / "frames.json"

    @property
    def supervisor(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def cancelled(self) -> Path:
        return self.root / "cancelled"

    @property
    def stopped(self) -> Path:
        return self.root / "stopped.json"

    def load_specs(self) -> list[JobSpec]:
        data = _read_json(self.specs_file)
        if data is None:
            raise BadInputError(f"no local run at {self.root} (see `stseg runs`)")
        return [JobSpec.from_dict(d) for d in data]

    def save_specs(self, specs: Sequence[JobSpec]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(self.specs_file, [s.to_dict() for s in specs])


def _on_store(spec: JobSpec, stores: dict, use: Callable[[Store], _T]) -> _T:
    """`use(store)` on the spec's run root (opened once per `stores`); any store error is an outage (_StoreDown)."""
    root = spec.env_dict["STSEG_RUN_ROOT"]
    try:
        store = stores.get(root) or stores.setdefault(root, open_store(root))
        return use(store)
    except StsegError as err:
        raise _StoreDown(str(err)) from None


def _shard_done(spec: JobSpec, k: int, files: _RunFiles, store_cache: dict) -> bool:
    if spec.output_prefix:
        return _on_store(spec, store_cache, lambda store: shard_done(store, spec.output_prefix, k))
    rec = _read_json(files.result(spec, k))
    return bool(rec) and rec.get("exit_code") == 0


class Supervisor:
    """Runs the shards of a run's jobs with at most `workers` processes; see the module docstring."""

    def __init__(self, run_dir: Path, workers: int) -> None:
        self.files = _RunFiles(run_dir)
        self.specs = self.files.load_specs()
        self.workers = max(1, workers)
        self._stores: dict = {}
        self._running: dict[tuple[str, int], tuple[JobSpec, subprocess.Popen, float]] = {}
        self._job_start: dict[str, float] = {}
        self._recheck: dict[str, float] = {}  # job → when its awaited markers are next listed

    def _done(self, spec: JobSpec, k: int) -> bool:
        return _shard_done(spec, k, self.files, self._stores)

    def _waits(self, spec: JobSpec, failed_jobs: set[str]) -> str | bool:
        """True when every awaited marker exists, False to keep waiting, a reason string to give up."""
        producers = {s.output_prefix: s for s in self.specs if s.output_prefix}
        if time.monotonic() < self._recheck.get(spec.name, 0.0):
            return False  # checked a moment ago: its inputs are polled every WAIT_POLL_S, not every POLL_S
        for wait in spec.waits_for:
            # one listing, however many shards
            done = set(_on_store(spec, self._stores, lambda store, w=wait: done_shards(store, w.prefix)))
            store = self._stores[spec.env_dict["STSEG_RUN_ROOT"]]
            missing = [done_key(wait.prefix, k) for k in range(wait.shards) if str(k) not in done]
            if not missing:
                continue
            self._recheck[spec.name] = time.monotonic() + WAIT_POLL_S
            producer = producers.get(wait.prefix)
            if producer is None:
                return f"needs {store.uri(missing[0])}, which no job of this run produces"
            if producer.name in failed_jobs:
                return f"upstream job {producer.name} failed"
            return False
        return True

    def _launch(self, spec: JobSpec, k: int, attempt: int) -> None:
        jobdir = self.files.job(spec)
        jobdir.mkdir(parents=True, exist_ok=True)
        # Shard processes share the cores: each gets its slice of math-library threads unless the user chose.
        threads = str(max(1, (os.cpu_count() or 1) // self.workers))
        scratch = self.files.scratch(spec, k)
        scratch.mkdir(exist_ok=True)
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **os.environ, **spec.env_dict,
               "JOB_COMPLETION_INDEX": str(k), "PYTHONUNBUFFERED": "1", "STSEG_SCRATCH": str(scratch)}
        command = list(spec.command)
        if command[0] == "python":
            command[0] = sys.executable
        log = self.files.log(spec, k).open("ab")
        log.write(f"--- stseg local: attempt {attempt} of shard {k}: {' '.join(command)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            raise BackendError(f"{spec.name} shard {k}: cannot start {command[0]} ({err})") from None
        finally:
            log.close()
        _record_pid(self.files.pid(spec, k), proc.pid)
        self._job_start.setdefault(spec.name, time.time())
        self._running[(spec.name, k)] = (spec, proc, time.time())

    def _kill_all(self) -> None:
        """Stop every running shard (SIGTERM, grace, SIGKILL) and record why each ended."""
        terminate([proc.pid for _spec, proc, _ in self._running.values()], grace_s())
        reason = "cancelled" if self.files.cancelled.exists() else "stopped with its supervisor"
        for (_name, k), (spec, proc, t0) in list(self._running.items()):
            proc.wait()
            _write_json(self.files.result(spec, k), {"exit_code": 130, "attempts": 0, "reason": reason,
                                                     "final": True, "started": t0, "ended": time.time()})
            self.files.ended(spec, k)
        self._running.clear()

    def run(self, on_change: Callable[[], None] | None = None) -> None:
        """Until every shard is done or has failed for good (or the run is cancelled). A store outage longer
        than `outage_limit_s()` stops every shard and raises BackendError; any stop before the end leaves its
        reason in `stopped.json`."""
        self.files.cancelled.unlink(missing_ok=True)
        self.files.stopped.unlink(missing_ok=True)
        pending: list | None = None
        attempts: dict[tuple[str, int], int] = {}
        failed_jobs: set[str] = set()
        outage: tuple[float, int] | None = None  # (since, checks failed)
        try:
            while pending is None or pending or self._running:
                if self.files.cancelled.exists():
                    self._kill_all()
                    return
                try:
                    if pending is None:
                        pending = [(s, k) for s in self.specs for k in range(s.shards) if not self._done(s, k)]
                    changed = self._reap(pending, attempts, failed_jobs)
                    changed |= self._start_ready(pending, attempts, failed_jobs)
                    if changed and on_change:
                        on_change()  # progress bars read the markers too
                except _StoreDown as err:
                    outage = self._ride_out(outage, str(err))
                    continue
                if outage:
                    print(f"stseg local: store reachable again after {time.monotonic() - outage[0]:.0f} s",
                          file=sys.stderr, flush=True)
                    outage = None
                time.sleep(POLL_S)
        except BaseException as err:
            if not self.files.stopped.exists() and not self.files.cancelled.exists():
                self._stop_reason(f"supervisor failed: {' '.join(str(err).split()) or type(err).__name__}")
            self._kill_all()
            raise

    def _ride_out(self, outage: tuple[float, int] | None, error: str) -> tuple[float, int]:
        """One failed store check: log the first, back off, keep the shards running; past the limit, stop."""
        since, n = outage or (time.monotonic(), 0)
        down = time.monotonic() - since
        limit = outage_limit_s()
        if not outage:
            print(f"stseg local: store unreachable, shards keep running; retrying for up to {limit:.0f} s: {error}",
                  file=sys.stderr, flush=True)
        if down >= limit:
            reason = f"store unreachable for {down:.0f} s (STSEG_LOCAL_OUTAGE_S={limit:g}): {error}"
            self._stop_reason(reason)
            raise BackendError(f"run {self.specs[0].run} stopped: {reason}; resume: stseg resume {self.specs[0].run}")
        time.sleep(min(MAX_OUTAGE_BACKOFF_S, 0.25 * 2 ** n, max(0.0, limit - down)))
        return since, n + 1

    def _stop_reason(self, reason: str) -> None:
        _write_json(self.files.stopped, {"reason": reason, "at": time.time()})

    def _start_ready(self, pending: list, attempts: dict, failed_jobs: set[str]) -> bool:
        changed = False
        for item in list(pending):
            if len(self._running) >= self.workers:
                break
            spec, k = item
            if sum(1 for n, _ in self._running if n == spec.name) >= spec.parallelism:
                continue
            ready = self._waits(spec, failed_jobs)
            if ready is False:
                continue
            pending.remove(item)
            changed = True
            if isinstance(ready, str):
                self._fail(spec, k, attempts.get((spec.name, k), 0), 3, ready, failed_jobs)
                continue
            attempts[(spec.name, k)] = attempts.get((spec.name, k), 0) + 1
            self._launch(spec, k, attempts[(spec.name, k)])
        return changed

    def _fail(self, spec: JobSpec, k: int, attempt: int, code: int, reason: str, failed_jobs: set[str]) -> None:
        now = time.time()
        _write_json(self.files.result(spec, k), {"exit_code": code, "attempts": attempt, "reason": reason,
                                                 "final": True, "started": now, "ended": now})
        failed_jobs.add(spec.name)

    def _reap(self, pending: list, attempts: dict, failed_jobs: set[str]) -> bool:
        changed = False
        for key, (spec, proc, t0) in list(self._running.items()):
            code = proc.poll()
            timed_out = code is None and time.time() - self._job_start[spec.name] > spec.deadline_s
            if timed_out:
                terminate([proc.pid], grace_s())
                code = proc.wait()
            if code is None:
                continue
            k = key[1]
            # checked before the shard leaves `_running`: a store outage here is retried on the next pass
            unmarked = code == 0 and not timed_out and spec.output_prefix and not self._done(spec, k)
            changed = True
            del self._running[key]
            self.files.ended(spec, k)
            reason = ""
            if timed_out:
                reason = f"deadline of {spec.deadline_s} s exceeded"
            elif code < 0:
                reason = f"killed by signal {-code}"
            elif code:
                reason = f"exit {code}: {_last_line(self.files.log(spec, k))}"
            elif unmarked:
                reason, code = f"exited 0 without writing its done marker {done_key(spec.output_prefix, k)}", 3
            retry = code != 0 and code != BAD_INPUT_EXIT and not timed_out and attempts[key] <= spec.retries
            _write_json(self.files.result(spec, k), {"exit_code": code, "attempts": attempts[key], "reason": reason,
                                                     "final": not retry, "started": t0, "ended": time.time()})
            if retry:
                pending.insert(0, (spec, k))
            elif code:
                failed_jobs.add(spec.name)
        return changed


class LocalBackend(Backend):
    """Shard processes on this machine (no GPUs, no node pools, no Kueue)."""

    name = "local"
    capabilities = Capabilities(gpus=False, kueue=False, node_pools=False, detach=True)

    def __init__(self, config, workers: int | None = None) -> None:
        super().__init__(config)
        self.workers = workers or config.workers or os.cpu_count() or 1
        self.root = config.local_state_dir() / "runs"

    def _files(self, run: str) -> _RunFiles:
        return _RunFiles(self.root / run)

    def _render(self, specs: Sequence[JobSpec]) -> list[dict]:
        out = []
        for s in specs:
            command = [sys.executable if c == "python" else c for c in s.command]
            out.append({"kind": "LocalJob", "name": s.name, "shards": s.shards, "parallelism": s.parallelism,
                        "retries": s.retries, "deadlineSeconds": s.deadline_s, "command": command,
                        "env": {**s.env_dict, "JOB_COMPLETION_INDEX": f"0..{s.shards - 1}",
                                "STSEG_SCRATCH": str(self._files(s.run).root / s.name / "<shard>.scratch")},
                        "waitsFor": [f"{w.prefix}/0..{w.shards - 1}.json" for w in s.waits_for],
                        "logs": str(self._files(s.run).root / s.name / "<shard>.log")})
        return out

    def _check(self, specs: Sequence[JobSpec]) -> None:
        files = self._files(specs[0].run)
        if not files.specs_file.exists():
            return
        roots = {s.env_dict["STSEG_RUN_ROOT"] for s in files.load_specs()}
        if specs[0].env_dict["STSEG_RUN_ROOT"] not in roots:  # local state is keyed by run id alone
            raise BadInputError(f"run {specs[0].run} already belongs to {sorted(roots)[0]} (local state "
                                f"{files.root}); choose another --run for this store")

    def _submit(self, specs: list[JobSpec], *, resume: bool, wait: bool,
                on_change: Callable[[], None] | None) -> RunStatus | None:
        run = specs[0].run
        files = self._files(run)
        with _run_lock(files.root):  # check-and-claim: a concurrent submit of this run waits, then is refused
            pid = _pid_alive(files.supervisor)
            if pid:
                raise BackendError(f"run {run} is still running (supervisor pid {pid}); wait, or `stseg cancel {run}`")
            existing = {s.name: s for s in (files.load_specs() if files.specs_file.exists() else [])}
            orphans = [p for s in existing.values() for k in range(s.shards) if (p := _pid_alive(files.pid(s, k)))]
            if orphans:  # their supervisor died; starting the shards again would run them twice
                raise BackendError(f"run {run} still has shard processes without a supervisor (pids "
                                   f"{', '.join(map(str, orphans[:5]))}); wait for them, or `stseg cancel {run}`")
            clash = sorted(set(existing) & {s.name for s in specs})
            if clash and not resume:
                raise BadInputError(f"run {run} already has {', '.join(clash)}; pass --resume to finish its "
                                    "missing shards, or choose another --run")
            for s in specs:
                if s.name in existing:  # a resumed job gets its retries back
                    for k in range(existing[s.name].shards):
                        rec = _read_json(files.result(s, k))
                        if rec and rec.get("exit_code") != 0:
                            files.result(s, k).unlink()
                existing[s.name] = s
            files.save_specs(list(existing.values()))
            if not wait:
                files.root.mkdir(parents=True, exist_ok=True)
                with (files.root / "supervisor.log").open("ab") as log:
                    proc = subprocess.Popen([sys.executable, "-m", "stseg_cli.backends.local", str(files.root),
                                             str(self.workers)], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
                _record_pid(files.supervisor, proc.pid)
                return None
            _record_pid(files.supervisor, os.getpid())
        try:
            Supervisor(files.root, self.workers).run(on_change)
        finally:
            files.supervisor.unlink(missing_ok=True)
        return self._status(run)

    def _status(self, run: str) -> RunStatus:
        files = self._files(run)
        specs = files.load_specs()
        supervised = _pid_alive(files.supervisor) is not None
        stores: dict = {}
        counted = _read_json(files.frames) or {}  # {job: {shard: [marker bytes, frames]}}, see `done_frames`
        before = json.dumps(counted, sort_keys=True)
        jobs = []
        for spec in specs:
            done, running, failed, frames = set(), set(), {}, 0
            starts, ends = [], []
            marked = self._done_frames(spec, stores, counted.setdefault(spec.name, {}))
            for k in range(spec.shards):
                rec = _read_json(files.result(spec, k))
                if rec:
                    starts.append(rec["started"])
                    ends.append(rec["ended"])
                pid_rec = _read_json(files.pid(spec, k))
                is_done = k in marked if marked is not None else _shard_done(spec, k, files, stores)
                if is_done:
                    done.add(k)
                    frames += (marked or {}).get(k, 0)
                elif pid_rec and _pid_alive(files.pid(spec, k)):
                    running.add(k)
                    starts.append(files.pid(spec, k).stat().st_mtime)
                elif rec and rec.get("exit_code") != 0 and (rec.get("final") or not supervised):
                    failed[k] = rec.get("reason") or f"exit {rec.get('exit_code')}"
                elif pid_rec and not supervised:
                    failed[k] = f"interrupted: its supervisor is gone (stseg resume {run})"
            end = time.time() if running or supervised else max(ends, default=0.0)
            elapsed = max(0.0, end - min(starts)) if starts else 0.0
            waiting = supervised and not running and not done and not failed
            jobs.append(JobStatus(name=spec.name, stage=spec.stage, model=spec.model, shards=spec.shards,
                                  done=frozenset(done), running=frozenset(running), failed=failed,
                                  waiting=waiting, frames=frames, elapsed_s=elapsed))
        if json.dumps(counted, sort_keys=True) != before:
            _write_json(files.frames, counted)
        return RunStatus(run=run, jobs=tuple(jobs), note=self._note(run, files, jobs, supervised))

    @staticmethod
    def _note(run: str, files: _RunFiles, jobs: list[JobStatus], supervised: bool) -> str:
        """Why a run that is not running stopped short, and how to go on: stopped, orphaned, or failed shards."""
        if supervised or all(len(j.done) == j.shards for j in jobs):
            return ""
        resume = f"resume: stseg resume {run}"
        stopped = _read_json(files.stopped)
        orphans = sum(len(j.running) for j in jobs)
        if orphans:
            return (f"orphaned: its supervisor is gone while {orphans} shard process(es) still run; wait for them "
                    f"or `stseg cancel {run}`, then {resume}")
        if stopped:
            return f"stopped: {stopped['reason']}; {resume}"
        if files.supervisor.exists():  # a supervisor that ends normally removes its pid file
            log = files.root / "supervisor.log"
            return f"orphaned: its supervisor died before the run finished (see {log}); {resume}"
        if files.cancelled.exists():
            return f"cancelled; {resume}"
        failed = sum(len(j.failed) for j in jobs)
        return f"failed: {failed} shard(s) failed (reasons below); {resume}" if failed else ""

    @staticmethod
    def _done_frames(spec: JobSpec, stores: dict, cache: dict) -> dict[int, int] | None:
        """{shard: frames} of the spec's done shards (one listing); None for a stage without done markers."""
        if not spec.output_prefix:
            return None
        return _on_store(spec, stores, lambda store: done_frames(store, spec.output_prefix, cache))

    def _find(self, run: str, stage: str, model: str) -> JobSpec:
        specs = self._files(run).load_specs()
        of_stage = [s for s in specs if s.stage == stage]
        for s in of_stage:
            if s.model == model or (not model and len(of_stage) == 1):
                return s
        raise BadInputError(f"run {run} has no {stage} job for model {model or '(none)'} "
                            f"(jobs: {', '.join(s.name for s in specs)})")

    def _logs(self, run: str, stage: str, model: str, shard: int, follow: bool) -> Iterator[str]:
        spec = self._find(run, stage, model)
        if not 0 <= shard < spec.shards:
            raise BadInputError(f"{spec.name} has shards 0..{spec.shards - 1}, not {shard}")
        files = self._files(run)
        log = files.log(spec, shard)
        if not log.exists() and not follow:
            raise BadInputError(f"{spec.name} shard {shard} has not started yet (no {log})")
        pos = 0
        while True:
            if log.exists():
                with log.open("r", encoding="utf-8", errors="replace") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    pos = fh.tell()
                if chunk:
                    yield chunk
            if not follow or (not _pid_alive(files.pid(spec, shard)) and not _pid_alive(files.supervisor)):
                return
            time.sleep(0.2)

    def _cancel(self, run: str) -> int:
        files = self._files(run)
        specs = files.load_specs()
        files.cancelled.touch()
        victims = [p for p in [_pid_alive(files.supervisor)] if p]
        for s in specs:
            victims += [p for k in range(s.shards) if (p := _pid_alive(files.pid(s, k)))]
        terminate(victims, grace_s())
        for s in specs:
            for k in range(s.shards):
                if files.pid(s, k).exists() and not _pid_alive(files.pid(s, k)):
                    files.ended(s, k)
                    _write_json(files.result(s, k), {"exit_code": 130, "attempts": 0, "reason": "cancelled",
                                                     "final": True, "started": time.time(), "ended": time.time()})
        files.supervisor.unlink(missing_ok=True)
        return len(specs)

    def _resume(self, run: str, wait: bool, on_change: Callable[[], None] | None) -> RunStatus | None:
        return self._submit(self._files(run).load_specs(), resume=True, wait=wait, on_change=on_change)

    def _runs(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "specs.json").exists())


def main(argv: list[str]) -> int:
    """`python -m stseg_cli.backends.local RUN_DIR WORKERS`: the detached supervisor of a run. Its output
    (supervisor.log) is one line per event; why it stopped early is also in stopped.json."""
    run_dir, workers = Path(argv[0]), int(argv[1])
    files = _RunFiles(run_dir)
    # `stseg cancel` sends SIGTERM: unwind (stopping the shards gracefully) instead of dying on the spot
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        Supervisor(run_dir, workers).run()
    except StsegError as err:
        print(f"stseg local: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    finally:
        if _pid_alive(files.supervisor) == os.getpid():
            files.supervisor.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
