"""`stseg finetune` on this machine: a TMO run prints its checkpoints' J&F; bad options fail in one line."""

import pytest
from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_core.data.synth import SynthConfig, generate_dataset

CFG = SynthConfig(seed=7, height=48, width=64, videos=3, min_frames=4, max_frames=4, min_objects=1, max_objects=1)
TINY = ("--set", "backbone=rn18", "--set", "batch_size=4")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["finetune", *args])


def test_finetune_tmo_writes_checkpoint_and_reports_jf(tmp_path):
    generate_dataset(tmp_path / "ds", CFG, splits=("train",))
    res = _invoke(
        "--model",
        "tmo",
        "--data",
        str(tmp_path / "ds/train"),
        "--out",
        str(tmp_path / "out"),
        "--run",
        "c1",
        "--init",
        "random",
        "--epochs",
        "1",
        "--size",
        "64",
        "--device",
        "cpu",
        *TINY,
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    root = f"file://{tmp_path}/out/checkpoints/tmo/c1"
    assert lines[0] == f"tmo finetuned to epoch 1 (2 steps); checkpoints in {root}, best {root}/epoch_1.pt"
    assert lines[1].startswith("  epoch_1.pt: J&F ") and len(lines) == 2
    assert (tmp_path / "out/checkpoints/tmo/c1/epoch_1.pt").is_file()


def test_finetune_bad_options_one_line(tmp_path):
    res = _invoke("--model", "tmo", "--data", str(tmp_path), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        "stseg: error: --init is required: a checkpoint URI, or 'random' for random weights"
    ]
    where = ("--data", str(tmp_path), "--out", str(tmp_path / "o"), "--init", "random")
    res = _invoke("--model", "sam2", *where, "--set", "optimiser=sgd")
    assert res.exit_code == 2 and "unknown option(s) optimiser" in res.output
    res = _invoke("--model", "sam2", *where, "--set", "optimizer=sgd")
    assert res.exit_code == 2 and "optimizer 'sgd': use one of adamw, adam" in res.output
    res = _invoke("--model", "tmo", *where, "--resolution", "64")
    assert res.exit_code == 2 and "tmo finetune: unknown option(s) resolution (known: " in res.output
