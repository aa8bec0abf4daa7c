"""`python -m stseg_jobs.evaluate`: Job environment in, eval/<name>/ files and the J&F metric out."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from stseg_core.data.labels import encode_label_png
from stseg_core.store import open_store


def _layout(tmp_path):
    lab = np.zeros((32, 40), np.uint8)
    lab[5:20, 5:25] = 1
    shifted = np.roll(lab, 2, axis=1)
    for t in range(4):
        gt = tmp_path / "split" / "Annotations" / "v"
        pred = tmp_path / "run" / "pred" / "flowprop" / "v"
        for folder, img in ((gt, lab), (pred, shifted if t == 1 else lab)):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{t:05d}.png").write_bytes(encode_label_png(img))
    return {
        "STSEG_DATA_ROOT": str(tmp_path / "split"),
        "STSEG_RUN_ROOT": (tmp_path / "run").as_uri(),
        "STSEG_MODEL": "flowprop",
        "STSEG_WORKERS": "1",
    }


def test_evaluate_job_writes_eval_and_reports_jf(tmp_path):
    from stseg_jobs.evaluate import run

    env = _layout(tmp_path)
    line = run(env)
    out = open_store(tmp_path / "run").child("eval/flowprop")
    assert sorted(out.list()) == ["global_results-split.csv", "per-sequence_results-split.csv", "results.json"]
    js = out.read_json("results.json")
    j = js["videos"]["v"]["objects"]["1"]["per_frame"]["J"]
    assert j == [270 / 330, 1.0]  # frame 1: a 15×20 box shifted by 2 columns
    assert line.startswith(f"flowprop: J&F {100 * js['global']['J&F-Mean']:.2f} over 1 videos, 2 frames")


def test_evaluate_job_exit_codes(tmp_path):
    def job(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stseg_jobs.evaluate"],
            env={"PATH": "/usr/bin:/bin", **_layout(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    proc = job(STSEG_METRIC="davis2")
    assert proc.returncode == 2 and "STSEG_METRIC='davis2'" in proc.stderr
    proc = job(STSEG_PRED_PREFIX="pred/none")
    assert proc.returncode == 3 and "no predictions for video(s) v" in proc.stderr


def test_evaluate_job_refuses_a_shard_whose_file_changed(tmp_path):
    import pytest

    from stseg_core.errors import MissingArtifactError
    from stseg_core.runlayout import commit_shard, done_shards
    from stseg_jobs.evaluate import run

    env = _layout(tmp_path)
    run_store = open_store(tmp_path / "run")
    commit_shard(run_store, "pred/flowprop", 0, run_store.list("pred/flowprop"))
    run_store.delete("pred/flowprop/v/00002.png")
    with pytest.raises(
        MissingArtifactError,
        match=r"pred/flowprop/v/00002\.png: missing: pred/flowprop shard\(s\) 0 "
        "marked not done",
    ):
        run(env)
    assert done_shards(run_store, "pred/flowprop") == [] and not run_store.exists("eval/flowprop/results.json")


def test_default_workers_follow_the_pods_cpu_quota_not_the_nodes_cores(tmp_path, monkeypatch):
    """A 2-CPU pod on a 96-core node scores with 2 processes: cgroup v2 `cpu.max` caps the affinity set."""
    from stseg_jobs.evaluate import usable_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(96)))
    cpu_max = tmp_path / "cpu.max"
    for text, want in (("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", 96)):
        cpu_max.write_text(text)
        assert usable_cpus(cpu_max) == want, text
    assert usable_cpus(tmp_path / "absent") == 96  # no cgroup v2: the affinity set
