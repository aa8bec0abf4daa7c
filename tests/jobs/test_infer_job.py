"""The infer stage end to end: plan → pred/<model>/… + done marker, on a file store and on the local S3 server."""

import json
import subprocess
import sys
import time
from typing import ClassVar

import numpy as np
import pytest

from stseg_core.data.labels import read_label_png
from stseg_core.data.mose import MoseSplit
from stseg_core.data.synth import SynthConfig, generate_split
from stseg_core.errors import StsegError
from stseg_core.models import registry
from stseg_core.models.base import FrameResult, VOSModel
from stseg_core.plan import plan_shards, video_cost
from stseg_core.predictions import read_video_predictions
from stseg_core.runlayout import verify_shard
from stseg_core.stages.infer import run_shard
from stseg_core.store import open_store
from stseg_core.telemetry import JobMetrics
from stseg_jobs.infer import main

CFG = SynthConfig(seed=3, height=64, width=96, videos=3, min_frames=5, max_frames=7, min_objects=1, max_objects=2)


def _make_run(data_store, run_store, shards: int = 2) -> dict[str, list[str]]:
    """A 3-video synthetic valid split in `data_store` and its plan in `run_store`; returns {shard: videos}."""
    generate_split(data_store, CFG, "valid")
    split = MoseSplit(data_store.child("valid"))
    costs = {v: video_cost(split.video(v).num_frames, len(split.video(v).object_ids)) for v in split.videos()}
    plan = plan_shards(costs, shards)
    plan.save(run_store)
    return {str(i): list(plan.videos(i)) for i in range(shards)}


def _env(data_root: str, run_root: str, **extra: str) -> dict[str, str]:
    return {
        "STSEG_STAGE": "infer",
        "STSEG_DATA_ROOT": data_root,
        "STSEG_RUN_ROOT": run_root,
        "STSEG_MODEL": "flowprop",
        "STSEG_NUM_SHARDS": "2",
        "JOB_COMPLETION_INDEX": "0",
        **extra,
    }


@pytest.fixture
def file_run(tmp_path):
    data, run = open_store(tmp_path / "data"), open_store(tmp_path / "runs" / "r1")
    shards = _make_run(data, run)
    return data, run, shards, _env(data.uri("valid"), run.root)


def _check_outputs(data, run, videos: list[str]) -> None:
    split = MoseSplit(data.child("valid"))
    for v in videos:
        info = split.video(v)
        pred = read_video_predictions(run, "flowprop", v)
        assert pred.stems == info.frames and pred.object_ids == info.object_ids
        first = read_label_png(run.read_bytes(f"pred/flowprop/{v}/{info.frames[0]}.png"))
        assert np.array_equal(first, split.first_annotation(v))
        probs = list(pred.iter_probs())
        assert len(probs) == info.num_frames and probs[0][1].shape == (len(info.object_ids), 64, 96)


def test_job_writes_predictions_and_marker_then_skips(file_run, capsys):
    data, run, shards, env = file_run
    assert main(env) == 0
    out = capsys.readouterr().out.strip()
    n_frames = sum(MoseSplit(data.child("valid")).video(v).num_frames for v in shards["0"])
    assert out.startswith(f"stseg-infer: flowprop shard 0/2: {len(shards['0'])} videos, {n_frames} frames in ")
    assert out.endswith(f" files under {run.root}")
    _check_outputs(data, run, shards["0"])
    marker = json.loads(run.read_bytes("pred/flowprop/_done/0.json"))
    written = [k for k in run.list("pred/flowprop") if "/_done/" not in k]
    assert sorted(marker["files"]) == written  # every output of the shard, nothing of shard 1
    assert len(written) == sum(MoseSplit(data.child("valid")).video(v).num_frames + 2 for v in shards["0"])
    assert verify_shard(run, "pred/flowprop", 0) == []
    assert not run.exists("pred/flowprop/_done/1.json")
    # A done shard is a no-op: a deleted output is not rewritten.
    victim = written[0]
    run.delete(victim)
    assert main(env) == 0
    assert "already done, skipped" in capsys.readouterr().out
    assert not run.exists(victim)


def test_failure_names_the_video_and_leaves_no_marker(file_run, capsys):
    data, run, shards, env = file_run
    bad = shards["0"][-1]
    data.write_bytes(f"valid/JPEGImages/{bad}/00002.jpg", b"not a jpeg")
    assert main(env) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"stseg-infer: error: flowprop video {bad}: ")
    assert "00002.jpg" in err
    assert not run.exists("pred/flowprop/_done/0.json")


def test_missing_first_annotation_fails_the_shard(file_run, capsys):
    data, run, shards, env = file_run
    bad = shards["0"][0]
    data.delete(f"valid/Annotations/{bad}/00000.png")
    assert main(env) == 2
    err = capsys.readouterr().err
    assert f"flowprop video {bad}: " in err and "missing first-frame annotation" in err
    assert not run.exists("pred/flowprop/_done/0.json")


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"STSEG_MODEL": ""}, 2, "STSEG_MODEL is not set (a registered model name)"),
        ({"JOB_COMPLETION_INDEX": "x"}, 2, "JOB_COMPLETION_INDEX='x': not an integer"),
        ({"JOB_COMPLETION_INDEX": "2"}, 2, "JOB_COMPLETION_INDEX=2: must be below STSEG_NUM_SHARDS=2"),
        ({"STSEG_NUM_SHARDS": "3"}, 2, "plan has 2 shards, the job was started with 3"),
        (
            {"STSEG_MODEL": "sam3"},
            2,
            "unknown model 'sam3' (known: cutie, flowprop, flowprop-farneback, "
            "flowprop-plain, livos, oneshot, sam2, stm, tmo, xmem)",
        ),
        ({"STSEG_MODEL_OPTIONS": "[1]"}, 2, "STSEG_MODEL_OPTIONS='[1]': must be a JSON object"),
        ({"STSEG_MODEL_OPTIONS": '{"flow": "raft"}'}, 2, "flowprop option flow='raft' must be 'dis' or 'farneback'"),
        ({"STSEG_CHECKPOINT": "file:///w.pt"}, 2, "flowprop has no option(s) checkpoint"),
        ({"STSEG_STAGE": "fuse"}, 2, "STSEG_STAGE='fuse': this entrypoint runs the infer stage"),
    ],
)
def test_bad_environment_is_one_line(file_run, capsys, change, code, message):
    _, run, _, env = file_run
    assert main({**env, **change}) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not run.exists("pred/flowprop/_done/0.json")


def test_missing_plan_is_a_missing_artifact(tmp_path, capsys):
    data = open_store(tmp_path / "data")
    generate_split(data, CFG, "valid")
    assert main(_env(data.uri("valid"), str(tmp_path / "run"))) == 3
    assert "plan.json: not found" in capsys.readouterr().err


class _Probe(VOSModel):
    """Checks that the next video is being prefetched while this one runs; fails on request."""

    name = "probe"
    confidence_definition = "constant 0.5"
    seen: ClassVar[list] = []

    def __init__(self, scratch, last, fail_on=None):
        self.scratch, self.last, self.fail_on = scratch, last, fail_on

    def segment(self, video):
        deadline = time.time() + 10
        while (
            video.name != self.last and len(list(self.scratch.glob("stseg-infer-*/*"))) < 2 and time.time() < deadline
        ):
            time.sleep(0.01)
        _Probe.seen.append((video.name, len(list(self.scratch.glob("stseg-infer-*/*")))))
        for t, (stem, _rgb) in enumerate(zip(video.stems, video.frames(), strict=True)):
            if video.name == self.fail_on and t == 2:
                raise RuntimeError("boom")
            yield FrameResult(
                stem, video.first_labels, {i: 0.5 for i in video.object_ids}, {i: True for i in video.object_ids}
            )


def build_probe(scratch, last, fail_on=None):
    return _Probe(scratch, last, fail_on)


def test_the_jobs_deadline_reaches_its_metrics_through_the_config(file_run, monkeypatch):
    """STSEG_DEADLINE_S is parsed by the job into the stage's config, which gives it to the job's metrics (the
    library never reads the environment for it); a value that is not a number is refused in one line."""
    from stseg_core.stages import common

    made: list[JobMetrics] = []

    class Recorded(JobMetrics):
        def __post_init__(self) -> None:
            super().__post_init__()
            made.append(self)

    monkeypatch.setattr(common, "JobMetrics", Recorded)
    _data, _run, _shards, env = file_run
    assert main({**env, "STSEG_DEADLINE_S": "600"}) == 0
    assert [m.value("stseg_job_deadline_seconds") for m in made] == [600]
    with pytest.raises(StsegError, match=r"^STSEG_DEADLINE_S='soon': not a number$"):
        from stseg_jobs.infer import run

        run({**env, "STSEG_DEADLINE_S": "soon"})


def test_prefetch_overlaps_and_metrics_count(tmp_path, monkeypatch):
    data, run = open_store(tmp_path / "data"), open_store(tmp_path / "run")
    shards = _make_run(data, run, shards=1)
    monkeypatch.setitem(
        registry._REGISTRY, "probe", registry.ModelInfo("probe", f"{__name__}:build_probe", f"{__name__}:_Probe", "")
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _Probe.seen = []
    metrics = JobMetrics(run="r", stage="infer", model="probe", shard="0")
    outcome = run_shard(
        data_root=data.uri("valid"),
        run_root=run.root,
        model_name="probe",
        shard=0,
        num_shards=1,
        model_overrides={"scratch": scratch, "last": shards["0"][-1]},
        metrics=metrics,
        scratch=scratch,
    )
    videos = shards["0"]
    # While video i runs, video i+1 is already staged next to it (the last one runs alone).
    assert _Probe.seen == [(v, 2) for v in videos[:-1]] + [(videos[-1], 1)]
    frames = sum(MoseSplit(data.child("valid")).video(v).num_frames for v in videos)
    assert metrics.value("stseg_frames_planned") == frames
    assert metrics.value("stseg_frames_processed_total") == frames
    assert metrics.value("stseg_videos_processed_total") == len(videos)
    assert not outcome.skipped and list(scratch.iterdir()) == []  # scratch cleaned up


def test_model_error_mid_video_fails_shard(tmp_path, monkeypatch):
    data, run = open_store(tmp_path / "data"), open_store(tmp_path / "run")
    shards = _make_run(data, run, shards=1)
    monkeypatch.setitem(
        registry._REGISTRY, "probe", registry.ModelInfo("probe", f"{__name__}:build_probe", f"{__name__}:_Probe", "")
    )
    bad = shards["0"][1]
    metrics = JobMetrics(run="r", stage="infer", model="probe", shard="0")
    with pytest.raises(StsegError) as err, metrics:
        run_shard(
            data_root=data.uri("valid"),
            run_root=run.root,
            model_name="probe",
            shard=0,
            num_shards=1,
            model_overrides={"scratch": tmp_path, "last": shards["0"][-1], "fail_on": bad},
            scratch=tmp_path,
            metrics=metrics,
        )
    assert str(err.value) == f"probe video {bad}: RuntimeError: boom"
    assert metrics.value("stseg_failures_total", reason="error") == 1
    assert metrics.value("stseg_videos_processed_total") == 1 and metrics.value("stseg_job_status") == 2
    assert not run.exists("pred/probe/_done/0.json")
    assert run.exists(f"pred/probe/{shards['0'][0]}/scores.json")  # earlier videos stay, to be overwritten


def test_job_on_local_s3(s3_store, tmp_path):
    data, run = s3_store.child("data"), s3_store.child("runs/r1")
    shards = _make_run(data, run)
    env = _env(data.uri("valid"), run.root, JOB_COMPLETION_INDEX="1", STSEG_MODEL_OPTIONS='{"flow": "farneback"}')
    assert main(env) == 0
    _check_outputs(data, run, shards["1"])
    marker = json.loads(run.read_bytes("pred/flowprop/_done/1.json"))
    assert marker["meta"]["overrides"] == {"flow": "farneback"}
    assert verify_shard(run, "pred/flowprop", 1) == []
    assert not run.exists("pred/flowprop/_done/0.json")


def test_module_entrypoint_runs_as_a_process(file_run):
    _, run, _, env = file_run
    proc = subprocess.run(
        [sys.executable, "-m", "stseg_jobs.infer"],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("stseg-infer: flowprop shard 0/2: ")
    assert run.exists("pred/flowprop/_done/0.json")
