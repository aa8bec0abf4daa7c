"""`LocalBackend`: submit, status, logs, cancel and resume of local runs (the state layout is in the package
docstring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from stseg_cli.backends.base import Backend, Capabilities, JobStatus, OnChange, RunStatus, done_frames
from stseg_cli.backends.local.procs import pid_alive, record_pid, settings, terminate
from stseg_cli.backends.local.records import RunFiles, read_json, run_lock, write_json
from stseg_cli.backends.local.storecheck import Stores, shard_is_done
from stseg_cli.backends.local.supervisor import Supervisor
from stseg_cli.config import Config
from stseg_cli.spec import JobSpec
from stseg_core.errors import BackendError, BadInputError


class LocalBackend(Backend):
    """Shard processes on this machine (no GPUs, no node pools, no Kueue)."""

    name = "local"
    capabilities = Capabilities(
        gpus=False, kueue=False, node_pools=False, local_files=True, waits_by_default=True, resume=True
    )

    def __init__(self, config: Config, workers: int | None = None) -> None:
        super().__init__(config)
        self.workers = workers or config.workers or os.cpu_count() or 1
        self.root = config.local_state_dir() / "runs"

    def _files(self, run: str) -> RunFiles:
        return RunFiles(self.root / run)

    def _render(self, specs: Sequence[JobSpec]) -> list[dict[str, Any]]:
        out = []
        for s in specs:
            command = [sys.executable if c == "python" else c for c in s.command]
            out.append(
                {
                    "kind": "LocalJob",
                    "name": s.name,
                    "shards": s.shards,
                    "parallelism": s.parallelism,
                    "retries": s.retries,
                    "deadlineSeconds": s.deadline_s,
                    "command": command,
                    "env": {
                        **s.env_dict,
                        "JOB_COMPLETION_INDEX": f"0..{s.shards - 1}",
                        "STSEG_SCRATCH": str(self._files(s.run).root / s.name / "<shard>.scratch"),
                    },
                    "waitsFor": [f"{w.prefix}/0..{w.shards - 1}.json" for w in s.waits_for],
                    "logs": str(self._files(s.run).root / s.name / "<shard>.log"),
                }
            )
        return out

    def _check(self, specs: Sequence[JobSpec]) -> None:
        files = self._files(specs[0].run)
        if not files.specs_file.exists():
            return
        roots = {s.run_root for s in files.load_specs()}
        if specs[0].run_root not in roots:  # local state is keyed by run id alone
            raise BadInputError(
                f"run {specs[0].run} already belongs to {sorted(roots)[0]} (local state "
                f"{files.root}); choose another --run for this store"
            )

    def _claim(self, files: RunFiles, specs: list[JobSpec], resume: bool) -> None:
        """Under the run lock: refuse a run that still runs or a job it has (unless `resume`), then record specs."""
        run = specs[0].run
        pid = pid_alive(files.supervisor)
        if pid:
            raise BackendError(f"run {run} is still running (supervisor pid {pid}); wait, or `stseg cancel {run}`")
        existing = {s.name: s for s in (files.load_specs() if files.specs_file.exists() else [])}
        orphans = [p for s in existing.values() for k in range(s.shards) if (p := pid_alive(files.pid(s, k)))]
        if orphans:  # their supervisor died; starting the shards again would run them twice
            raise BackendError(
                f"run {run} still has shard processes without a supervisor (pids "
                f"{', '.join(map(str, orphans[:5]))}); wait for them, or `stseg cancel {run}`"
            )
        clash = sorted(set(existing) & {s.name for s in specs})
        if clash and not resume:
            raise BadInputError(
                f"run {run} already has {', '.join(clash)}; pass --resume to finish its "
                "missing shards, or choose another --run"
            )
        for s in specs:
            if s.name in existing:  # a resumed job gets its retries back
                for k in range(existing[s.name].shards):
                    rec = read_json(files.result(s, k))
                    if rec and rec.get("exit_code") != 0:
                        files.result(s, k).unlink()
            existing[s.name] = s
        files.save_specs(list(existing.values()))

    def _submit(
        self, specs: list[JobSpec], *, resume: bool, wait: bool, on_change: OnChange | None
    ) -> RunStatus | None:
        files = self._files(specs[0].run)
        with run_lock(files.root):  # check-and-claim: a concurrent submit of this run waits, then is refused
            self._claim(files, specs, resume)
            if not wait:
                with files.supervisor_log.open("ab") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "stseg_cli.backends.local", str(files.root), str(self.workers)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                record_pid(files.supervisor, proc.pid)
                return None
            record_pid(files.supervisor, os.getpid())
        try:
            Supervisor(files.root, self.workers).run(on_change)
        finally:
            files.supervisor.unlink(missing_ok=True)
        return self._status(specs[0].run)

    def _status(self, run: str) -> RunStatus:
        files = self._files(run)
        supervised = pid_alive(files.supervisor) is not None
        stores = Stores()
        counted = read_json(files.frames) or {}  # see `done_frames`: a marker is read once, at its listed size
        before = json.dumps(counted, sort_keys=True)
        jobs = [
            self._job_status(spec, files, stores, supervised, counted.setdefault(spec.name, {}))
            for spec in files.load_specs()
        ]
        if json.dumps(counted, sort_keys=True) != before:
            write_json(files.frames, counted)
        return RunStatus(run=run, jobs=tuple(jobs), note=_note(run, files, jobs, supervised))

    @staticmethod
    def _job_status(
        spec: JobSpec, files: RunFiles, stores: Stores, supervised: bool, cache: dict[str, list[int]]
    ) -> JobStatus:
        done, running, failed, frames = set(), set(), {}, 0
        starts, ends = [], []
        # one listing of the job's done markers (stages without markers: each shard's exit record)
        marked = (
            stores.use(spec.run_root, lambda s: done_frames(s, prefix, cache))
            if (prefix := spec.output_prefix)
            else None
        )
        for k in range(spec.shards):
            rec = read_json(files.result(spec, k))
            if rec:
                starts.append(rec["started"])
                ends.append(rec["ended"])
            pid_rec = read_json(files.pid(spec, k))
            if k in marked if marked is not None else shard_is_done(spec, k, files, stores):
                done.add(k)
                frames += (marked or {}).get(k, 0)
            elif pid_rec and pid_alive(files.pid(spec, k)):
                running.add(k)
                starts.append(files.pid(spec, k).stat().st_mtime)
            elif rec and rec.get("exit_code") != 0 and (rec.get("final") or not supervised):
                failed[k] = rec.get("reason") or f"exit {rec.get('exit_code')}"
            elif pid_rec and not supervised:
                failed[k] = f"interrupted: its supervisor is gone (stseg resume {spec.run})"
        end = time.time() if running or supervised else max(ends, default=0.0)
        elapsed = max(0.0, end - min(starts)) if starts else 0.0
        waiting = supervised and not running and not done and not failed
        return JobStatus(
            name=spec.name,
            stage=spec.stage,
            model=spec.model,
            shards=spec.shards,
            done=frozenset(done),
            running=frozenset(running),
            failed=failed,
            waiting=waiting,
            frames=frames,
            elapsed_s=elapsed,
        )

    def _find(self, run: str, stage: str, model: str) -> JobSpec:
        specs = self._files(run).load_specs()
        of_stage = [s for s in specs if s.stage == stage]
        for s in of_stage:
            if s.model == model or (not model and len(of_stage) == 1):
                return s
        raise BadInputError(
            f"run {run} has no {stage} job for model {model or '(none)'} (jobs: {', '.join(s.name for s in specs)})"
        )

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
            if not follow or (not pid_alive(files.pid(spec, shard)) and not pid_alive(files.supervisor)):
                return
            time.sleep(0.2)

    def _cancel(self, run: str) -> int:
        files = self._files(run)
        specs = files.load_specs()
        files.cancelled.touch()
        victims = [p for p in [pid_alive(files.supervisor)] if p]
        for s in specs:
            victims += [p for k in range(s.shards) if (p := pid_alive(files.pid(s, k)))]
        terminate(victims, settings().grace_s)
        for s in specs:
            for k in range(s.shards):
                if files.pid(s, k).exists() and not pid_alive(files.pid(s, k)):
                    files.ended(s, k)
                    files.write_result(s, k, 130, attempts=0, reason="cancelled", final=True, started=time.time())
        files.supervisor.unlink(missing_ok=True)
        return len(specs)

    def _resume(self, run: str, wait: bool, on_change: OnChange | None) -> RunStatus | None:
        return self._submit(self._files(run).load_specs(), resume=True, wait=wait, on_change=on_change)

    def _runs(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "specs.json").exists())


def _note(run: str, files: RunFiles, jobs: list[JobStatus], supervised: bool) -> str:
    """Why a run that is not running stopped short, and how to go on: stopped, orphaned, or failed shards."""
    if supervised or all(len(j.done) == j.shards for j in jobs):
        return ""
    resume = f"resume: stseg resume {run}"
    stopped = read_json(files.stopped)
    orphans = sum(len(j.running) for j in jobs)
    if orphans:
        return (
            f"orphaned: its supervisor is gone while {orphans} shard process(es) still run; wait for them "
            f"or `stseg cancel {run}`, then {resume}"
        )
    if stopped:
        return f"stopped: {stopped['reason']}; {resume}"
    if files.supervisor.exists():  # a supervisor that ends normally removes its pid file
        return f"orphaned: its supervisor died before the run finished (see {files.supervisor_log}); {resume}"
    if files.cancelled.exists():
        return f"cancelled; {resume}"
    failed = sum(len(j.failed) for j in jobs)
    return f"failed: {failed} shard(s) failed (reasons below); {resume}" if failed else ""
