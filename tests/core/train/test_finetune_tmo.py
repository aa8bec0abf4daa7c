"""TMO finetune stage on CPU at toy size (ResNet-18, 64 px): flow precompute shared with inference, store
checkpoints on live S3, resume, frozen BatchNorm statistics, adapter round trip, an official-format --init,
loss falling, small-target crops, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from stseg_core.data.synth import SynthConfig, generate_dataset
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models.registry import build_model
from stseg_core.models.tmo import build_network, checkpoint_dict
from stseg_core.store import open_store
from stseg_core.telemetry import JobMetrics
from stseg_core.train.tmo_recipe import TmoRecipe, enlarge_crop, finetune_tmo
from stseg_testing.refusals import assert_refused_before_any_step

ARCH = dict(backbone="rn18")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tmoft")
    generate_dataset(
        root / "ds",
        SynthConfig(seed=5, height=48, width=64, min_frames=4, max_frames=4, min_objects=1, max_objects=2, videos=3),
        splits=("train",),
    )
    return root / "ds" / "train"


def _recipe(**kw) -> TmoRecipe:
    base = dict(init="random", size=64, epochs=2, batch_size=4, checkpoint_every=1, lr=1e-3, device="cpu", **ARCH)
    return TmoRecipe(**{**base, **kw})


def _load(store, key):
    return torch.load(io.BytesIO(store.read_bytes(key)), map_location="cpu", weights_only=True)


def test_finetune_to_s3_with_flow_cache_checkpoints_and_resume(data, s3_store, tmp_path):
    metrics = JobMetrics(run="t1", stage="finetune", model="tmo")
    res = finetune_tmo(
        _recipe(epochs=1), data_root=str(data), store=s3_store.root, run_id="t1", scratch=tmp_path, metrics=metrics
    )
    ck = s3_store.child("checkpoints/tmo/t1")
    assert sorted(ck.list()) == ["best", "epoch_1.pt", "split.json", "val.json"]
    split = ck.read_json("split.json")
    # flow images of every train and val frame are cached where the tmo adapter looks (flow/dis/<video>/<stem>)
    flows = s3_store.list("flow/dis/")
    assert len(flows) == 3 * 4 and {f.split("/")[2] for f in flows} == set(split["train"] + split["val"])
    assert res.step == 2 and metrics.value("stseg_train_step") == 2  # 2 videos × 4 frames / batch 4
    assert 0.0 <= ck.read_json("val.json")["epoch_1.pt"]["J&F-Mean"] <= 1.0

    # every BatchNorm's running statistics are exactly the initial ones; its affine weights train (as upstream)
    start = build_network("rn18", seed=123).state_dict()
    saved = _load(ck, "epoch_1.pt")
    assert saved["arch"] == ARCH and saved["recipe"]["rgb_motion_prob"] == 0.75
    bn_keys = [k for k in start if "running_mean" in k]
    assert bn_keys
    for k in bn_keys:
        prefix = k[: -len("running_mean")]
        for suffix in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(saved["model"][prefix + suffix], start[prefix + suffix]), prefix + suffix
    assert not torch.equal(saved["model"]["vos.app_encoder.bn1.weight"], start["vos.app_encoder.bn1.weight"])
    assert not torch.equal(
        saved["model"]["vos.decoder.predictor.conv.weight"], start["vos.decoder.predictor.conv.weight"]
    )

    res2 = finetune_tmo(_recipe(epochs=2), data_root=str(data), store=s3_store.root, run_id="t1", scratch=tmp_path)
    assert res2.resumed_from.endswith("/checkpoints/tmo/t1/epoch_1.pt") and res2.step == 4
    assert _load(ck, "epoch_2.pt")["step"] == 4 and set(ck.read_json("val.json")) == {"epoch_1.pt", "epoch_2.pt"}

    # the checkpoint loads strictly in the tmo adapter, which reads the same flow cache
    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.base import VideoInput

    model = build_model(
        "tmo", checkpoint=s3_store.uri("checkpoints/tmo/t1/epoch_2.pt"), size=64, device="cpu", flow_cache=s3_store.root
    )
    video = VideoInput.from_split(MoseSplit(str(data)), split["val"][0])
    frames = list(model.segment(video))
    assert len(frames) == 4 and frames[2].labels.shape == (48, 64)
    assert set(np.unique(frames[2].labels).tolist()) <= {0, *video.object_ids}


def test_official_state_dict_as_init_one_step(data, tmp_path):
    official = tmp_path / "TMO_rn18.pth"
    start = build_network("rn18", seed=9).state_dict()
    torch.save(start, official)  # upstream's format: torch.save(model.state_dict())
    res = finetune_tmo(
        _recipe(init=str(official), epochs=1, batch_size=8),
        data_root=str(data),
        store=str(tmp_path / "store"),
        run_id="off",
        scratch=tmp_path,
    )
    assert res.step == 1
    saved = torch.load(tmp_path / "store/checkpoints/tmo/off/epoch_1.pt", weights_only=True)
    assert saved["recipe"]["init"] == str(official) and list(saved["model"]) == list(start)
    assert torch.equal(saved["model"]["vos.app_encoder.bn1.running_var"], start["vos.app_encoder.bn1.running_var"])


def test_loss_falls_when_overfitting(data, tmp_path):
    res = finetune_tmo(
        _recipe(epochs=8, checkpoint_every=100, lr=3e-3, enlarge_prob=0.0),
        data_root=str(data),
        store=str(tmp_path / "store"),
        run_id="fit",
        scratch=tmp_path,
    )
    first, last = np.mean(res.epoch_losses[:2]), np.mean(res.epoch_losses[-2:])
    assert last < 0.7 * first, res.epoch_losses


def test_enlarge_crop_only_for_small_targets():
    mask = np.zeros((100, 200), np.uint8)
    mask[40:44, 100:106] = 1  # 24 px = 0.12 % of the frame, bbox 4×6
    assert enlarge_crop(mask, below=0.01, context=4.0) == (30, 54, 91, 115)  # 24×24 centred on the box
    assert enlarge_crop(mask, below=0.001, context=4.0) is None
    assert enlarge_crop(np.zeros_like(mask), below=0.01, context=4.0) is None
    mask[0:2, 0:2] = 1  # box spans the frame: the window is clipped to the frame
    y0, y1, x0, x1 = enlarge_crop(mask, below=0.01, context=4.0)
    assert (y1 - y0, x1 - x0) == (100, 100) and x0 >= 0 and x1 <= 200


def test_bad_inputs_fail_in_one_line_before_any_step(data, tmp_path):
    partial = tmp_path / "partial"
    open_store(str(partial)).upload_dir(data, "")
    victim = sorted((partial / "Annotations").iterdir())[0]
    (victim / "00002.png").unlink()
    wrong = tmp_path / "r34.pt"
    torch.save(checkpoint_dict(build_network("rn34")), wrong)
    (tmp_path / "afile").write_text("x")
    cases = [
        (BadInputError, f"video {victim.name}: frame 00002 has no annotation", dict(data_root=str(partial))),
        (MissingArtifactError, "not found", dict(recipe=_recipe(init=str(tmp_path / "nope.pt")))),
        (BadInputError, "holds TMO rn34 but backbone rn18", dict(recipe=_recipe(init=str(wrong)))),
        (BadInputError, "afile: is a file, not a folder", dict(store=str(tmp_path / "afile" / "store"))),
        (BadInputError, "one step of 4×4 frames (batch_size × grad_accum)", dict(recipe=_recipe(grad_accum=4))),
    ]
    defaults = dict(
        recipe=_recipe(), data_root=str(data), store=str(tmp_path / "st"), run_id="bad", scratch=tmp_path / "s"
    )
    assert_refused_before_any_step(finetune_tmo, "tmo", defaults, cases)
