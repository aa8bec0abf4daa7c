"""Optical flow: DIS recovers a known shift, the colour wheel is RAFT's and inverts, the store cache round-trips,
RAFT loads its weights only from a checkpoint file or torchvision's file in the torch cache."""

from __future__ import annotations

import numpy as np
import pytest

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models.base import VideoInput
from stseg_core.models.flow import (
    FlowCache,
    build_flow,
    decode_flow_png,
    encode_flow_png,
    flow_method,
    flow_to_image,
    frames_with_flow,
    image_to_flow,
)
from stseg_core.store import open_store


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (blurred noise), so flow is well defined everywhere."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def _video(frames: list[np.ndarray]) -> VideoInput:
    h, w = frames[0].shape[:2]
    lab = np.zeros((h, w), np.uint8)
    lab[:4, :4] = 1
    return VideoInput(
        name="vid",
        stems=tuple(f"{i:05d}" for i in range(len(frames))),
        height=h,
        width=w,
        first_labels=lab,
        object_ids=(1,),
        frames=lambda: iter(frames),
    )


def test_dis_recovers_a_global_shift():
    base = _texture(120, 160)
    shifted = np.roll(base, shift=(-2, 3), axis=(0, 1))  # content moves 3 px right, 2 px up
    flow = build_flow("dis")(base, shifted)
    inner = flow[16:-16, 16:-16]
    assert flow.shape == (120, 160, 2) and flow.dtype == np.float32
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.2)
    assert np.median(inner[..., 1]) == pytest.approx(-2.0, abs=0.2)


def test_colour_wheel_round_trip_within_one_percent():
    rng = np.random.default_rng(1)
    flow = rng.normal(0.0, 5.0, (40, 50, 2)).astype(np.float32)
    image, max_flow = flow_to_image(flow)
    assert image.dtype == np.uint8 and image.shape == (40, 50, 3)
    assert max_flow == pytest.approx(float(np.linalg.norm(flow, axis=2).max()))
    err = np.linalg.norm(image_to_flow(image, max_flow) - flow, axis=2)
    assert err.max() < 0.01 * max_flow
    # every direction on the circle, including the wheel's seam at ±π
    angles = np.linspace(-np.pi, np.pi, 721)
    ring = (np.stack([np.cos(angles), np.sin(angles)], -1)[None] * 10.0).astype(np.float32)
    back = image_to_flow(flow_to_image(ring, 10.0)[0], 10.0)
    assert np.linalg.norm(back - ring, axis=2).max() < 0.1


def test_colour_wheel_fixed_points():
    still, _ = flow_to_image(np.zeros((2, 2, 2), np.float32))
    assert (still == 255).all()  # no motion is white
    right, _ = flow_to_image(np.array([[[4.0, 0.0]]], np.float32))
    assert right[0, 0].tolist() == [255, 0, 0]  # full-speed motion to the right is pure red
    clipped, mx = flow_to_image(np.array([[[0.0, 50.0]]], np.float32), max_flow=10.0)
    assert mx == 10.0 and clipped[0, 0].tolist() == [191, 172, 0]  # beyond max_flow: 0.75× the hue, as RAFT
    # RAFT's values for straight down at full and half speed: wheel entries 13-14 (R 255, G 221|238) halfway
    down, _ = flow_to_image(np.array([[[0.0, 2.0], [0.0, 1.0]]], np.float32))
    assert down[0].tolist() == [[255, 229, 0], [255, 242, 127]]


def test_flow_png_carries_max_flow_and_refuses_plain_png():
    image, mx = flow_to_image(np.ones((8, 8, 2), np.float32))
    back, back_mx = decode_flow_png(encode_flow_png(image, mx))
    assert np.array_equal(back, image) and back_mx == mx
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with pytest.raises(BadInputError, match=r"^f\.png: flow PNG lacks its stseg_max_flow text chunk$"):
        decode_flow_png(buf.getvalue(), "f.png")


def test_cache_round_trip_and_key_layout(tmp_path):
    frames = [np.roll(_texture(48, 64), shift=2 * t, axis=1) for t in range(4)]
    video = _video(frames)
    store = open_store(tmp_path)
    cache = FlowCache(store, "dis")
    first = list(frames_with_flow(video, build_flow("dis"), cache))
    assert store.list("flow") == [f"flow/dis/vid/{i:05d}.png" for i in range(4)]
    assert [s for s, *_ in first] == list(video.stems)
    assert all(np.array_equal(rgb, f) for (_, rgb, _, _), f in zip(first, frames, strict=True))
    # content moves right by 2 px a frame: forward flow points right (red-ish), the last frame's too
    for _, _, image, mx in first:
        dx = np.median(image_to_flow(image, mx)[8:-8, 8:-8, 0])
        assert dx == pytest.approx(2.0, abs=0.3)
    again = list(frames_with_flow(video, None, cache))  # no estimator: every flow image from the cache
    for (s1, _, i1, m1), (s2, _, i2, m2) in zip(first, again, strict=True):
        assert s1 == s2 and m1 == m2 and np.array_equal(i1, i2)


def test_uncached_without_estimator_and_unknown_method_are_bad_input(tmp_path):
    video = _video([_texture(16, 16)] * 2)
    with pytest.raises(BadInputError, match=r"^video vid: flow images are not all cached and no flow method"):
        list(frames_with_flow(video, None, FlowCache(open_store(tmp_path), "dis")))
    with pytest.raises(
        BadInputError,
        match=r"^unknown flow method 'pwc' "
        r"\(known: dis, raft, raft_large, raft_small\)$",
    ):
        build_flow("pwc")


def test_raft_weights_come_only_from_a_checkpoint(tmp_path):
    import torch
    from torchvision.models.optical_flow import raft_large, raft_small

    torch.manual_seed(0)
    reference = raft_small(weights=None).eval()
    ckpt = tmp_path / "raft_small.pt"
    torch.save(reference.state_dict(), ckpt)
    a, b = _texture(128, 128, 1), _texture(128, 128, 2)
    est = build_flow("raft_small", checkpoint=str(ckpt), device="cpu", num_flow_updates=2)
    with torch.inference_mode():
        ta = torch.from_numpy(a).permute(2, 0, 1).float()[None] / 127.5 - 1
        tb = torch.from_numpy(b).permute(2, 0, 1).float()[None] / 127.5 - 1
        direct = reference(ta, tb, num_flow_updates=2)[-1][0].permute(1, 2, 0).numpy()
    assert np.array_equal(est(a, b), direct)
    assert est(a[:50, :70], b[:50, :70]).shape == (50, 70, 2)  # small frames are padded up to RAFT's minimum
    torch.save(raft_large(weights=None).state_dict(), tmp_path / "large.pt")
    with pytest.raises(BadInputError, match=r"large\.pt: does not fit model raft_small: missing keys"):
        build_flow("raft_small", checkpoint=str(tmp_path / "large.pt"), device="cpu")
    with pytest.raises(MissingArtifactError, match=r"^checkpoint .*nope\.pt: not found$"):
        build_flow("raft_large", checkpoint=str(tmp_path / "nope.pt"), device="cpu")


def test_raft_without_checkpoint_uses_torchvisions_file_in_the_torch_cache(tmp_path, monkeypatch):
    import torch
    from torchvision.models.optical_flow import raft_large

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(
        MissingArtifactError,
        match=r"^raft_large: no flow_checkpoint given and torchvision's "
        r"weights are not in the torch cache \(.*/hub/checkpoints/"
        r"raft_large_C_T_SKHT_V2-ff5fadd5\.pth\)",
    ):
        build_flow("raft", device="cpu")
    torch.manual_seed(1)
    released = raft_large(weights=None).state_dict()
    (tmp_path / "hub/checkpoints").mkdir(parents=True)
    torch.save(released, tmp_path / "hub/checkpoints/raft_large_C_T_SKHT_V2-ff5fadd5.pth")
    est = build_flow("raft", device="cpu")
    assert est.method == flow_method("raft") == "raft_large"  # the cache key: `raft` and `raft_large` share images
    assert all(torch.equal(v, released[k]) for k, v in est.net.state_dict().items())


def test_frame_count_must_match_stems():
    frames = [_texture(16, 16)] * 3
    video = VideoInput(
        name="short",
        stems=("a", "b", "c", "d"),
        height=16,
        width=16,
        first_labels=np.ones((16, 16), np.uint8),
        object_ids=(1,),
        frames=lambda: iter(frames),
    )
    with pytest.raises(BadInputError, match=r"^video short: 3 frames streamed for 4 stems$"):
        list(frames_with_flow(video, build_flow("dis")))
