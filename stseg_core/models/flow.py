"""Optical flow for TMO: RAFT (torchvision) or OpenCV DIS, RAFT's colour-wheel flow image, and its store cache.

Notation: a flow field is H×W×2 float32 (dx, dy) in pixels, from frame t to frame t+1 (a pixel at (x, y) in
frame t moves to (x + dx, y + dy) in t+1). A flow image is H×W×3 uint8 RGB in the standard colour-wheel
encoding (hue = direction, saturation = magnitude / max_flow), the form TMO's motion encoder takes.

Cache layout (shared by training and inference, in any store): `flow/<method>/<video>/<stem>.png` holds the
flow image from frame `stem` to the next frame (the last frame holds the reversed flow to its previous frame,
so every frame has one). Each PNG carries its normalising radius `max_flow` (pixels) in a `stseg_max_flow`
text chunk, so `image_to_flow` turns it back into a flow field in pixels (error ≲ 2 % of max_flow).
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stseg_core.errors import BadInputError, MissingArtifactError

if TYPE_CHECKING:
    from pathlib import Path

    from stseg_core.models.base import VideoInput
    from stseg_core.store import Store

FLOW_METHODS = ("dis", "raft", "raft_large", "raft_small")
"""Names accepted by `build_flow`; `raft` is `raft_large` (RAFT as TMO used it), and a cache key's `<method>`
is the estimator's own name (`dis`, `raft_large`, `raft_small`), so images of two methods never mix."""
_ALIASES = {"raft": "raft_large"}

_MAX_FLOW_KEY = "stseg_max_flow"


# ----------------------------------------------------------------------------------------------------------
# Colour wheel
# ----------------------------------------------------------------------------------------------------------

# Segment lengths of the Middlebury colour wheel (Baker et al. 2011): red→yellow, yellow→green, green→cyan,
# cyan→blue, blue→magenta, magenta→red; 55 hues in all, more of them where the eye separates hues better.
_SEGMENTS = (15, 6, 4, 11, 13, 6)
# Per segment: (channel at 255 throughout, channel that ramps, does it ramp up?), red→…→red
_PLAN = ((0, 1, True), (1, 0, False), (1, 2, True), (2, 1, False), (2, 0, True), (0, 2, False))


def _ramp(n: int) -> np.ndarray:
    """The n wheel steps of a rising ramp, 0…255 integers as RAFT's `make_colorwheel` floors them."""
    return np.floor(255.0 * np.arange(n) / n)


def _colour_wheel() -> np.ndarray:
    """(55, 3) float64 wheel entries, integers in 0…255; every entry has one channel at 255 and one at 0."""
    segments = []
    for n, (full, ramp, up) in zip(_SEGMENTS, _PLAN, strict=True):
        seg = np.zeros((n, 3))
        seg[:, full] = 255.0
        seg[:, ramp] = _ramp(n) if up else 255.0 - _ramp(n)
        segments.append(seg)
    return np.concatenate(segments)


_WHEEL = _colour_wheel()


def flow_to_image(flow: np.ndarray, max_flow: float | None = None) -> tuple[np.ndarray, float]:
    """Flow field (H×W×2, pixels) → (colour-wheel RGB uint8 H×W×3, the max_flow used).

    RAFT's visualisation (`core/utils/flow_viz.py: flow_to_image`, what TMO's flow images were made with):
    the field is divided by max_flow (+ float64 eps), hue = direction interpolated between the two nearest wheel
    entries, saturation = relative speed, channels floored to 8 bits. `max_flow` None = the field's largest
    magnitude (RAFT's per-image normalisation); a given smaller one darkens the faster pixels to 0.75× their hue
    as RAFT does for out-of-range flow.
    """
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise BadInputError(f"flow must be HxWx2, got shape {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    if max_flow is None:  # in the field's own precision, as RAFT (so its fastest pixel may land just past 1)
        max_flow = float(np.sqrt(np.square(u) + np.square(v)).max(initial=0.0))
    scale = float(max_flow) + float(np.finfo(float).eps)
    u, v = u.astype(np.float64) / scale, v.astype(np.float64) / scale
    rad = np.sqrt(u * u + v * v)[..., None]
    n = len(_WHEEL)
    pos = (np.arctan2(-v, -u) / np.pi + 1.0) / 2.0 * (n - 1) + 1.0  # 1-based as RAFT; +x motion lands on red
    k0 = np.floor(pos).astype(np.int64)
    frac = (pos - k0)[..., None]
    col = ((1.0 - frac) * _WHEEL[k0 - 1] + frac * _WHEEL[k0 % n]) / 255.0
    col = np.where(rad <= 1.0, 1.0 - rad * (1.0 - col), 0.75 * col)
    return np.floor(255.0 * col).astype(np.uint8), float(max_flow)


# Each wheel segment: (channel at 1, channel at 0, first wheel position, length, does the third channel rise?)
_SEGMENT_TABLE = tuple(
    (full, 3 - full - ramp, start, n, up)
    for n, (full, ramp, up), start in zip(_SEGMENTS, _PLAN, np.cumsum((0, *_SEGMENTS[:-1])).tolist(), strict=True)
)


def image_to_flow(image: np.ndarray, max_flow: float) -> np.ndarray:
    """Colour-wheel RGB (H×W×3 uint8) + its max_flow → flow field H×W×2 float32 in pixels.

    Inverts `flow_to_image` in closed form: the smallest channel gives the magnitude (every wheel hue has a
    zero channel); which channels are full and empty give the wheel segment, the third channel the position
    in it (through the segment's floored ramp), hence the direction. Accuracy is set by 8-bit flooring:
    magnitude to about max_flow/255, direction worse for very slow pixels, so the vector error stays within
    about 2 % of max_flow.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadInputError(f"flow image must be HxWx3 uint8, got shape {image.shape} dtype {image.dtype}")
    col = (image.astype(np.float64) + 0.5) / 255.0  # centre of the floored bin
    rad = np.clip(1.0 - col.min(axis=2), 0.0, 1.0)
    safe = np.maximum(rad, 1e-6)[..., None]
    hue = np.clip(1.0 - (1.0 - col) / safe, 0.0, 1.0)
    full = hue.argmax(axis=2)
    zero = hue.argmin(axis=2)
    zero = np.where(zero == full, (full + 1) % 3, zero)  # grey pixels (no motion): any valid segment
    mid = 3 - full - zero
    hi = np.take_along_axis(hue, full[..., None], 2)[..., 0]
    lo = np.take_along_axis(hue, zero[..., None], 2)[..., 0]
    m = (np.take_along_axis(hue, mid[..., None], 2)[..., 0] - lo) / np.maximum(hi - lo, 1e-6)
    pos = np.zeros(rad.shape)
    for f, z, start, length, rises in _SEGMENT_TABLE:
        sel = (full == f) & (zero == z)
        steps = np.append(_ramp(length) / 255.0, 1.0)
        pos[sel] = start + np.interp(m[sel] if rises else 1.0 - m[sel], steps, np.arange(length + 1))
    n = len(_WHEEL)
    # positions (n-1, n) are never written (the wheel's seam sits at angle ±π): snap them to either end
    pos = np.where(pos > n - 0.5, 0.0, np.minimum(pos, n - 1))
    angle = (pos / (n - 1) * 2.0 - 1.0) * np.pi  # = arctan2(-v, -u)
    rad = np.where(image.min(axis=2) == 255, 0.0, rad)  # white: no motion
    mag = rad * float(max_flow)
    return np.stack([-mag * np.cos(angle), -mag * np.sin(angle)], axis=-1).astype(np.float32)


def encode_flow_png(image: np.ndarray, max_flow: float) -> bytes:
    """Flow image → PNG bytes carrying `max_flow` in a text chunk (the cache's file format)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(_MAX_FLOW_KEY, repr(float(max_flow)))
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", pnginfo=info, compress_level=1)
    return buf.getvalue()


def decode_flow_png(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, float]:
    """PNG bytes from `encode_flow_png` → (flow image H×W×3 uint8, max_flow)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadInputError(f"{name}: unreadable flow PNG ({err})") from None
    if img.mode != "RGB":
        raise BadInputError(f"{name}: flow PNG must be RGB, got mode {img.mode}")
    text = getattr(img, "text", {}) or {}
    if _MAX_FLOW_KEY not in text:
        raise BadInputError(f"{name}: flow PNG lacks its {_MAX_FLOW_KEY} text chunk")
    try:
        max_flow = float(text[_MAX_FLOW_KEY])
    except ValueError:
        raise BadInputError(f"{name}: {_MAX_FLOW_KEY}={text[_MAX_FLOW_KEY]!r} is not a number") from None
    return np.asarray(img, dtype=np.uint8), max_flow


# ----------------------------------------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------------------------------------


class FlowEstimator(ABC):
    """Dense optical flow between two RGB frames of one size."""

    method: str = ""

    @abstractmethod
    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 RGB, H×W×3 uint8 RGB → flow from a to b, H×W×2 float32 pixels."""


_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*


class DISFlow(FlowEstimator):
    """OpenCV's Dense Inverse Search: no weights, CPU, ~10 ms per 480p pair on the medium preset."""

    method = "dis"

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise BadInputError(f"DIS preset {preset!r} is not one of {', '.join(_DIS_PRESETS)}")
        self.preset = preset

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        import cv2

        _check_pair(frame_a, frame_b)
        dis = cv2.DISOpticalFlow.create(_DIS_PRESETS[self.preset])
        ga = cv2.cvtColor(frame_a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(frame_b, cv2.COLOR_RGB2GRAY)
        # The output array None (OpenCV allocates it) is missing from OpenCV's stubs.
        flow = dis.calc(ga, gb, None)  # type: ignore[call-overload]
        return np.asarray(flow).astype(np.float32)


class RAFTFlow(FlowEstimator):
    """torchvision's RAFT (`raft_large` / `raft_small` architecture), never downloading.

    Weights: `checkpoint` (a store URI: the torchvision state dict or `{"model": state_dict}`), else
    torchvision's own release file already in the torch cache (`$TORCH_HOME/hub/checkpoints/`, where the tmo
    image bakes `raft_large_C_T_SKHT_V2-ff5fadd5.pth`); both loaded strictly; neither present is an error, never
    random weights. Frames are edge-padded to multiples of 8 (RAFT's 1/8 feature grid) and to at least 128 px
    (its correlation pyramid's minimum), and the flow cropped back.
    """

    def __init__(
        self,
        arch: str = "raft_large",
        checkpoint: str | None = None,
        device: str | None = None,
        num_flow_updates: int = 12,
    ) -> None:
        from torchvision.models import optical_flow

        from stseg_core.models.checkpoint import load_checkpoint
        from stseg_core.models.device import pick_device

        if arch not in ("raft_large", "raft_small"):
            raise BadInputError(f"RAFT architecture {arch!r} is not raft_large or raft_small")
        self.method = arch
        self.device = pick_device(device)
        self.num_flow_updates = int(num_flow_updates)
        net = getattr(optical_flow, arch)(weights=None, progress=False)
        load_checkpoint(net, checkpoint or torch_cache_weights(arch).as_uri(), model=arch)
        self.net = net.to(self.device).eval()

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        import torch

        _check_pair(frame_a, frame_b)
        h, w = frame_a.shape[:2]
        ph, pw = max(h + (-h) % 8, 128) - h, max(w + (-w) % 8, 128) - w

        def prep(frame: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(frame).permute(2, 0, 1).float().div(127.5).sub(1.0)[None]
            return torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate").to(self.device)

        with torch.inference_mode():
            flows = self.net(prep(frame_a), prep(frame_b), num_flow_updates=self.num_flow_updates)
        flow: np.ndarray = flows[-1][0, :, :h, :w].permute(1, 2, 0).float().cpu().numpy()
        return flow


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    for f in (a, b):
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise BadInputError(f"flow input must be HxWx3 uint8 RGB, got shape {f.shape} dtype {f.dtype}")
    if a.shape != b.shape:
        raise BadInputError(f"flow inputs differ in size: {a.shape} vs {b.shape}")


def torch_cache_weights(arch: str) -> Path:
    """Path of torchvision's released weights for RAFT `arch` in the torch cache; MissingArtifactError if absent."""
    from pathlib import Path
    from urllib.parse import urlparse

    import torch
    from torchvision.models import optical_flow

    weights = {
        "raft_large": optical_flow.Raft_Large_Weights.C_T_SKHT_V2,
        "raft_small": optical_flow.Raft_Small_Weights.C_T_V2,
    }[arch]
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not path.is_file():
        raise MissingArtifactError(
            f"{arch}: no flow_checkpoint given and torchvision's weights are not in the torch "
            f"cache ({path}); pass flow_checkpoint=<URI> (the tmo image holds them)"
        )
    return path


def flow_method(name: str) -> str:
    """The estimator's own name for method `name` (`raft` → `raft_large`): what a cache key holds."""
    if name not in FLOW_METHODS:
        raise BadInputError(f"unknown flow method {name!r} (known: {', '.join(FLOW_METHODS)})")
    return _ALIASES.get(name, name)


def build_flow(
    method: str = "dis", checkpoint: str | None = None, device: str | None = None, **options: Any
) -> FlowEstimator:
    """`dis` (CPU, no weights) or `raft` (= `raft_large`) / `raft_small` (weights: `checkpoint`, a store URI,
    else torchvision's file in the torch cache)."""
    method = flow_method(method)
    if method == "dis":
        return DISFlow(**options)
    return RAFTFlow(arch=method, checkpoint=checkpoint, device=device, **options)


# ----------------------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowCache:
    """Flow images of one method in a store, under `flow/<method>/<video>/<stem>.png`."""

    store: Store
    method: str

    def key(self, video: str, stem: str) -> str:
        return f"flow/{self.method}/{video}/{stem}.png"

    def get(self, video: str, stem: str) -> tuple[np.ndarray, float] | None:
        """(flow image, max_flow), or None when not cached."""
        key = self.key(video, stem)
        if not self.store.exists(key):
            return None
        return decode_flow_png(self.store.read_bytes(key), self.store.uri(key))

    def put(self, video: str, stem: str, image: np.ndarray, max_flow: float) -> None:
        self.store.write_bytes(self.key(video, stem), encode_flow_png(image, max_flow))


def frames_with_flow(
    video: VideoInput, estimator: FlowEstimator | None, cache: FlowCache | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray, float]]:
    """Yield (stem, RGB frame, flow image, max_flow) per frame, in one pass over `video.frames()`.

    Flow images come from the cache when it holds the whole video, else they are computed (and cached).
    Frame t's image is the flow t→t+1; the last frame's is the negated flow T−1→T−2; a one-frame video gets
    zero flow. Two frames are in memory at a time and each is decoded once. `estimator` may be None only
    when the cache is complete (a training set prepared in advance).
    """
    stems = video.stems
    if cache is not None:
        have = set(cache.store.list(f"flow/{cache.method}/{video.name}/"))
        if all(cache.key(video.name, s) in have for s in stems):
            count = 0
            for rgb in video.frames():
                if count == len(stems):
                    raise BadInputError(f"video {video.name}: more frames streamed than its {len(stems)} stems")
                cached = cache.get(video.name, stems[count])
                if cached is None:  # listed a moment ago: removed since
                    raise MissingArtifactError(
                        f"{cache.store.uri(cache.key(video.name, stems[count]))}: flow image vanished while reading"
                    )
                yield stems[count], rgb, *cached
                count += 1
            _check_count(video, count)
            return
    if estimator is None:
        raise BadInputError(f"video {video.name}: flow images are not all cached and no flow method was given")
    if cache is not None and cache.method != estimator.method:
        raise BadInputError(f"flow cache is for {cache.method!r} but the estimator is {estimator.method!r}")
    frames = video.frames()
    prev = next(frames, None)
    if prev is None:
        _check_count(video, 0)
        return
    before, count = None, 1
    for frame in frames:
        if count == len(stems):
            raise BadInputError(f"video {video.name}: more frames streamed than its {len(stems)} stems")
        yield stems[count - 1], prev, *_store(cache, video.name, stems[count - 1], estimator(prev, frame))
        before, prev, count = prev, frame, count + 1
    _check_count(video, count)
    flow = -estimator(prev, before) if before is not None else np.zeros((*prev.shape[:2], 2), np.float32)
    yield stems[-1], prev, *_store(cache, video.name, stems[-1], flow)


def _check_count(video: VideoInput, count: int) -> None:
    if count != video.num_frames:
        raise BadInputError(f"video {video.name}: {count} frames streamed for {video.num_frames} stems")


def _store(cache: FlowCache | None, video: str, stem: str, flow: np.ndarray) -> tuple[np.ndarray, float]:
    img, mx = flow_to_image(flow)
    if cache is not None:
        cache.put(video, stem, img, mx)
    return img, mx
