"""TMO: the network over ResNet-18 runs end to end, official-format and our checkpoints load strictly through
the real path, and the foreground→ids step keeps ids on moving objects and gives a reappearing one back its own id."""

from __future__ import annotations

import numpy as np
import pytest

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.fusion.consistency import mask_iou
from stseg_core.models.base import VideoInput
from stseg_core.models.flow import build_flow
from stseg_core.models.tmo import build, build_network, checkpoint_dict
from stseg_core.models.tmo_ids import ForegroundSplitter
from stseg_testing.videos import in_memory_video

H, W, T = 48, 64, 5
TINY = {"backbone": "rn18", "size": 64, "device": "cpu"}


def _squares(t: int, hide_green: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Frame t of two squares on a textured background: red (id 1) moving right, green (id 3) moving left."""
    rng = np.random.default_rng(7)
    frame = (rng.integers(0, 40, (H, W, 3)) + 30).astype(np.uint8)
    labels = np.zeros((H, W), np.uint8)
    x1, x3 = 6 + 2 * t, 44 - 2 * t
    frame[8:20, x1 : x1 + 12] = (210, 40, 40)
    labels[8:20, x1 : x1 + 12] = 1
    if not hide_green:
        frame[28:40, x3 : x3 + 12] = (40, 210, 40)
        labels[28:40, x3 : x3 + 12] = 3
    return frame, labels


def _video(n: int = T) -> VideoInput:
    return in_memory_video([_squares(t)[0] for t in range(n)], _squares(0)[1], (1, 3), "sq")


@pytest.fixture(scope="module")
def tiny_outputs():
    return list(build(seed=3, **TINY).segment(_video()))


def test_tiny_tmo_gives_valid_label_maps_with_first_frame_ids_only(tiny_outputs):
    video = _video()
    assert [r.stem for r in tiny_outputs] == list(video.stems)
    assert np.array_equal(tiny_outputs[0].labels, video.first_labels)
    for r in tiny_outputs:
        assert r.labels.shape == (H, W) and r.labels.dtype == np.uint8
        assert set(np.unique(r.labels).tolist()) <= {0, 1, 3}
        assert set(r.scores) == set(r.present) == {1, 3}
        assert all(0.0 <= s <= 1.0 for s in r.scores.values())
        assert r.probs.shape == (2, H, W) and r.probs.dtype == np.uint8
        for k, oid in enumerate((1, 3)):
            assert r.present[oid] == bool((r.labels == oid).any())
            # a pixel labelled k carries k's soft probability, never another object's
            assert (r.probs[1 - k][r.labels == oid] == 0).all()


def test_checkpoint_saved_and_loaded_gives_identical_outputs(tmp_path, tiny_outputs):
    import torch

    net = build_network("rn18", seed=3)
    torch.save(checkpoint_dict(net), tmp_path / "tmo.pt")
    loaded = build(checkpoint=(tmp_path / "tmo.pt").as_uri(), size="64", device="cpu")
    assert loaded.backbone == "rn18"  # the architecture comes from the checkpoint
    torch.save(net.state_dict(), tmp_path / "official.pth")  # upstream's format: a bare state dict
    official = build(checkpoint=str(tmp_path / "official.pth"), backbone="rn18", size="64", device="cpu")
    for model in (loaded, official):
        again = list(model.segment(_video()))
        for a, b in zip(tiny_outputs, again, strict=True):
            assert np.array_equal(a.labels, b.labels) and np.array_equal(a.probs, b.probs) and a.scores == b.scores
    other = list(build(seed=4, **TINY).segment(_video()))  # different weights → different probabilities
    assert any(not np.array_equal(a.probs, b.probs) for a, b in zip(tiny_outputs[1:], other[1:], strict=True))


def test_backbone_weights_start_both_encoders(tmp_path):
    import torch
    import torchvision

    torch.manual_seed(8)
    imagenet = torchvision.models.resnet18(weights=None).state_dict()  # torchvision's format, fc.* included
    torch.save(imagenet, tmp_path / "resnet18.pth")
    net = build(backbone="rn18", backbone_weights=str(tmp_path / "resnet18.pth"), size=64, device="cpu").net
    for enc in (net.vos.app_encoder, net.vos.mo_encoder):
        assert torch.equal(enc.conv1.weight, imagenet["conv1.weight"])
        assert torch.equal(enc.layer4[1].bn2.running_var, imagenet["layer4.1.bn2.running_var"])


def test_aos_option_runs_the_image_branch_too():
    with_aos = list(build(seed=3, aos="true", **TINY).segment(_video()))
    assert len(with_aos) == T and with_aos[2].labels.shape == (H, W)


def test_checkpoint_errors_are_one_line(tmp_path):
    import torch

    path = tmp_path / "tmo.pt"
    torch.save(checkpoint_dict(build_network("rn18")), path)
    with pytest.raises(BadInputError, match=rf"^checkpoint {path}: holds TMO rn18 but backbone rn34 was asked for$"):
        build(checkpoint=str(path), backbone="rn34")
    bent = checkpoint_dict(build_network("rn18"))
    bent["arch"] = {"backbone": "rn34"}  # arch says ResNet-34, weights are ResNet-18's
    torch.save(bent, tmp_path / "bent.pt")
    with pytest.raises(
        BadInputError,
        match=r"bent\.pt: not a TMO rn34 state dict; first mismatching key "
        r"vos\.app_encoder\.layer1\.2\.conv1\.weight \(missing from the "
        r"checkpoint\); expected backbone rn34 \(set backbone= to load another\)$",
    ):
        build(checkpoint=str(tmp_path / "bent.pt"))
    with pytest.raises(MissingArtifactError, match=r"^checkpoint .*missing\.pt: not found$"):
        build(checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(
        BadInputError,
        match=r"^tmo option backbone='vgg16' is not one of rn18, rn34, rn50, rn101, "
        r"mitb1$",
    ):
        build(backbone="vgg16")
    with pytest.raises(BadInputError, match=r"^tmo has no option\(s\) colour "):
        build(colour="red")
    with pytest.raises(BadInputError, match=r"^tmo option size=100 must be a positive multiple of 32$"):
        build(size="100")


def _split_video(frames: list[np.ndarray], truths: list[np.ndarray]) -> list[np.ndarray]:
    """Run the splitter with the true foreground (P = 1 on objects) and colour as the anchor feature."""
    dis = build_flow("dis")

    def feat(frame: np.ndarray) -> np.ndarray:
        return frame.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5

    splitter = ForegroundSplitter(truths[0], (1, 3), feat(frames[0]), min_region=0.01)
    out = [truths[0]]
    for t in range(1, len(frames)):
        prob = (truths[t] > 0).astype(np.float32)
        labels, _, present, _ = splitter.step(prob, dis(frames[t - 1], frames[t]), feat(frames[t]))
        assert present == {1: bool((truths[t] == 1).any()), 3: bool((truths[t] == 3).any())}
        out.append(labels)
    return out


def test_splitter_keeps_ids_on_moving_objects():
    frames, truths = zip(*(_squares(t) for t in range(8)), strict=True)
    out = _split_video(list(frames), list(truths))
    for t, (pred, truth) in enumerate(zip(out, truths, strict=True)):
        for oid in (1, 3):
            assert mask_iou(pred == oid, truth == oid) > 0.95, (t, oid)


def test_splitter_gives_a_reappearing_object_its_first_frame_id():
    # green (id 3) leaves the view in frames 3-4 and comes back: no warped seed, so the anchor must name it
    frames, truths = zip(*(_squares(t, hide_green=t in (3, 4)) for t in range(7)), strict=True)
    out = _split_video(list(frames), list(truths))
    assert not (out[3] == 3).any() and not (out[4] == 3).any()
    assert mask_iou(out[5] == 3, truths[5] == 3) > 0.95 and mask_iou(out[6] == 3, truths[6] == 3) > 0.95


def test_flow_cache_is_written_once_and_gives_the_same_outputs(tmp_path, tiny_outputs):
    from stseg_core.store import open_store

    model = build(seed=3, flow_cache=str(tmp_path), **TINY)
    cold = list(model.segment(_video()))
    keys = open_store(tmp_path).list()
    assert keys == [f"flow/dis/sq/{i:05d}.png" for i in range(T)]
    model.flow = None  # a warm cache needs no flow estimator at all
    warm = list(model.segment(_video()))
    for a, b, c in zip(tiny_outputs, cold, warm, strict=True):
        assert np.array_equal(a.labels, b.labels) and np.array_equal(b.labels, c.labels)
        assert np.array_equal(a.probs, c.probs)
