"""The supervisor of a local run: at most `workers` shard processes, retries, and jobs started only when the done
markers they wait for exist. It runs in the CLI process (attached submit) or detached, as
`python -m stseg_cli.backends.local RUN_DIR WORKERS` (`main`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stseg_cli.backends.base import OnChange
from stseg_cli.backends.local.procs import pid_alive, record_pid, settings, terminate
from stseg_cli.backends.local.records import RunFiles, last_line
from stseg_cli.backends.local.storecheck import Outage, StoreDown, Stores, shard_is_done, unfinished_shards
from stseg_cli.spec import JobSpec
from stseg_core.errors import BackendError, BadInputError, StsegError
from stseg_core.runlayout import done_key, done_shards

POLL_S = 0.05
WAIT_POLL_S = 1.0  # a job waiting for another's done markers lists them at most this often
Shard = tuple[JobSpec, int]


class Supervisor:
    """Runs the shards of a run's jobs with at most `workers` processes; see the package docstring."""

    def __init__(self, run_dir: Path, workers: int) -> None:
        self.files = RunFiles(run_dir)
        self.specs = self.files.load_specs()
        self.workers = max(1, workers)
        self._stores = Stores()
        self._running: dict[tuple[str, int], tuple[JobSpec, subprocess.Popen[bytes], float]] = {}
        self._job_start: dict[str, float] = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self._failed_jobs: set[str] = set()
        self._recheck: dict[str, float] = {}  # job → when its awaited markers are next listed
        self._ready: set[str] = set()  # jobs whose awaited markers were all there: not listed again
        self._producers = {s.output_prefix: s for s in self.specs if s.output_prefix}

    def _done(self, spec: JobSpec, k: int) -> bool:
        return shard_is_done(spec, k, self.files, self._stores)

    def _unfinished(self) -> list[Shard]:
        """Every shard not done yet: one listing of each job's done markers."""
        return [(s, k) for s in self.specs for k in unfinished_shards(s, self.files, self._stores)]

    def _waits(self, spec: JobSpec) -> str | bool:
        """True when every awaited marker exists, False to keep waiting, a reason string to give up."""
        if spec.name in self._ready:
            return True
        if time.monotonic() < self._recheck.get(spec.name, 0.0):
            return False  # checked a moment ago: its inputs are polled every WAIT_POLL_S, not every POLL_S
        for wait in spec.waits_for:
            # one listing, however many shards
            done = set(self._stores.use(spec.run_root, lambda store, w=wait: done_shards(store, w.prefix)))
            missing = [done_key(wait.prefix, k) for k in range(wait.shards) if str(k) not in done]
            if not missing:
                continue
            self._recheck[spec.name] = time.monotonic() + WAIT_POLL_S
            producer = self._producers.get(wait.prefix)
            if producer is None:
                return f"needs {self._stores.get(spec.run_root).uri(missing[0])}, which no job of this run produces"
            if producer.name in self._failed_jobs:
                return f"upstream job {producer.name} failed"
            return False
        self._ready.add(spec.name)
        return True

    def _launch(self, spec: JobSpec, k: int, attempt: int) -> None:
        self.files.job(spec).mkdir(parents=True, exist_ok=True)
        # Shard processes share the cores: each gets its slice of math-library threads unless the user chose.
        threads = str(max(1, (os.cpu_count() or 1) // self.workers))
        scratch = self.files.scratch(spec, k)
        scratch.mkdir(exist_ok=True)
        env = {
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            **os.environ,
            **spec.env_dict,
            "JOB_COMPLETION_INDEX": str(k),
            "PYTHONUNBUFFERED": "1",
            "STSEG_SCRATCH": str(scratch),
        }
        command = list(spec.command)
        if command[0] == "python":
            command[0] = sys.executable
        log = self.files.log(spec, k).open("ab")
        log.write(f"--- stseg local: attempt {attempt} of shard {k}: {' '.join(command)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        except OSError as err:
            raise BackendError(f"{spec.name} shard {k}: cannot start {command[0]} ({err})") from None
        finally:
            log.close()
        record_pid(self.files.pid(spec, k), proc.pid)
        self._job_start.setdefault(spec.name, time.time())
        self._running[(spec.name, k)] = (spec, proc, time.time())

    def _kill_all(self) -> None:
        """Stop every running shard (SIGTERM, grace, SIGKILL) and record why each ended."""
        terminate([proc.pid for _spec, proc, _ in self._running.values()], settings().grace_s)
        reason = "cancelled" if self.files.cancelled.exists() else "stopped with its supervisor"
        for (_name, k), (spec, proc, t0) in list(self._running.items()):
            proc.wait()
            self.files.write_result(spec, k, 130, attempts=0, reason=reason, final=True, started=t0)
            self.files.ended(spec, k)
        self._running.clear()

    def run(self, on_change: OnChange | None = None) -> None:
        """Until every shard is done or has failed for good (or the run is cancelled). A store outage longer
        than the local outage limit stops every shard and raises BackendError; any stop before the end leaves its
        reason in `stopped.json`."""
        self.files.cancelled.unlink(missing_ok=True)
        self.files.stopped.unlink(missing_ok=True)
        pending: list[Shard] | None = None
        outage = Outage(self.files, self.specs[0].run)
        try:
            while pending is None or pending or self._running:
                if self.files.cancelled.exists():
                    self._kill_all()
                    return
                try:
                    if pending is None:
                        pending = self._unfinished()
                    changed = self._reap(pending)
                    changed |= self._start_ready(pending)
                    if changed and on_change:
                        on_change(None)  # progress bars read the status themselves (throttled)
                except StoreDown as err:
                    outage.failed(str(err))
                    continue
                outage.passed()
                time.sleep(POLL_S)
        except BaseException as err:
            if not self.files.stopped.exists() and not self.files.cancelled.exists():
                self.files.stop_reason(f"supervisor failed: {' '.join(str(err).split()) or type(err).__name__}")
            self._kill_all()
            raise

    def _start_ready(self, pending: list[Shard]) -> bool:
        changed = False
        for item in list(pending):
            if len(self._running) >= self.workers:
                break
            spec, k = item
            if sum(1 for n, _ in self._running if n == spec.name) >= spec.parallelism:
                continue
            ready = self._waits(spec)
            if ready is False:
                continue
            pending.remove(item)
            changed = True
            key = (spec.name, k)
            if isinstance(ready, str):
                self.files.write_result(
                    spec, k, 3, attempts=self._attempts.get(key, 0), reason=ready, final=True, started=time.time()
                )
                self._failed_jobs.add(spec.name)
                continue
            self._attempts[key] = self._attempts.get(key, 0) + 1
            self._launch(spec, k, self._attempts[key])
        return changed

    def _reap(self, pending: list[Shard]) -> bool:
        changed = False
        for key, (spec, proc, t0) in list(self._running.items()):
            code = proc.poll()
            timed_out = code is None and time.time() - self._job_start[spec.name] > spec.deadline_s
            if timed_out:
                terminate([proc.pid], settings().grace_s)
                code = proc.wait()
            if code is None:
                continue
            k = key[1]
            # checked before the shard leaves `_running`: a store outage here is retried on the next pass
            unmarked = code == 0 and not timed_out and spec.output_prefix and not self._done(spec, k)
            changed = True
            del self._running[key]
            self.files.ended(spec, k)
            code, reason = self._outcome(spec, k, code, timed_out, bool(unmarked))
            # bad input: retrying cannot help
            retry = code not in (0, BadInputError.exit_code) and not timed_out and self._attempts[key] <= spec.retries
            self.files.write_result(
                spec, k, code, attempts=self._attempts[key], reason=reason, final=not retry, started=t0
            )
            if retry:
                pending.insert(0, (spec, k))
            elif code:
                self._failed_jobs.add(spec.name)
        return changed

    def _outcome(self, spec: JobSpec, k: int, code: int, timed_out: bool, unmarked: bool) -> tuple[int, str]:
        """(exit code, one-line reason) of a shard process that ended."""
        if timed_out:
            return code, f"deadline of {spec.deadline_s} s exceeded"
        if code < 0:
            return code, f"killed by signal {-code}"
        if code:
            return code, f"exit {code}: {last_line(self.files.log(spec, k))}"
        if unmarked and spec.output_prefix:
            return 3, f"exited 0 without writing its done marker {done_key(spec.output_prefix, k)}"
        return code, ""


def main(argv: list[str]) -> int:
    """`python -m stseg_cli.backends.local RUN_DIR WORKERS`: the detached supervisor of a run. Its output
    (supervisor.log) is one line per event; why it stopped early is also in stopped.json."""
    run_dir, workers = Path(argv[0]), int(argv[1])
    files = RunFiles(run_dir)
    # `stseg cancel` sends SIGTERM: unwind (stopping the shards gracefully) instead of dying on the spot
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        Supervisor(run_dir, workers).run()
    except StsegError as err:
        print(f"stseg local: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    finally:
        if pid_alive(files.supervisor) == os.getpid():
            files.supervisor.unlink(missing_ok=True)
    return 0
