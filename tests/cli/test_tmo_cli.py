"""`stseg infer` and `stseg finetune` with TMO weights in the official release's format (a bare state dict, as
upstream's `torch.save(model.state_dict())` writes `TMO_<backbone>.pth`), small: ResNet-18 variant, 64 px."""

import pytest
import torch
from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_core.data.mose import MoseSplit
from stseg_core.data.synth import SynthConfig, generate_dataset
from stseg_core.models.tmo import build_network
from stseg_core.runlayout import verify_shard
from stseg_core.store import open_store

CFG = SynthConfig(seed=3, height=48, width=64, videos=2, min_frames=4, max_frames=4, min_objects=1, max_objects=2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("tmocli")
    generate_dataset(root / "ds", CFG, splits=("train", "valid"))
    torch.save(build_network("rn18", seed=2).state_dict(), root / "TMO_rn18.pth")
    return root


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_infer_with_an_official_format_checkpoint_writes_masks_scores_and_done(official, tmp_path):
    data, run = str(official / "ds/valid"), str(tmp_path / "run")
    res = _invoke(
        "infer",
        "--model",
        "tmo",
        "--data",
        data,
        "--run",
        run,
        "--checkpoint",
        str(official / "TMO_rn18.pth"),
        "--set",
        "backbone=rn18",
        "--set",
        "size=64",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    store = open_store(run)
    assert store.exists("pred/tmo/_done/0.json") and verify_shard(store, "pred/tmo", 0) == []
    for video in MoseSplit(data).videos():
        info = MoseSplit(data).video(video)
        assert store.exists(f"pred/tmo/{video}/scores.json")
        assert sorted(k for k in store.list(f"pred/tmo/{video}/") if k.endswith(".png")) == sorted(
            f"pred/tmo/{video}/{s}.png" for s in info.frames
        )


def test_official_file_of_the_other_backbone_fails_in_one_line(official, tmp_path):
    res = _invoke(
        "infer",
        "--model",
        "tmo",
        "--data",
        str(official / "ds/valid"),
        "--run",
        str(tmp_path / "r"),
        "--checkpoint",
        str(official / "TMO_rn18.pth"),
        "--device",
        "cpu",
    )
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"stseg: error: checkpoint {official}/TMO_rn18.pth: not a TMO rn101 state dict; first mismatching key "
        "vos.app_encoder.layer1.0.conv1.weight (checkpoint [64, 64, 3, 3], model [64, 64, 1, 1]); expected backbone "
        "rn101 "
        "(set backbone= to load another)"
    ]


def test_finetune_from_an_official_format_init_runs_one_step(official, tmp_path):
    res = _invoke(
        "finetune",
        "--model",
        "tmo",
        "--data",
        str(official / "ds/train"),
        "--out",
        str(tmp_path / "out"),
        "--run",
        "o1",
        "--init",
        str(official / "TMO_rn18.pth"),
        "--epochs",
        "1",
        "--size",
        "64",
        "--device",
        "cpu",
        "--set",
        "backbone=rn18",
        "--set",
        "batch_size=4",
    )
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].startswith("tmo finetuned to epoch 1 (1 steps); checkpoints in ")
    saved = torch.load(tmp_path / "out/checkpoints/tmo/o1/epoch_1.pt", weights_only=True)
    assert saved["recipe"]["init"] == str(official / "TMO_rn18.pth") and saved["arch"] == {"backbone": "rn18"}
