"""The local backend runs real shard processes: markers, retries, waits, kill-and-resume, a restarted CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from stseg_cli.backends.base import get_backend
from stseg_cli.backends.local import LocalBackend
from stseg_cli.config import Config
from stseg_cli.spec import StageRequest, build_specs, pipeline_specs
from stseg_core.errors import BackendError, BadInputError
from stseg_core.store import open_store

# A stand-in stage with the contract of a real one: Job env in, outputs then a done marker, exit 2 on bad input.
STAGE = textwrap.dedent("""
    import hashlib, json, os, sys, time
    from pathlib import Path
    stage, model = os.environ["STSEG_STAGE"], os.environ["STSEG_MODEL"]
    k = int(os.environ["JOB_COMPLETION_INDEX"])
    root = Path(os.environ["STSEG_RUN_ROOT"].removeprefix("file://"))
    print(f"{stage} {model} shard {k} of {os.environ['STSEG_NUM_SHARDS']} starts", flush=True)
    if os.environ.get("STSEG_BAD_SHARD") == str(k):
        print(f"stseg: error: shard {k}: video v{k} has no first-frame annotation", flush=True)
        sys.exit(2)
    out = root / ("pred/" + model if stage == "infer" else "fused")
    for f in range(3):
        (out / f"v{k}").mkdir(parents=True, exist_ok=True)
        (out / f"v{k}" / f"{f:05d}.png").write_bytes(b"png")
        time.sleep(float(os.environ.get("STSEG_SLOW_" + str(k), "0")) / 3)
    (out / "_done").mkdir(exist_ok=True)
    files = {f"v{k}/{f:05d}.png": {"size": 3, "sha256": hashlib.sha256(b"png").hexdigest()} for f in range(3)}
    (out / "_done" / f"{k}.json").write_text(json.dumps({"files": files, "t": time.time()}))
    with open(root / "markers.log", "a") as log:
        log.write(f"{stage}/{model}/{k} {time.time()}\\n")
""")


@pytest.fixture()
def env(tmp_path: Path):
    stage = tmp_path / "stage.py"
    stage.write_text(STAGE)
    (tmp_path / "store").mkdir()
    cfg = Config(store=str(tmp_path / "store"), data_root=str(tmp_path / "data"), state_dir=str(tmp_path / "state"))
    return cfg, stage


def _specs(cfg: Config, stage: Path, req: StageRequest, run: str = "r1"):
    return [replace(s, command=("python", str(stage))) for s in build_specs(cfg, run, req, default_gpus=False)]


def _markers(cfg: Config, run: str = "r1") -> list[str]:
    return [ln.split()[0] for ln in (Path(cfg.store) / "runs" / run / "markers.log").read_text().splitlines()]


def test_runs_every_shard_and_reports_status(env) -> None:
    cfg, stage = env
    backend = get_backend("local", cfg, workers=2)
    specs = _specs(cfg, stage, StageRequest("infer", models=("flowprop", "sam2"), shards=3))
    final = backend.submit(specs, wait=True)
    assert final.succeeded and final.finished
    assert {j.name: sorted(j.done) for j in final.jobs} == {
        "stseg-r1-infer-flowprop": [0, 1, 2],
        "stseg-r1-infer-sam2": [0, 1, 2],
    }
    # frames/s comes from the markers: 3 PNGs per shard
    assert [j.frames for j in final.jobs] == [9, 9]
    store = open_store(Path(cfg.store) / "runs" / "r1")
    assert len(store.list("pred/sam2")) == 3 * 3 + 3
    assert sorted(_markers(cfg)) == sorted(f"infer/{m}/{k}" for m in ("flowprop", "sam2") for k in range(3))
    log = "".join(backend.logs("r1", "infer", "sam2", 1))
    assert "infer sam2 shard 1 of 3 starts" in log
    assert backend.runs() == ["r1"]


def test_bad_input_fails_the_shard_at_once_with_its_reason(env) -> None:
    cfg, stage = env
    specs = _specs(
        cfg, stage, StageRequest("infer", models=("flowprop",), shards=2, retries=3, options=(("bad_shard", "1"),))
    )
    final = LocalBackend(cfg, workers=2).submit(specs, wait=True)
    job = final.jobs[0]
    assert job.done == {0}
    assert job.failed == {1: "exit 2: stseg: error: shard 1: video v1 has no first-frame annotation"}
    state = json.loads((Path(cfg.state_dir) / "runs/r1/stseg-r1-infer-flowprop/1.json").read_text())
    assert state["attempts"] == 1  # exit code 2 is never retried


def test_second_submit_is_refused_unless_resumed(env) -> None:
    cfg, stage = env
    backend = LocalBackend(cfg, workers=2)
    specs = _specs(cfg, stage, StageRequest("infer", models=("flowprop",), shards=2))
    backend.submit(specs, wait=True)
    with pytest.raises(BadInputError, match=r"run r1 already has stseg-r1-infer-flowprop; pass --resume"):
        backend.submit(specs, wait=True)
    assert backend.submit(specs, wait=True, resume=True).succeeded
    assert len(_markers(cfg)) == 2  # resuming a finished job starts nothing


def test_same_run_id_in_another_store_is_refused(env, tmp_path: Path) -> None:
    cfg, stage = env
    backend = LocalBackend(cfg, workers=2)
    backend.submit(_specs(cfg, stage, StageRequest("infer", models=("flowprop",))), wait=True)
    (tmp_path / "other").mkdir()
    other = replace(cfg, store=str(tmp_path / "other"))
    with pytest.raises(BadInputError, match=rf"^run r1 already belongs to {tmp_path}/store/runs/r1 \(local state "):
        LocalBackend(other, workers=2).submit(
            _specs(other, stage, StageRequest("infer", models=("tmo",))), wait=True, resume=True
        )
    assert not (tmp_path / "other" / "runs").exists()


def test_killed_worker_then_resume_finishes_without_double_markers(env) -> None:
    cfg, stage = env
    backend = LocalBackend(cfg, workers=2)
    specs = _specs(
        cfg, stage, StageRequest("infer", models=("flowprop",), shards=4, retries=0, options=(("slow_2", "30"),))
    )
    backend.submit(specs, wait=False)  # detached supervisor
    pid_file = Path(cfg.state_dir) / "runs/r1/stseg-r1-infer-flowprop/2.pid"
    deadline = time.time() + 20
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    # A fresh backend object (a restarted CLI) sees the live run from disk alone.
    seen = LocalBackend(cfg).status("r1").jobs[0]
    assert 2 in seen.running
    os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
    while LocalBackend(cfg).status("r1").jobs[0].running or (Path(cfg.state_dir) / "runs/r1/supervisor.pid").exists():
        assert time.time() < deadline, "the detached supervisor did not finish"
        time.sleep(0.05)
    job = LocalBackend(cfg).status("r1").jobs[0]
    assert job.done == {0, 1, 3} and job.failed == {2: "killed by signal 9"}
    shard2 = Path(cfg.store) / "runs/r1/pred/flowprop/v2"
    assert not (shard2.parent / "_done/2.json").exists()
    fast = [replace(s, env=tuple(p for p in s.env if p[0] != "STSEG_SLOW_2")) for s in specs]
    final = LocalBackend(cfg, workers=2).submit(fast, wait=True, resume=True)
    assert final.succeeded
    assert sorted(_markers(cfg)) == [f"infer/flowprop/{k}" for k in range(4)]  # each shard marked done once
    assert sorted(p.name for p in shard2.iterdir()) == ["00000.png", "00001.png", "00002.png"]


def test_shards_orphaned_by_a_dead_supervisor_block_a_resume_until_cancelled(env) -> None:
    cfg, stage = env
    backend = LocalBackend(cfg, workers=1)
    specs = _specs(cfg, stage, StageRequest("infer", models=("flowprop",), shards=2, options=(("slow_0", "60"),)))
    backend.submit(specs, wait=False)
    state = Path(cfg.state_dir) / "runs/r1"
    deadline = time.time() + 20
    while not (state / "stseg-r1-infer-flowprop/0.pid").exists():
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(json.loads((state / "supervisor.pid").read_text())["pid"], signal.SIGKILL)
    while (
        (sup := json.loads((state / "supervisor.pid").read_text())["pid"])
        and Path(f"/proc/{sup}/status").exists()
        and "zombie" not in Path(f"/proc/{sup}/status").read_text()
    ):
        assert time.time() < deadline
        time.sleep(0.05)
    status = LocalBackend(cfg).status("r1")
    assert status.jobs[0].running == {0}  # the orphan still works, and a fresh CLI sees it
    assert status.note == (
        "orphaned: its supervisor is gone while 1 shard process(es) still run; wait for them or "
        "`stseg cancel r1`, then resume: stseg resume r1"
    )
    with pytest.raises(BackendError, match=r"run r1 still has shard processes without a supervisor \(pids \d+\)"):
        backend.submit(specs, resume=True)
    backend.cancel("r1")
    status = LocalBackend(cfg).status("r1")
    assert status.jobs[0].failed == {0: "cancelled"} and status.note == "cancelled; resume: stseg resume r1"


def test_a_supervisor_that_died_alone_is_shown_orphaned_and_stseg_resume_finishes_the_run(env, monkeypatch) -> None:
    cfg, stage = env
    specs = _specs(cfg, stage, StageRequest("infer", models=("flowprop",), shards=2))
    # shard 1 is slow only in the detached supervisor's environment (it cannot finish before it is killed, however
    # loaded the machine); the resume below runs in this process without it
    monkeypatch.setenv("STSEG_SLOW_1", "60")
    LocalBackend(cfg, workers=1).submit(specs, wait=False)
    monkeypatch.delenv("STSEG_SLOW_1")
    state = Path(cfg.state_dir) / "runs/r1"
    deadline = time.time() + 20
    while not (state / "stseg-r1-infer-flowprop/1.pid").exists():
        assert time.time() < deadline
        time.sleep(0.05)
    for pid_file in (state / "supervisor.pid", state / "stseg-r1-infer-flowprop/1.pid"):  # kill -9 of both
        os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
    # SIGKILL is delivered asynchronously: wait until both processes are seen gone (the note says why it stopped)
    while (status := LocalBackend(cfg).status("r1")).jobs[0].running or not status.note:
        assert time.time() < deadline
        time.sleep(0.05)
    assert status.note == (
        f"orphaned: its supervisor died before the run finished (see {state}/supervisor.log); resume: stseg resume r1"
    )
    final = LocalBackend(cfg, workers=1).resume("r1", wait=True)
    assert final.succeeded and final.note == ""
    assert sorted(_markers(cfg)) == ["infer/flowprop/0", "infer/flowprop/1"]


def test_cancel_sends_sigterm_then_sigkill_after_the_grace_period(env, monkeypatch) -> None:
    cfg, _ = env
    stubborn = Path(cfg.store).parent / "stubborn.py"  # ignores SIGTERM, like a process stuck in a syscall
    stubborn.write_text(
        "import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(os.path.join(os.environ['STSEG_SCRATCH'], 'frame.jpg'), 'w').close()\n"
        "print('up', flush=True)\ntime.sleep(60)\n"
    )
    specs = _specs(cfg, stubborn, StageRequest("infer", models=("flowprop",), shards=1))
    backend = LocalBackend(cfg, workers=1)
    backend.submit(specs, wait=False)
    log = Path(cfg.state_dir) / "runs/r1/stseg-r1-infer-flowprop/0.log"
    deadline = time.time() + 20
    while "up" not in (log.read_text() if log.exists() else ""):
        assert time.time() < deadline
        time.sleep(0.05)
    monkeypatch.setenv("STSEG_LOCAL_GRACE_S", "1")
    start = time.monotonic()
    backend.cancel("r1")
    assert 1.0 <= time.monotonic() - start < 10  # waited the grace period, then SIGKILL
    assert backend.status("r1").jobs[0].failed == {0: "cancelled"}
    assert not (log.parent / "0.scratch").exists()  # its scratch is gone even though it never cleaned up


def test_pipeline_stage_starts_only_after_its_inputs(env) -> None:
    cfg, stage = env
    specs = [
        replace(s, command=("python", str(stage)))
        for s in pipeline_specs(
            cfg, "r1", StageRequest("infer", models=("flowprop", "tmo"), shards=2), default_gpus=False
        )
    ]
    specs = [s for s in specs if s.stage != "eval"]  # the stand-in writes no eval outputs
    assert LocalBackend(cfg, workers=2).submit(specs, wait=True).succeeded
    lines = (Path(cfg.store) / "runs/r1/markers.log").read_text().splitlines()
    times = {ln.split()[0]: float(ln.split()[1]) for ln in lines}
    fuse_log = "".join(LocalBackend(cfg).logs("r1", "fuse", "", 0))
    assert "fuse  shard 0 of 2 starts" in fuse_log  # one fuse index per plan shard
    assert min(times["fuse//0"], times["fuse//1"]) > max(t for name, t in times.items() if name.startswith("infer/"))


def test_waiting_on_markers_nobody_writes_fails_at_once(env) -> None:
    cfg, stage = env
    specs = [
        replace(s, command=("python", str(stage)))
        for s in pipeline_specs(cfg, "r1", StageRequest("infer", models=("flowprop",), shards=1), default_gpus=False)
    ]
    fuse = [s for s in specs if s.stage == "fuse"]
    final = LocalBackend(cfg).submit(fuse, wait=True)
    reason = final.jobs[0].failed[0]
    assert reason.startswith("needs file://") and reason.endswith(
        "pred/flowprop/_done/0.json, which no job of this run produces"
    )


def test_gpu_request_is_refused_before_anything_starts(env) -> None:
    cfg, stage = env
    specs = _specs(cfg, stage, StageRequest("infer", models=("sam2",), shards=1, gpus=1))
    with pytest.raises(BadInputError) as err:
        LocalBackend(cfg).submit(specs, wait=True)
    assert str(err.value) == (
        "stseg-r1-infer-sam2: the local backend has no GPUs (asked for 1); pass --gpus 0 or use --backend kubernetes"
    )
    assert not (Path(cfg.state_dir) / "runs/r1").exists()


def test_cancel_kills_the_process_groups(env) -> None:
    cfg, stage = env
    backend = LocalBackend(cfg, workers=2)
    specs = _specs(
        cfg, stage, StageRequest("infer", models=("flowprop",), shards=2, options=(("slow_0", "60"), ("slow_1", "60")))
    )
    backend.submit(specs, wait=False)
    deadline = time.time() + 20
    while len(backend.status("r1").jobs[0].running) < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    with pytest.raises(BackendError, match=r"run r1 is still running \(supervisor pid \d+\); wait, or `stseg cancel"):
        backend.submit(specs, resume=True)
    pids = [
        json.loads((Path(cfg.state_dir) / f"runs/r1/stseg-r1-infer-flowprop/{k}.pid").read_text())["pid"]
        for k in range(2)
    ]
    assert backend.cancel("r1") == 1
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    job = backend.status("r1").jobs[0]
    assert not job.running and job.failed == {0: "cancelled", 1: "cancelled"}


def test_unknown_backend_lists_the_known_ones(env) -> None:
    cfg, _ = env
    with pytest.raises(BadInputError, match=r"unknown backend 'slurm' \(known: kubernetes, local\)"):
        get_backend("slurm", cfg)


# ---- through the `stseg` CLI, with the real stages --------------------------------------------------------------
@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in [v for v in os.environ if v.startswith("STSEG_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("STSEG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "store").mkdir()
    return tmp_path


def _stseg(*args: str):
    from click.testing import CliRunner

    from stseg_cli.main import cli

    return CliRunner().invoke(cli, list(args))


def test_real_pipeline_through_the_cli(cli_env: Path) -> None:
    from stseg_core.data.synth import SynthConfig, generate_split

    synth = SynthConfig(seed=1, height=64, width=96, min_frames=4, max_frames=6, max_objects=2, videos=4)
    videos = generate_split(cli_env / "data", synth, "valid")  # also writes valid_gt/, the ground truth
    where = ["--store", str(cli_env / "store"), "--data-root", str(cli_env / "data/valid"), "--run", "real"]
    result = _stseg("submit", "pipeline", "--models", "flowprop", "--shards", "2", "--workers", "2", *where)
    assert result.exit_code == 0, result.output
    rows = [line.split()[:4] for line in result.output.splitlines()]
    for row in (
        ["stseg-real-infer-flowprop", "infer", "flowprop", "2/2"],
        ["stseg-real-fuse", "fuse", "-", "2/2"],
        ["stseg-real-eval-flowprop", "eval", "flowprop", "1/1"],
        ["stseg-real-eval", "eval", "-", "1/1"],
    ):
        assert row in rows
    run = open_store(cli_env / "store/runs/real")
    plan = run.read_json("plan.json")
    assert sorted(v for names in plan["videos"].values() for v in names) == sorted(videos)
    for video, meta in videos.items():  # every frame of every video has a prediction
        assert len([k for k in run.list(f"pred/flowprop/{video}") if k.endswith(".png")]) == meta["frames"]
    assert run.list("pred/flowprop/_done") == ["pred/flowprop/_done/0.json", "pred/flowprop/_done/1.json"]
    assert run.list("fused/_done") == ["fused/_done/0.json", "fused/_done/1.json"] and run.exists("recommend.json")
    single = run.read_json("eval/flowprop/results.json")["global"]["J&F-Mean"]
    fused = run.read_json("eval/pgmr/results.json")["global"]["J&F-Mean"]
    assert single > 0.5 and fused == single  # one model: the fusion is that model's masks
    status = _stseg("status", "real")
    assert "stseg-real-fuse" in status.output and "    shard " not in status.output  # no failed shard listed
    assert "stseg-fuse: index 0/2: 2 videos fused from 1 models" in _stseg("logs", "real", "--stage", "fuse").output
    log = _stseg("logs", "real", "--stage", "eval", "--model", "flowprop").output
    assert "stseg-evaluate:" in log and "J&F" in log


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["submit", "infer", "--models", "sam3"],
            "unknown model 'sam3' (known: cutie, flowprop, flowprop-farneback, "
            "flowprop-plain, livos, oneshot, sam2, stm, tmo, xmem)",
        ),
        (["submit", "infer", "--models", "flowprop", "--shards", "0"], "--shards must be at least 1 (got 0)"),
        (
            ["submit", "infer", "--models", "flowprop", "--store", "/nonexistent/store"],
            "store /nonexistent/store does not exist (create the folder, or fix --store / `store:` in stseg.yaml)",
        ),
        (
            ["submit", "infer", "--models", "sam2", "--gpus", "1"],
            "stseg-r-infer-sam2: the local backend has no GPUs (asked for 1); "
            "pass --gpus 0 or use --backend kubernetes",
        ),
        (
            ["runs", "--backend", "kubernetes", "--kube-context", "prod"],
            "kubeconfig context 'prod' asked for, but there is no kubeconfig at {tmp}/no-kubeconfig",
        ),
        (
            ["submit", "infer", "--models", "flowprop", "--backend", "kubernetes", "--node-pool", "azure"],
            "node_pool 'azure' is not a preset (known: none, gke, eks, karpenter, gfd)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(cli_env: Path, args: list[str], line: str) -> None:
    result = _stseg(
        *args, *(["--run", "r", "--store", "store"] if args[0] == "submit" and "--store" not in args else [])
    )
    assert result.exit_code == 2, result.output
    assert result.stderr == f"stseg: error: {line.format(tmp=cli_env)}\n"
    assert not (cli_env / "state/runs/r").exists()


def test_config_precedence_is_flags_then_env_then_file(tmp_path: Path) -> None:
    from stseg_cli.config import load_config

    path = tmp_path / "stseg.yaml"
    path.write_text("store: s3://file/store\nnamespace: from-file\nimage-tag: '9'\nworkers: 3\n")
    cfg = load_config(
        path, env={"STSEG_NAMESPACE": "from-env", "STSEG_IMAGE_TAG": "8"}, flags={"image_tag": "7", "store": None}
    )
    assert (cfg.store, cfg.namespace, cfg.image_tag, cfg.workers, cfg.backend) == (
        "s3://file/store",
        "from-env",
        "7",
        3,
        "local",
    )
    path.write_text("namespcae: x\n")
    with pytest.raises(BadInputError, match=r"stseg.yaml: unknown setting 'namespcae' \(known: backend, store"):
        load_config(path, env={})


def test_two_concurrent_submits_of_one_run_id_start_it_once(env) -> None:
    import threading

    cfg, stage = env
    specs = _specs(cfg, stage, StageRequest("infer", models=("flowprop",), shards=1, options=(("slow_0", "1"),)))
    barrier, outcomes = threading.Barrier(2), []

    def submit() -> None:
        barrier.wait()
        try:
            outcomes.append(LocalBackend(cfg, workers=1).submit(specs, wait=False))
        except BackendError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=str)[0] is None  # one started the run …
    assert re.match(r"run r1 is still running \(supervisor pid \d+\)", str(sorted(outcomes, key=str)[1]))  # … once
    while LocalBackend(cfg).status("r1").jobs[0].done != {0}:
        time.sleep(0.05)
    assert _markers(cfg) == ["infer/flowprop/0"]
    assert not list((Path(cfg.state_dir) / "runs/r1").glob(".*.tmp"))
