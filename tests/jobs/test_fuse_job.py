"""`python -m stseg_jobs.fuse`: environment, refusal while shards run (exit 3, one line), a real fuse with Table 2."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stseg_core.store import open_store
from stseg_jobs.fuse import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "synthetic_predictors.py"
SEED = 5


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from stseg_core.data.synth import SynthConfig, generate_dataset

    spec = importlib.util.spec_from_file_location("synthetic_predictors_job", FIXTURES)
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    root = tmp_path_factory.mktemp("fusejob")
    generate_dataset(
        str(root / "data"),
        SynthConfig(
            seed=SEED, height=64, width=96, min_frames=8, max_frames=10, videos=2, min_objects=2, max_objects=3
        ),
        splits=("test",),
    )
    models = fixtures.make_run(root / "data", "test", root / "run", SEED)
    return root, models


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
