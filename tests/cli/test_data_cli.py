"""`stseg data synth|validate|shard` through click: outputs, files written, exit codes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_core.data.mose import MoseSplit
from stseg_core.plan import ShardPlan
from stseg_core.store import open_store

SYNTH = ["--videos", "2", "--height", "64", "--width", "112", "--frames", "8-10", "--objects", "1-3"]


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_synth_validate_shard(tmp_path):
    out = tmp_path / "ds"
    res = _run("data", "synth", str(out), "--seed", "4", *SYNTH, "--splits", "train,valid", "--occlusion", "1")
    assert res.exit_code == 0, res.output
    assert "train: 2 videos" in res.output and "valid: 2 videos" in res.output and "frames/s" in res.output
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta["splits"]) == {"train", "valid"} and meta["config"]["occlusion"] == 1.0
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "train", "valid", "valid_gt"]

    ok = _run("data", "validate", str(out))
    assert ok.exit_code == 0, ok.output
    assert "ok: no problems found" in ok.output
    assert f"{(out / 'valid_gt').as_uri()}: ground truth, 2 videos, 0 problem(s)" in ok.output

    res = _run("data", "shard", str(out / "train"), "--shards", "2", "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    plan = ShardPlan.load(open_store(tmp_path / "run"))
    split = MoseSplit(out / "train")
    assert sorted(v for s in plan.shards for v in s) == split.videos()
    assert plan.video_costs == {v: split.video(v).num_frames * len(split.video(v).object_ids) for v in split.videos()}
    assert f"wrote {(tmp_path / 'run').as_uri()}/plan.json" in res.output


def test_validate_prints_every_problem_and_exits_2(tmp_path):
    out = tmp_path / "ds"
    assert _run("data", "synth", str(out), *SYNTH, "--splits", "train").exit_code == 0
    videos = MoseSplit(out / "train").videos()
    (out / f"train/JPEGImages/{videos[0]}/00003.jpg").write_bytes(b"broken")
    (out / f"train/Annotations/{videos[1]}/00000.png").unlink()
    res = _run("data", "validate", str(out / "train"))
    assert res.exit_code == 2
    lines = res.output.splitlines()
    u = open_store(out / "train").uri
    assert f"{u(f'JPEGImages/{videos[0]}/00003.jpg')}: unreadable or corrupt image (not a complete JPEG)" in lines
    assert f"{u(f'Annotations/{videos[1]}/00000.png')}: missing first-frame annotation of video {videos[1]!r}" in lines
    assert "2 problem(s) found" in lines
    empty = _run("data", "validate", str(tmp_path / "nothing"))
    assert empty.exit_code == 2 and "no split found" in empty.output


def test_bad_options_are_one_line_errors(tmp_path):
    res = _run("data", "synth", str(tmp_path / "x"), "--frames", "10-5")
    assert (res.exit_code, res.output) == (2, "stseg: error: synth frames 10-5: need 2 ≤ min ≤ max\n")
    res = _run("data", "synth", str(tmp_path / "x"), "--splits", "train,dev")
    assert (res.exit_code, res.output) == (
        2,
        "stseg: error: --splits: unknown split 'dev'; known: train, valid, test\n",
    )
    res = _run("data", "shard", str(tmp_path / "none"), "--shards", "2", "--out", str(tmp_path / "run"))
    assert res.exit_code == 2 and res.output.startswith("stseg: error: ") and "no videos to shard" in res.output
    for cmd in ("synth", "validate", "shard"):
        helped = _run("data", cmd, "--help")
        assert helped.exit_code == 0 and "Usage: cli data" in helped.output
