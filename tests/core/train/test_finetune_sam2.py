"""SAM2 finetune stage on CPU at toy size: store layout on live S3, resume, frozen encoder, adapter round trip,
loss falling on an over-fit set, and one-line input errors before any step."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch

from stseg_core.data.synth import SynthConfig, generate_dataset
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models.registry import build_model
from stseg_core.models.sam2 import save_random_checkpoint
from stseg_core.store import open_store
from stseg_core.telemetry import JobMetrics
from stseg_core.train.sam2_recipe import Sam2Recipe, finetune_sam2
from stseg_testing.refusals import assert_refused_before_any_step

RES = 64
# Mask prompts only (no random clicks/boxes) and no augmentation: batches are a fixed function of the data.
DETERMINISTIC = ("trainer.model.prob_to_use_pt_input_for_train=0.0",)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sam2ft")
    generate_dataset(
        root / "ds",
        SynthConfig(seed=3, height=48, width=64, min_frames=3, max_frames=3, min_objects=1, max_objects=2, videos=3),
        splits=("train",),
    )
    init = save_random_checkpoint(root / "init_t.pt", "t", seed=0)
    return root / "ds" / "train", init


def _recipe(init, **kw) -> Sam2Recipe:
    base = dict(
        init=str(init),
        config="t",
        resolution=RES,
        epochs=2,
        num_frames=3,
        max_objects=2,
        checkpoint_every=1,
        multiplier=1,
        augment=False,
        overrides=DETERMINISTIC,
        device="cpu",
    )
    return Sam2Recipe(**{**base, **kw})


def _load(store, key):
    return torch.load(io.BytesIO(store.read_bytes(key)), map_location="cpu", weights_only=True)


def test_finetune_to_s3_checkpoints_val_best_and_resume(data, s3_store, tmp_path):
    train, init = data
    metrics = JobMetrics(run="r1", stage="finetune", model="sam2")
    res = finetune_sam2(
        _recipe(init, epochs=1),
        data_root=str(train),
        store=s3_store.root,
        run_id="r1",
        scratch=tmp_path,
        metrics=metrics,
    )
    ck = s3_store.child("checkpoints/sam2/r1")
    assert sorted(ck.list()) == ["best", "epoch_1.pt", "split.json", "val.json"]
    split = ck.read_json("split.json")
    assert len(split["train"]) == 2 and len(split["val"]) == 1 and not set(split["train"]) & set(split["val"])
    val = ck.read_json("val.json")
    assert set(val) == {"epoch_1.pt"} and 0.0 <= val["epoch_1.pt"]["J&F-Mean"] <= 1.0
    assert ck.read_text("best").strip() == "epoch_1.pt"
    assert res.step == 2 and metrics.value("stseg_train_step") == 2  # 2 training videos × multiplier 1
    assert metrics.value("stseg_val_jf", epoch="1") == pytest.approx(100 * val["epoch_1.pt"]["J&F-Mean"])

    # the frozen image encoder is bit-identical to the init; the decoder side moved
    first = _load(ck, "epoch_1.pt")
    start = torch.load(init, map_location="cpu", weights_only=True)["model"]
    enc = [k for k in start if k.startswith("image_encoder.")]
    assert enc and all(torch.equal(first["model"][k], start[k]) for k in enc)
    moved = [k for k in start if k.startswith("sam_mask_decoder.") and not torch.equal(first["model"][k], start[k])]
    assert moved

    # started again with more epochs: resumes after epoch 1 with its step count and optimizer state
    res2 = finetune_sam2(
        _recipe(init, epochs=2), data_root=str(train), store=s3_store.root, run_id="r1", scratch=tmp_path
    )
    assert res2.resumed_from.endswith("/checkpoints/sam2/r1/epoch_1.pt")
    assert res2.step == 4 and _load(ck, "epoch_2.pt")["step"] == 4 and _load(ck, "epoch_2.pt")["epoch"] == 2
    assert set(ck.read_json("val.json")) == {"epoch_1.pt", "epoch_2.pt"}
    assert ck.read_text("best").strip() in {"epoch_1.pt", "epoch_2.pt"}

    # the finetuned checkpoint loads strictly in the inference adapter (from S3) and segments a video
    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.base import VideoInput

    model = build_model(
        "sam2", checkpoint=s3_store.uri("checkpoints/sam2/r1/epoch_2.pt"), config="t", size=RES, device="cpu"
    )
    video = VideoInput.from_split(MoseSplit(str(train)), split["val"][0])
    frames = list(model.segment(video))
    assert len(frames) == 3 and frames[1].labels.shape == (48, 64) and frames[1].labels.dtype == np.uint8


def test_loss_falls_when_overfitting(data, tmp_path):
    train, init = data
    res = finetune_sam2(
        _recipe(init, epochs=6, checkpoint_every=100, base_lr=3e-4),
        data_root=str(train),
        store=str(tmp_path / "store"),
        run_id="fit",
        scratch=tmp_path / "scratch",
    )
    first, last = np.mean(res.epoch_losses[:2]), np.mean(res.epoch_losses[-2:])
    assert last < 0.6 * first, res.epoch_losses


def test_the_seed_fixes_augmentation_and_clip_sampling(data, tmp_path):
    """SAM2's training transforms and its clip and object sampling draw from python's `random`: the recipe's seed
    fixes them too, so two runs of one recipe give the same weights whatever state the process was in."""
    train, init = data
    store = open_store(str(tmp_path / "st"))
    weights = []
    for run in ("a", "b"):
        random.seed(run)
        recipe = _recipe(init, epochs=1, augment=True, overrides=())
        finetune_sam2(recipe, data_root=str(train), store=store.root, run_id=run, scratch=tmp_path / "s")
        weights.append(_load(store, f"checkpoints/sam2/{run}/epoch_1.pt")["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_bad_inputs_fail_in_one_line_before_any_step(data, tmp_path):
    train, init = data
    cases = []
    # a training video with a frame lacking its annotation
    partial = tmp_path / "partial"
    open_store(str(partial)).upload_dir(train, "")
    victim = sorted(p for p in (partial / "Annotations").iterdir())[0]
    (victim / "00001.png").unlink()
    cases.append((BadInputError, f"video {victim.name}: frame 00001 has no annotation", dict(data_root=str(partial))))
    cases.append((MissingArtifactError, "not found", dict(recipe=_recipe(tmp_path / "nope.pt"))))
    wrong = tmp_path / "wrong.pt"
    torch.save({"model": {"conv.weight": torch.zeros(3)}}, wrong)
    cases.append((BadInputError, "does not fit model sam2 sam2.1_hiera_t", dict(recipe=_recipe(wrong))))
    (tmp_path / "afile").write_text("x")
    cases.append((BadInputError, "afile: is a file, not a folder", dict(store=str(tmp_path / "afile" / "store"))))
    defaults = dict(
        recipe=_recipe(init), data_root=str(train), store=str(tmp_path / "st"), run_id="bad", scratch=tmp_path / "s"
    )
    assert_refused_before_any_step(finetune_sam2, "sam2", defaults, cases)


@pytest.mark.parametrize("size", ["t", "s", "b+", "l"])
def test_composed_config_takes_each_sizes_trunk_and_the_recipe(size):
    from importlib.resources import files

    import yaml

    from stseg_core.models.sam2 import config_path
    from stseg_core.train.sam2_recipe import compose_config

    cfg = compose_config(Sam2Recipe(init="random", config=size), "/d/a b,c=1/JPEGImages", "/d/Ann", None)
    want = yaml.safe_load(files("sam2").joinpath(config_path(size)).read_text())["model"]["image_encoder"]
    trunk = cfg.trainer.model.image_encoder.trunk
    assert {k: trunk[k] for k in want["trunk"] if k != "_target_"} == {
        k: v for k, v in want["trunk"].items() if k != "_target_"
    }
    assert list(cfg.trainer.model.image_encoder.neck.backbone_channel_list) == want["neck"]["backbone_channel_list"]
    assert cfg.dataset.img_folder == "/d/a b,c=1/JPEGImages" and cfg.dataset.file_list_txt is None
    assert cfg.trainer.model.freeze_image_encoder is True and cfg.scratch.base_lr == 5e-6
    assert dict(cfg.trainer.loss.all.weight_dict) == {"loss_mask": 20, "loss_dice": 1, "loss_iou": 1, "loss_class": 1}
    assert cfg.scratch.num_epochs == 40 and cfg.trainer.optim.amp.enabled is False
