"""`stseg infer` on this machine: plans when needed, runs one or all shards, skips done ones, one-line errors."""

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_core.data.mose import MoseSplit
from stseg_core.data.synth import SynthConfig, generate_split
from stseg_core.models import registry
from stseg_core.models.base import FrameResult, VideoInput, VOSModel
from stseg_core.models.options import parse_options
from stseg_core.predictions import read_video_predictions
from stseg_core.runlayout import verify_shard
from stseg_core.store import open_store

CFG = SynthConfig(seed=5, height=64, width=96, videos=3, min_frames=5, max_frames=6, min_objects=1, max_objects=2)


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["infer", *args], catch_exceptions=False)


def test_infer_plans_runs_a_shard_then_the_rest(tmp_path):
    generate_split(tmp_path / "data", CFG, "valid")
    data, run = str(tmp_path / "data" / "valid"), str(tmp_path / "runs" / "r1")
    res = _invoke("--model", "flowprop", "--data", data, "--run", run, "--shard", "1/2", "--set", "motion=dense")
    assert res.exit_code == 0, res.output
    plan = json.loads((tmp_path / "runs/r1/plan.json").read_text())
    assert plan["num_shards"] == 2 and sorted(plan["videos"]["0"] + plan["videos"]["1"]) == MoseSplit(data).videos()
    frames = sum(MoseSplit(data).video(v).num_frames for v in plan["videos"]["1"])
    assert res.output.startswith(f"flowprop shard 1/2: {len(plan['videos']['1'])} videos, {frames} frames in ")
    store = open_store(run)
    assert store.exists("pred/flowprop/_done/1.json") and not store.exists("pred/flowprop/_done/0.json")
    assert store.read_json("pred/flowprop/_done/1.json")["meta"]["overrides"] == {"motion": "dense"}

    res = _invoke("--model", "flowprop", "--data", data, "--run", run, "--shard", "all/2")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("flowprop shard 0/2: ") and lines[1] == "flowprop shard 1/2: already done, skipped"
    assert verify_shard(store, "pred/flowprop", 0) == [] and verify_shard(store, "pred/flowprop", 1) == []
    for v in MoseSplit(data).videos():
        assert store.exists(f"pred/flowprop/{v}/scores.json")


def test_infer_errors_are_one_line(tmp_path):
    generate_split(tmp_path / "data", CFG, "valid")
    data, run = str(tmp_path / "data" / "valid"), str(tmp_path / "run")
    cases = [
        (
            ["--model", "sam3"],
            "stseg: error: unknown model 'sam3' (known: cutie, flowprop, flowprop-farneback, "
            "flowprop-plain, livos, oneshot, sam2, stm, tmo, xmem)",
        ),
        (["--model", "flowprop", "--shard", "2/2"], "stseg: error: --shard '2/2': use K/N with 0 ≤ K < N, or all/N"),
        (
            ["--model", "flowprop", "--set", "flow"],
            "stseg: error: --set 'flow': use KEY=VALUE (e.g. --set flow=farneback)",
        ),
        (
            ["--model", "flowprop", "--set", "flow=raft"],
            "stseg: error: flowprop option flow='raft' must be 'dis' or 'farneback'",
        ),
    ]
    for args, message in cases:
        res = CliRunner().invoke(cli, ["infer", "--data", data, "--run", run, *args])
        assert res.exit_code == 2, res.output
        assert res.output.strip() == message
    assert not open_store(run).exists("pred/flowprop/_done/0.json")


# ---- a model added the documented way: one registry entry + its module (here, this test module) -------------
@dataclass(frozen=True)
class StillOptions:
    """The test model's options: the confidence it reports for every object on every frame."""

    score: float = 0.5


class Still(VOSModel):
    """Keeps every object where frame 0 has it (the simplest possible tracker)."""

    name = "test-still"
    confidence_definition = "test-still: the `score` option"

    def __init__(self, options: StillOptions) -> None:
        self.options = options

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        yield self.first_result(video)
        for stem in video.stems[1:]:
            yield FrameResult(
                stem,
                video.first_labels.copy(),
                {i: self.options.score for i in video.object_ids},
                {i: True for i in video.object_ids},
            )


def build_still(**overrides: object) -> Still:
    return Still(parse_options(StillOptions, overrides, model="test-still"))


@pytest.fixture
def still_model():
    registry.register(
        registry.ModelInfo(
            "test-still",
            f"{__name__}:build_still",
            f"{__name__}:StillOptions",
            "test-only: frame 0's labels on every frame",
        )
    )
    yield "test-still"
    registry.unregister("test-still")


def test_a_model_registered_from_outside_runs_through_stseg_infer(tmp_path, still_model):
    generate_split(tmp_path / "data", CFG, "valid")
    data, run = str(tmp_path / "data" / "valid"), str(tmp_path / "runs" / "r1")
    listed = {line.split()[0]: line.split()[1:6] for line in CliRunner().invoke(cli, ["models"]).output.splitlines()}
    assert listed[still_model] == ["fusion", "none", "-", "-", "-"]  # `stseg models` lists it from its entry
    assert listed["sam2"] == ["sam2", "wanted", "needed", "yes", "yes"]
    res = CliRunner().invoke(
        cli, ["infer", "--model", still_model, "--data", data, "--run", run, "--set", "score=nope"]
    )
    assert res.exit_code == 2 and res.output.strip() == "stseg: error: test-still option score='nope': not a number"
    assert not (tmp_path / "runs/r1/plan.json").exists()  # refused before the run was touched
    res = _invoke("--model", still_model, "--data", data, "--run", run, "--set", "score=0.25")
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"test-still shard 0/1: {len(MoseSplit(data).videos())} videos, ")
    store = open_store(run)
    assert verify_shard(store, "pred/test-still", 0) == []
    for v in MoseSplit(data).videos():
        pred = read_video_predictions(store, still_model, v)
        first = MoseSplit(data).first_annotation(v)
        assert all((pred.labels(s) == first).all() for s in pred.stems)
        assert {s: set(scores.values()) for s, scores in pred.scores.items() if s != pred.stems[0]} == {
            s: {0.25} for s in pred.stems[1:]
        }
