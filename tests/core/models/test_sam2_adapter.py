"""The `sam2` adapter against upstream `SAM2VideoPredictor` run directly on the same JPEG video and weights.

A seeded random-weight hiera-t checkpoint is written to a file; the adapter loads it through
`stseg_core.models.checkpoint` (path and local S3 server), upstream through its own `ckpt_path` loader.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models.base import VideoInput
from stseg_core.models.registry import build_model
from stseg_core.models.sam2 import CONFIDENCE_DEFINITION, Sam2Model, build, save_random_checkpoint

H, W, SIZE = 64, 96, 128
IDS = (1, 3)


def _write_video(folder: Path, frames: int) -> np.ndarray:
    """Two moving rectangles on noise as JPEGs named 00000.jpg…; returns the first-frame labels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(frames):
        img = (rng.integers(0, 64, (H, W, 3)) + 100).astype(np.uint8)
        img[10 + t : 30 + t, 10 + t : 40 + t] = (200, 30, 30)
        img[35:60, 50 - t : 90 - t] = (30, 200, 30)
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=90)
    labels = np.zeros((H, W), np.uint8)
    labels[10:30, 10:40] = 1
    labels[35:60, 50:90] = 3
    return labels


def _video(folder: Path, labels: np.ndarray, pulled: list[int] | None = None) -> VideoInput:
    paths = sorted(folder.glob("*.jpg"))

    def frames():
        for p in paths:
            if pulled is not None:
                pulled.append(int(p.stem))
            yield np.asarray(Image.open(p).convert("RGB"))

    return VideoInput(
        name=folder.name,
        stems=tuple(p.stem for p in paths),
        height=H,
        width=W,
        first_labels=labels,
        object_ids=IDS,
        frames=frames,
    )


def _direct(ckpt: Path, folder: Path, labels: np.ndarray) -> tuple[dict, dict]:
    """Upstream run: per frame ≥ 1, K×H×W mask logits and K object-score logits."""
    from sam2.build_sam import build_sam2_video_predictor

    pred = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        str(ckpt),
        device="cpu",
        apply_postprocessing=False,
        hydra_overrides_extra=[f"++model.image_size={SIZE}"],
    )
    state = pred.init_state(str(folder))
    for i in IDS:
        pred.add_new_mask(state, 0, i, labels == i)
    logits, obj = {}, {}
    for t, _ids, masks in pred.propagate_in_video(state):
        if t:
            logits[t] = masks[:, 0].numpy().copy()
            obj[t] = np.array(
                [
                    float(state["output_dict_per_obj"][k]["non_cond_frame_outputs"][t]["object_score_logits"])
                    for k in range(len(IDS))
                ]
            )
    return logits, obj


def _expected_labels(logits: np.ndarray) -> np.ndarray:
    """The documented rule, written independently: argmax object where its logit > 0, else background."""
    return np.where(logits.max(0) > 0, np.asarray(IDS, np.uint8)[logits.argmax(0)], 0).astype(np.uint8)


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    root = tmp_path_factory.mktemp("sam2")
    ckpt = save_random_checkpoint(root / "ckpt" / "t.pt", "t", seed=0)
    labels = _write_video(root / "vid6", 6)
    logits, obj = _direct(ckpt, root / "vid6", labels)
    return ckpt, root / "vid6", labels, logits, obj


def test_adapter_matches_direct_predictor_from_a_file_checkpoint(short):
    ckpt, folder, labels, logits, obj = short
    pulled: list[int] = []
    model = build(checkpoint=str(ckpt), config="t", size=SIZE, probs=True)
    assert isinstance(model, Sam2Model) and model.default_size == SIZE
    assert model.confidence_definition == CONFIDENCE_DEFINITION

    results = []
    for r in model.segment(_video(folder, labels, pulled)):
        results.append(r)
        assert max(pulled) <= len(results) - 1  # frames decoded lazily, never ahead of the output
    assert [r.stem for r in results] == [f"{t:05d}" for t in range(6)]
    assert np.array_equal(results[0].labels, labels) and results[0].scores == {1: 1.0, 3: 1.0}
    assert np.array_equal(results[0].probs[1], (labels == 3) * 255)

    for r in results[1:]:
        t = int(r.stem)
        assert r.labels.dtype == np.uint8 and r.labels.shape == (H, W)
        assert np.array_equal(r.labels, _expected_labels(logits[t])), f"frame {t}"
        expected_probs = np.round(1 / (1 + np.exp(-logits[t].astype(np.float64))) * 255)
        assert r.probs.shape == (2, H, W) and np.abs(r.probs.astype(int) - expected_probs).max() <= 1
        assert r.present == {i: bool(v > 0) for i, v in zip(IDS, obj[t], strict=True)}
        for i, v in zip(IDS, obj[t], strict=True):
            assert 0 < r.scores[i] <= 1 / (1 + np.exp(-v)) + 1e-6  # sigmoid(obj logit) × IoU ∈ [0, 1]
    # Both objects really are tracked (not all background) on the last frame.
    assert {1, 3} <= set(np.unique(results[-1].labels).tolist())


def test_adapter_loads_the_checkpoint_from_s3_through_the_registry(short, s3_store, s3_bucket, tmp_path, monkeypatch):
    ckpt, folder, labels, logits, _obj = short
    monkeypatch.setenv("STSEG_CACHE", str(tmp_path / "cache"))
    s3_store.write_bytes("checkpoints/sam2/r1/epoch_0.pt", ckpt.read_bytes())
    # Options as the CLI and the job environment pass them: strings.
    model = build_model(
        "sam2",
        checkpoint=f"s3://{s3_bucket}/prefix/checkpoints/sam2/r1/epoch_0.pt",
        size=str(SIZE),
        probs="false",
        device="auto",
    )
    assert model.default_size == SIZE and model.probs is False
    got = list(model.segment(_video(folder, labels)))
    assert all(np.array_equal(r.labels, _expected_labels(logits[int(r.stem)])) for r in got[1:])
    assert got[1].probs is None
    assert len(list((tmp_path / "cache").rglob("epoch_0.pt"))) == 1


def test_long_video_pruning_keeps_masks_identical(tmp_path, short):
    """24 frames > the model's memory reach (17): pruned state must give upstream's masks exactly."""
    ckpt = short[0]
    labels = _write_video(tmp_path / "vid24", 24)
    logits, _obj = _direct(ckpt, tmp_path / "vid24", labels)
    model = build(checkpoint=str(ckpt), size=SIZE)
    assert model.memory_reach < 24
    got = list(model.segment(_video(tmp_path / "vid24", labels)))
    assert len(got) == 24
    for r in got[1:]:
        assert np.array_equal(r.labels, _expected_labels(logits[int(r.stem)])), f"frame {r.stem}"


def test_missing_checkpoint_is_a_one_line_missing_artifact(tmp_path):
    uri = (tmp_path / "none" / "t.pt").as_uri()
    with pytest.raises(MissingArtifactError) as err:
        build(checkpoint=uri, size=SIZE)
    assert str(err.value) == f"checkpoint {uri}: not found"


def test_checkpoint_of_another_model_is_a_one_line_bad_input(short, tmp_path):
    ckpt = short[0]
    torch.save({"model": torch.nn.Linear(2, 3).state_dict()}, tmp_path / "linear.pt")
    with pytest.raises(BadInputError) as err:
        build(checkpoint=str(tmp_path / "linear.pt"), size=SIZE)
    assert str(err.value) == (
        f"checkpoint {tmp_path / 'linear.pt'}: does not fit model sam2 sam2.1_hiera_t: missing keys "
        "image_encoder.neck.convs.0.conv.bias, image_encoder.neck.convs.0.conv.weight, "
        "image_encoder.neck.convs.1.conv.bias, … (471 in all); unexpected keys bias, weight"
    )
    with pytest.raises(BadInputError) as err:  # hiera-t weights into a hiera-s model
        build(checkpoint=str(ckpt), config="s", size=SIZE)
    assert str(err.value) == (
        f"checkpoint {ckpt}: does not fit model sam2 sam2.1_hiera_s: missing keys "
        "image_encoder.trunk.blocks.12.attn.proj.bias, image_encoder.trunk.blocks.12.attn.proj.weight, "
        "image_encoder.trunk.blocks.12.attn.qkv.bias, … (50 in all); unexpected keys "
        "image_encoder.trunk.blocks.10.proj.bias, image_encoder.trunk.blocks.10.proj.weight; shape mismatch "
        "image_encoder.trunk.blocks.10.attn.proj.bias, image_encoder.trunk.blocks.10.attn.proj.weight, "
        "image_encoder.trunk.blocks.10.attn.qkv.bias, … (22 in all) (e.g. "
        "image_encoder.trunk.blocks.10.attn.proj.bias: checkpoint [768], model [384])"
    )
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "sam2: no checkpoint given (checkpoint=<path, file:// or s3:// URI>)"),
        ({"checkpoint": "x.pt", "config": "xl"}, "sam2 config 'xl' is not one of t, s, b+, l (or sam2.1_hiera_<name>)"),
        ({"checkpoint": "x.pt", "size": 100}, "sam2 size 100: must be a positive multiple of 32"),
        (
            {"checkpoint": "x.pt", "imgsize": 256},
            "sam2 has no option(s) imgsize (options: checkpoint, config, size, "
            "device, offload_video_to_cpu, offload_state_to_cpu, mask_threshold, probs, bf16, postprocess)",
        ),
        ({"checkpoint": "x.pt", "size": "big"}, "sam2 option size='big': not an integer"),
        ({"checkpoint": "x.pt", "probs": "maybe"}, "sam2 option probs='maybe': not a boolean (use true/false)"),
    ],
)
def test_bad_options_are_one_line_errors(overrides, message):
    with pytest.raises(BadInputError) as err:
        build(**overrides)
    assert str(err.value) == message


def test_a_video_shorter_than_its_stems_is_bad_input(short):
    ckpt, folder, labels, _logits, _obj = short
    video = _video(folder, labels)
    cut = VideoInput(
        name="cut",
        stems=(*video.stems, "00006"),
        height=H,
        width=W,
        first_labels=labels,
        object_ids=IDS,
        frames=video.frames,
    )
    model = build(checkpoint=str(ckpt), size=SIZE)
    with pytest.raises(BadInputError) as err:
        list(model.segment(cut))
    assert str(err.value) == "video cut: frames() ended after 6 frames, but it lists 7 stems"


def test_infer_stage_runs_sam2_on_a_synthetic_split_in_s3(short, s3_store, s3_bucket, tmp_path, monkeypatch):
    """`run_shard` with sam2 over a split in the local S3 server writes what the adapter yields, then the marker."""
    from stseg_core.data.mose import MoseSplit
    from stseg_core.data.synth import SynthConfig, generate_split
    from stseg_core.predictions import read_video_predictions
    from stseg_core.runlayout import pred_prefix, shard_done
    from stseg_core.stages.infer import ensure_plan, run_shard

    monkeypatch.setenv("STSEG_CACHE", str(tmp_path / "cache"))
    cfg = SynthConfig(seed=1, height=64, width=96, min_frames=4, max_frames=5, max_objects=2, videos=2)
    videos = sorted(generate_split(s3_store.child("data"), cfg, "valid"))
    data, run = f"s3://{s3_bucket}/prefix/data/valid", f"s3://{s3_bucket}/prefix/runs/r1"
    ensure_plan(data, run, 1)
    options = {"checkpoint": str(short[0]), "size": str(SIZE), "probs": "true"}
    run_shard(data_root=data, run_root=run, model_name="sam2", shard=0, num_shards=1, model_overrides=options)

    run_store = s3_store.child("runs/r1")
    assert shard_done(run_store, pred_prefix("sam2"), 0)
    model = build(**options)
    split = MoseSplit(s3_store.child("data/valid"))
    for name in videos:
        stored = read_video_predictions(run_store, "sam2", name)
        direct = list(model.segment(VideoInput.from_split(split, name)))
        assert [s for s, _ in stored.iter_labels()] == [r.stem for r in direct]
        for (_stem, labels), r in zip(stored.iter_labels(), direct, strict=True):
            assert np.array_equal(labels, r.labels)
        assert stored.scores == {r.stem: pytest.approx(r.scores, abs=1e-6) for r in direct}
