"""`python -m stseg_jobs.finetune`: env errors exit 2 in one line; a job killed after a checkpoint resumes."""

import io
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from stseg_core.data.synth import SynthConfig, generate_dataset
from stseg_core.models.sam2 import save_random_checkpoint
from stseg_core.store import open_store
from stseg_jobs.finetune import main

CFG = SynthConfig(seed=9, height=48, width=64, videos=3, min_frames=4, max_frames=4, min_objects=1, max_objects=2)


def _env(tmp_path, **extra):
    # one intra-op thread per process: on a shared 2-core machine spinning OpenMP workers cost more than they give
    return {
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "STSEG_STAGE": "finetune",
        "STSEG_RUN_ROOT": str(tmp_path / "store/runs/j1"),
        "STSEG_DATA_ROOT": str(tmp_path / "ds/train"),
        "STSEG_MODEL": "tmo",
        "STSEG_INIT": "random",
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({"STSEG_MODEL": "cutie"}, "model 'cutie' cannot be finetuned (finetunable: sam2, tmo)"),
        ({"STSEG_INIT": ""}, "tmo finetune: no init given"),
        ({"STSEG_RUN_ROOT": "/tmp/somewhere/j1"}, "expected <store>/runs/<run-id>"),
        ({"STSEG_RECIPE": "[1]"}, "STSEG_RECIPE='[1]': must be a JSON object"),
        ({"STSEG_STAGE": "infer"}, "this entrypoint runs the finetune stage"),
    ],
)
def test_env_errors_exit_2_in_one_line(tmp_path, capsys, extra, text):
    assert main(_env(tmp_path, **extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stseg-finetune: error: ") and text in err[0], err


def _kill_after_first_checkpoint(tmp_path, env: dict, key_dir: str, timeout: float) -> list[str]:
    """Start the job as a process, SIGKILL it once epoch_1.pt exists; return the checkpoints it left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stseg_jobs.finetune"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ck = tmp_path / key_dir
    deadline = time.monotonic() + timeout
    while not (ck / "epoch_1.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return sorted(p.name for p in ck.glob("epoch_*.pt"))


def _check_resume(tmp_path, env, key_dir, epochs: int, steps_per_epoch: int, timeout: float):
    left = _kill_after_first_checkpoint(tmp_path, env, key_dir, timeout)
    assert left and f"epoch_{epochs}.pt" not in left
    latest = max(int(n[6:-3]) for n in left)
    done = subprocess.run(
        [sys.executable, "-m", "stseg_jobs.finetune"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    assert f"resumed from file://{tmp_path}/{key_dir}/epoch_{latest}.pt" in done.stdout
    assert f"finetuned to epoch {epochs} ({epochs * steps_per_epoch} steps" in done.stdout
    store = open_store(str(tmp_path / key_dir))
    final = torch.load(io.BytesIO(store.read_bytes(f"epoch_{epochs}.pt")), weights_only=True)
    assert final["step"] == epochs * steps_per_epoch and final["epoch"] == epochs


@pytest.mark.slow
def test_tmo_job_killed_after_a_checkpoint_resumes_from_it(tmp_path):
    generate_dataset(tmp_path / "ds", CFG, splits=("train",))
    recipe = '{"backbone": "rn18", "size": 64, "batch_size": 4, "checkpoint_every": 1, "device": "cpu"}'
    env = _env(tmp_path, STSEG_EPOCHS="4", STSEG_RECIPE=recipe)
    _check_resume(tmp_path, env, "store/checkpoints/tmo/j1", epochs=4, steps_per_epoch=2, timeout=300)


@pytest.mark.slow
def test_sam2_job_killed_after_a_checkpoint_resumes_from_it(tmp_path):
    generate_dataset(tmp_path / "ds", CFG, splits=("train",))
    init = save_random_checkpoint(tmp_path / "t.pt", "t")
    recipe = (
        '{"config": "t", "resolution": 64, "num_frames": 3, "max_objects": 2, "multiplier": 1, '
        '"checkpoint_every": 1, "device": "cpu"}'
    )
    env = _env(tmp_path, STSEG_MODEL="sam2", STSEG_INIT=str(init), STSEG_EPOCHS="3", STSEG_RECIPE=recipe)
    _check_resume(tmp_path, env, "store/checkpoints/sam2/j1", epochs=3, steps_per_epoch=2, timeout=600)


@pytest.mark.slow
def test_tmo_job_under_torchrun_two_cpu_ranks_share_the_epoch(tmp_path):
    """The Kubernetes backend's multi-GPU command, on CPU: gloo group, DistributedSampler halves each rank's
    steps, gradients accumulated under DDP's no_sync, rank 0 alone writes the checkpoint."""
    CFG8 = SynthConfig(seed=9, height=48, width=64, videos=3, min_frames=8, max_frames=8, min_objects=1, max_objects=2)
    generate_dataset(tmp_path / "ds", CFG8, splits=("train",))
    recipe = (
        '{"backbone": "rn18", "size": 64, "batch_size": 2, "grad_accum": 2, "checkpoint_every": 1, "device": "cpu"}'
    )
    env = {**os.environ, **_env(tmp_path, STSEG_EPOCHS="1", STSEG_RECIPE=recipe)}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "stseg_jobs.finetune"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # 2 train videos × 8 frames = 16 samples; 8 per rank in steps of 2 × 2 → 2 steps, on both ranks
    assert done.stdout.count("tmo finetuned to epoch 1 (2 steps)") == 2
    store = open_store(str(tmp_path / "store/checkpoints/tmo/j1"))
    assert sorted(store.list()) == ["best", "epoch_1.pt", "split.json", "val.json"]
