"""`python -m stseg_jobs.fuse`: environment, refusal while shards run (exit 3, one line), a real fuse with Table 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stseg_core.store import open_store
from stseg_jobs.fuse import main
from stseg_testing.fusion_bench import make_fusion_bench

SEED = 5


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from stseg_core.data.synth import SynthConfig

    root = tmp_path_factory.mktemp("fusejob")
    cfg = SynthConfig(
        seed=SEED, height=64, width=96, min_frames=8, max_frames=10, videos=2, min_objects=2, max_objects=3
    )
    return root, make_fusion_bench(root, cfg, {"run": "test"}).models


def env_for(root: Path, models, **extra) -> dict[str, str]:
    return {
        "STSEG_STAGE": "fuse",
        "STSEG_RUN_ROOT": str(root / "run"),
        "STSEG_DATA_ROOT": str(root / "data" / "test"),
        "STSEG_MODELS": ",".join(models),
        **extra,
    }


def test_job_fuses_and_scores(tiny_run, capsys):
    root, models = tiny_run
    assert main(env_for(root, models, STSEG_GT_ROOT=str(root / "data" / "test_gt"))) == 0
    out = capsys.readouterr().out.strip()
    table = open_store(root / "run").read_json("eval/table2.json")["table"]
    assert out.startswith(
        f"stseg-fuse: 2 videos fused from {len(models)} models; PGMR J&F "
        f"{table['pgmr']['J&F']:.2f}; wrote fused/, recommend.json, eval/"
    )
    assert open_store(root / "run").read_json("recommend.json")["recommender"] == "none"


def test_job_refuses_while_a_shard_is_missing(tiny_run, tmp_path):
    root, models = tiny_run
    import shutil

    shutil.copytree(root / "run", tmp_path / "run", ignore=shutil.ignore_patterns("fused", "eval", "recommend.json"))
    (tmp_path / "run" / "pred" / models[1] / "_done" / "1.json").unlink()
    os.symlink(root / "data", tmp_path / "data")
    env = {**os.environ, **env_for(tmp_path, models, STSEG_WAIT="0.2")}
    proc = subprocess.run(
        [sys.executable, "-m", "stseg_jobs.fuse"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not every shard is done after waiting 0.2s" in lines[0]
    assert f"{models[1]} shard(s) 1 of 2 not done" in lines[0]
    assert not (tmp_path / "run" / "fused").exists()


def test_job_environment_errors(tiny_run, capsys):
    root, models = tiny_run
    assert main({"STSEG_RUN_ROOT": "x", "STSEG_DATA_ROOT": "y"}) == 2
    assert "STSEG_MODELS is not set" in capsys.readouterr().err
    assert main(env_for(root, models, STSEG_WAIT="-1")) == 2
    assert "STSEG_WAIT='-1': must be ≥ 0 seconds" in capsys.readouterr().err
    assert main(env_for(root, models, STSEG_STAGE="infer")) == 2


@pytest.fixture(scope="module")
def choosy(tmp_path_factory):
    """A valid split with a database (its recommender set to knn+agreement, so per-span choice runs) and a test
    run to fuse."""
    from dataclasses import replace

    from stseg_core.data.synth import SynthConfig
    from stseg_core.fusion.perfdb import save_perfdb

    root = tmp_path_factory.mktemp("fusejob-choosy")
    cfg = SynthConfig(
        seed=SEED, height=64, width=96, min_frames=10, max_frames=12, videos=3, min_objects=2, max_objects=3
    )
    made = make_fusion_bench(root, cfg, {"valid": "valid", "run": "test"}, database=True)
    models, db = made.models, made.db
    assert all(not c.identity for c in db.calibration.values())
    choosy = replace(db, selection={**db.selection, "method": "knn+agreement"})
    return root, models, save_perfdb(open_store(root / "choosy"), choosy, prefix="")


def test_two_job_indexes_with_choose_and_raw_confidences(choosy, tmp_path, capsys):
    """`--option choose=span --option raw-confidences=true` reach the stage; two indexes, the second first; a
    done index is skipped when the Job runs it again."""
    import shutil

    root, models, uri = choosy
    runs = {}
    for case, extra in (("calibrated", {}), ("raw", {"STSEG_RAW_CONFIDENCES": "true"})):
        shutil.copytree(root / "run", tmp_path / case / "run")
        os.symlink(root / "data", tmp_path / case / "data")
        env = env_for(tmp_path / case, models, STSEG_DB=uri, STSEG_CHOOSE="span", STSEG_NUM_SHARDS="2", **extra)
        assert main({**env, "JOB_COMPLETION_INDEX": "1"}) == 0
        assert "index 1/2: " in capsys.readouterr().out
        assert main({**env, "JOB_COMPLETION_INDEX": "0"}) == 0
        assert "; wrote fused/, recommend.json under" in capsys.readouterr().out
        runs[case] = open_store(tmp_path / case / "run")
    entries = runs["raw"].read_json("recommend.json")["videos"]
    assert len(entries) == 3 and all(e["spans"] and e["reason"].startswith("per span") for e in entries.values())
    video = next(iter(entries))
    assert runs["raw"].read_json(f"fused/{video}/scores.json") != runs["calibrated"].read_json(
        f"fused/{video}/scores.json"
    )  # the vote's confidences, and so the kept output's scores, differ
    marker = runs["raw"].read_bytes("fused/_done/1.json")
    assert main({**env, "JOB_COMPLETION_INDEX": "1"}) == 0
    assert "index 1/2: 0 videos fused" in capsys.readouterr().out
    assert runs["raw"].read_bytes("fused/_done/1.json") == marker


def test_job_refuses_an_unknown_choice(tiny_run, capsys):
    root, models = tiny_run
    assert main(env_for(root, models, STSEG_CHOOSE="frame")) == 2
    assert "STSEG_CHOOSE='frame': not a PGMR choice (known: vote, video, span)" in capsys.readouterr().err
