"""Synthetic MOSE-like benchmark: textured objects with exact ground truth and MOSE's hard cases, from a seed.

Notation: H×W frame, T frames, K objects (ids 1…K). Positions are screen pixels (x right, y down). An object
is a closed radial curve r(θ) = R·s(t)·(1 + Σₘ aₘ(t)·cos(kₘθ + φₘ(t))) rotated by α(t) and filled with its
own texture, which is mapped through the same rotation and scale, so the texture moves with the object and a
flow tracker can follow it. Objects are painted back to front (their depth order), then the id-0 occluder
(a full-height textured pillar that moves with the camera), then sensor noise.

Hard cases (each drawn per video with its rate in `SynthConfig`; 0 turns it off, 1 forces it):
- occlusion: an object is steered onto another one (in front of it) for several frames;
- disappearance: an object leaves the frame, or walks fully behind the pillar, for many frames, then returns;
- distractors: a crowd of 2+ objects with the same shape and texture (colour jitter only) and different ids;
- small_objects: an object covering < 1 % of the frame;
- camera_motion: the background (and the objects with it) pans smoothly;
- deformation: shape harmonics and scale change over time (scale up to ~2×);
- textured_background: multi-octave noise and clutter instead of a smooth gradient.
`meta.json` records both what was planned and what the rendered ground truth measured (visible and in-frame
pixels per object and frame), so every hard case can be checked from the data.

Dataset layout written by `generate_dataset(root, config)`::

    root/meta.json                     config, layout, per split per video: hard cases and on which frames
    root/train/JPEGImages/<video>/00000.jpg …   root/train/Annotations/<video>/00000.png …  (every frame)
    root/valid/JPEGImages/…            root/valid/Annotations/<video>/00000.png  (first frame only)
    root/valid_gt/Annotations/<video>/00000.png …  (every frame: the ground truth for J&F)
    root/test/…, root/test_gt/…        as valid

Per video, `meta.json` → `splits.<split>.<video>` holds: `frames`, `object_ids`, `objects` {id: shape, crowd,
small, deforms}, `present` (hard cases measured in this video), `hard_cases` {`occlusion`: frames where an object
shows < 75 % of its in-frame pixels because of other objects, per object, plus the planned event;
`disappearance`: [{object, absent: [first, last] frame, frames, cause: out_of_frame | behind_occluder |
behind_object}]; `distractors`: [[ids of one crowd]]; `small_objects`: ids never above 1 % of the frame;
`camera_motion`: {max_shift_px, offsets per frame} or null; `deformation`: {objects, in_frame_px_range};
`textured_background`: bool}, and `visible_px` / `in_frame_px`: {id: pixel count per frame}.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from stseg_core.data.labels import encode_label_png
from stseg_core.data.mose import ANNOTATIONS_DIR, FRAMES_DIR, encode_jpeg, frame_stem
from stseg_core.errors import BadInputError
from stseg_core.store import Store, open_store

SPLITS = ("train", "valid", "test")
HARD_CASES = (
    "occlusion", "disappearance", "distractors", "small_objects", "camera_motion", "deformation",
    "textured_background",
)
META_FILE = "meta.json"
GT_SUFFIX = "_gt"
OCCLUDED_BELOW = 0.75
"""An object counts as occluded on a frame when less than this share of its in-frame pixels is visible."""
SMALL_FRACTION = 0.01
"""A small object covers less than this share of the frame (MOSE's small-object notion)."""
_SPLIT_INDEX = {name: i for i, name in enumerate(SPLITS)}
_POLY_POINTS = 48
_SHIFT = 4  # fixed-point bits for cv2.fillPoly: sub-pixel object motion


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Rates are per-video probabilities in [0, 1] that a hard case is planned."""

    seed: int = 0
    height: int = 480
    width: int = 854
    min_frames: int = 30
    max_frames: int = 120
    min_objects: int = 1
    max_objects: int = 6
    videos: int = 4
    """Videos per split."""
    occlusion: float = 0.7
    disappearance: float = 0.5
    distractors: float = 0.4
    small_objects: float = 0.4
    camera_motion: float = 0.6
    deformation: float = 0.6
    textured_background: float = 0.8
    noise: float = 3.0
    """Sensor noise standard deviation, grey levels."""
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise BadInputError(f"synth size {self.height}x{self.width}: height and width must be ≥ 32")
        if not 2 <= self.min_frames <= self.max_frames:
            raise BadInputError(f"synth frames {self.min_frames}-{self.max_frames}: need 2 ≤ min ≤ max")
        if not 1 <= self.min_objects <= self.max_objects <= 255:
            raise BadInputError(f"synth objects {self.min_objects}-{self.max_objects}: need 1 ≤ min ≤ max ≤ 255")
        if self.videos < 0:
            raise BadInputError(f"synth videos per split must be ≥ 0, got {self.videos}")
        for case in HARD_CASES:
            rate = getattr(self, case)
            if not 0.0 <= rate <= 1.0:
                raise BadInputError(f"synth rate {case}={rate}: must be in [0, 1]")
        if self.noise < 0 or not 1 <= self.jpeg_quality <= 100:
            raise BadInputError("synth noise must be ≥ 0 and jpeg_quality in 1…100")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> SynthConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


# ---- planning ---------------------------------------------------------------------------------------------------

_SHAPES = {  # family → [(harmonic k, amplitude)]
    "ellipse": [(2, 0.3)],
    "blob": [(2, 0.15), (3, 0.12), (5, 0.05)],
    "star": [(5, 0.25), (2, 0.08)],
    "box": [(4, 0.14), (8, 0.04)],
}


@dataclass
class _Object:
    oid: int
    shape: str
    radius: float  # base radius R, px
    ks: np.ndarray  # (M,) harmonic numbers
    amp: np.ndarray  # (T, M) amplitudes aₘ(t)
    phase: np.ndarray  # (T, M) phases φₘ(t)
    scale: np.ndarray  # (T,) s(t)
    angle: np.ndarray  # (T,) α(t), radians
    pos: np.ndarray  # (T, 2) centre, screen px
    texture: np.ndarray  # (S, S, 3) uint8 RGB
    crowd: int | None = None
    small: bool = False
    deforms: bool = False

    def reach(self) -> float:
        """Largest distance from the centre any boundary point reaches, px (over the whole video)."""
        return float(self.radius * np.max(self.scale) * (1.0 + np.max(np.abs(self.amp).sum(axis=1))))


@dataclass
class _Pillar:
    x_world: float  # centre x in background-canvas coordinates minus the margin, px
    width: int
    texture: np.ndarray  # (canvas height, width, 3) uint8


@dataclass
class _Video:
    name: str
    frames: int
    objects: list[_Object]  # in depth order, back to front
    camera: np.ndarray  # (T, 2) int background offset, px
    margin: tuple[int, int]  # (x, y) canvas margin around the frame
    canvas: np.ndarray  # (H + 2my, W + 2mx, 3) uint8 background
    pillar: _Pillar | None
    noise: tuple[np.ndarray, np.ndarray] | None  # (+, −) uint8 noise fields, 16 px larger than the frame
    noise_offsets: np.ndarray  # (T, 2) int
    planned: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)


def video_name(seed: int, split: str, index: int) -> str:
    """MOSE-style 8-hex-digit name, stable per (seed, split, index)."""
    return hashlib.sha1(f"stseg-synth:{seed}:{split}:{index}".encode()).hexdigest()[:8]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int) -> np.ndarray:
    """Value noise in [-1, 1] with feature size ≈ `cell` px: a small random grid upscaled bicubically."""
    import cv2

    gh, gw = max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1)
    grid = rng.uniform(-1.0, 1.0, (gh, gw, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _random_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))
    return np.array([r, g, b], np.float32) * 255.0


def _object_texture(rng: np.random.Generator, size: int, small: bool) -> np.ndarray:
    """Two-colour stripes + blotches + fine grain: distinctive enough to track, not a trivial colour key."""
    c1 = _random_colour(rng, (0.35, 0.9), (0.35, 0.95))
    c2 = _random_colour(rng, (0.2, 0.9), (0.25, 0.95))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    beta = rng.uniform(0, math.pi)
    freq = rng.uniform(0.15, 0.45) if not small else 0.0
    stripes = np.sin(freq * (xx * math.cos(beta) + yy * math.sin(beta)) + rng.uniform(0, 6.3))
    blotch = _smooth_noise(rng, size, size, max(3.0, size / 4), 1)[..., 0]
    t = np.clip(0.5 + 0.3 * stripes + 0.6 * blotch, 0.0, 1.0)[..., None]
    grain = _smooth_noise(rng, size, size, 2.0, 3) * 12.0
    return np.clip(c1 * (1 - t) + c2 * t + grain, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, h: int, w: int, textured: bool) -> np.ndarray:
    import cv2

    c1 = _random_colour(rng, (0.05, 0.5), (0.25, 0.8))
    c2 = _random_colour(rng, (0.05, 0.5), (0.25, 0.8))
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = c1 * (1 - ramp) + c2 * ramp
    img = np.broadcast_to(img, (h, w, 3)).copy()
    if not textured:
        return np.clip(img + _smooth_noise(rng, h, w, max(h, w) / 4, 3) * 10.0, 0, 255).astype(np.uint8)
    unit = math.sqrt(h * w) / 640.0
    for cell, gain in ((96 * unit, 45.0), (24 * unit, 28.0), (6 * unit, 14.0)):
        img += _smooth_noise(rng, h, w, max(2.0, cell), 3) * gain
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(8, 20))):  # clutter: hard edges that are not objects
        colour = tuple(int(c) for c in _random_colour(rng, (0.05, 0.6), (0.2, 0.9)))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(max(3, rng.uniform(0.02, 0.12) * math.sqrt(h * w)))
        if rng.uniform() < 0.5:
            cv2.rectangle(img, (cx, cy), (cx + size, cy + int(size * rng.uniform(0.3, 2))), colour, -1)
        else:
            cv2.circle(img, (cx, cy), size // 2, colour, -1)
    return img


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect a path into [lo, hi] (objects bounce off the borders instead of leaving by accident)."""
    span = max(hi - lo, 1e-6)
    y = np.mod(x - lo, 2 * span)
    return lo + span - np.abs(y - span)


def _ramp_weight(t: np.ndarray, t0: int, t1: int, ramp: int) -> np.ndarray:
    """0 outside, smooth step up over [t0 − ramp, t0], 1 on [t0, t1], smooth step down over [t1, t1 + ramp]."""
    up = np.clip((t - (t0 - ramp)) / ramp, 0, 1)
    down = np.clip(((t1 + ramp) - t) / ramp, 0, 1)
    w = np.minimum(up, down)
    return w * w * (3 - 2 * w)


def _wobble(rng: np.random.Generator, t: np.ndarray, amp: float, dims: int) -> np.ndarray:
    out = np.zeros((len(t), dims))
    for _ in range(2):
        freq = rng.uniform(0.02, 0.12, dims)
        out += amp * rng.uniform(0.3, 1.0, dims) * np.sin(freq * t[:, None] + rng.uniform(0, 6.3, dims))
    return out


def _plan_video(cfg: SynthConfig, split: str, index: int, attempt: int) -> _Video:
    rng = np.random.default_rng([cfg.seed, _SPLIT_INDEX[split], index, attempt])
    h, w = cfg.height, cfg.width
    area = h * w
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    t = np.arange(n, dtype=np.float64)
    flags = {case: bool(rng.uniform() < getattr(cfg, case)) for case in HARD_CASES}
    long_enough = n >= 16  # timed events need room for a ramp in, a hold and a ramp out
    flags["occlusion"] &= long_enough and cfg.max_objects >= 2
    flags["disappearance"] &= long_enough
    flags["distractors"] &= cfg.max_objects >= 2
    k = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    # Enough objects for every planned case: two for an occlusion, one more to disappear, one more to be small.
    needed = max(2 if flags["distractors"] else 1,
                 (2 if flags["occlusion"] else 0) + (1 if flags["disappearance"] else 0)) + int(flags["small_objects"])
    k = max(k, min(needed, cfg.max_objects))

    # Camera: a smooth pan plus sway; the canvas is larger than the frame by the largest offset.
    if flags["camera_motion"]:
        pan = rng.uniform(-1, 1, 2) * np.array([0.10 * w, 0.04 * h]) * t[:, None] / max(n - 1, 1)
        cam = pan + _wobble(rng, t, 0.03 * min(h, w), 2)
        cam -= cam[0]
    else:
        cam = np.zeros((n, 2))
    cam = np.round(cam).astype(np.int64)
    mx, my = int(np.abs(cam[:, 0]).max()) + 1, int(np.abs(cam[:, 1]).max()) + 1
    canvas = _background(rng, h + 2 * my, w + 2 * mx, flags["textured_background"])

    # Objects: shape, size, texture; crowds share shape and texture.
    crowd_size = int(rng.integers(2, k + 1)) if flags["distractors"] else 0
    if flags["small_objects"] and crowd_size >= k:
        crowd_size = max(0, k - 1) if k - 1 >= 2 else 0
    small_id = k if flags["small_objects"] else None
    objects: list[_Object] = []
    crowd_template = None
    for oid in range(1, k + 1):
        in_crowd = oid <= crowd_size
        small = oid == small_id
        deforms = flags["deformation"] and not small and rng.uniform() < 0.7
        if in_crowd and crowd_template is not None:
            shape, base_amp, radius0, tex0, deforms = crowd_template
            radius = radius0 * rng.uniform(0.92, 1.08)
            jitter = rng.uniform(-10, 10, 3)
            texture = np.clip(tex0.astype(np.float32) + jitter, 0, 255).astype(np.uint8)
        else:
            shape = str(rng.choice(list(_SHAPES)))
            base_amp = np.array([a * rng.uniform(0.7, 1.3) for _, a in _SHAPES[shape]])
            # Share of the frame: small < 1 %; herd members smaller than solo objects, as in MOSE's crowds.
            frac = rng.uniform(0.002, 0.004) if small else rng.uniform(0.006, 0.02) if in_crowd else rng.uniform(
                0.012, 0.045)
            radius = max(2.0, math.sqrt(frac * area / math.pi))
            texture = None
        ks = np.array([kk for kk, _ in _SHAPES[shape]], np.float64)
        d = 0.45 if deforms else 0.08
        amp = base_amp[None, :] * (1 + d * np.sin(rng.uniform(0.05, 0.2, len(ks)) * t[:, None]
                                                  + rng.uniform(0, 6.3, len(ks))))
        phase = rng.uniform(0, 6.3, len(ks))[None, :] + (rng.uniform(-0.08, 0.08, len(ks)) if deforms else
                                                          rng.uniform(-0.01, 0.01, len(ks)))[None, :] * t[:, None]
        if deforms:  # scale change: approach or recede by up to ~2×, plus breathing
            s_end = math.exp(rng.uniform(0.45, 0.75) * rng.choice([-1.0, 1.0]))
            scale = np.exp(np.log(s_end) * t / max(n - 1, 1)) * (1 + 0.08 * np.sin(0.15 * t + rng.uniform(0, 6)))
        else:
            scale = 1 + 0.05 * np.sin(rng.uniform(0.03, 0.1) * t + rng.uniform(0, 6.3))
        angle = rng.uniform(0, 6.3) + rng.uniform(-0.04, 0.04) * t
        local_reach = radius * (1 + float(np.abs(amp).sum(axis=1).max()))
        if texture is None:
            texture = _object_texture(rng, 2 * math.ceil(local_reach) + 4, small)
        if in_crowd and crowd_template is None:
            crowd_template = (shape, base_amp, radius, texture, deforms)
        objects.append(_Object(oid, shape, radius, ks, amp, phase, scale, angle, np.zeros((n, 2)), texture,
                               crowd=0 if in_crowd else None, small=small, deforms=deforms))

    # Base paths: spread-out starts, drift + sway, camera-induced shift, folded into the frame. The herd is one
    # disc holding its members on a ring wide enough that neighbours do not overlap at the start.
    crowd_reach = max((o.reach() for o in objects if o.crowd is not None), default=0.0)
    ring = 1.15 * crowd_reach / math.sin(math.pi / crowd_size) if crowd_size >= 2 else 0.0
    discs = ([ring + crowd_reach] if crowd_size >= 2 else []) + [o.reach() for o in objects if o.crowd is None]
    centres = _spread_points(rng, discs, w, h)
    herd_centre, solo = (centres[0], iter(centres[1:])) if crowd_size >= 2 else (None, iter(centres))
    herd_heading = rng.uniform(0, 2 * math.pi)
    for i, obj in enumerate(objects):
        speed = rng.uniform(0.002, 0.008) * math.sqrt(area)
        if obj.crowd is not None:  # the herd drifts together; members orbit its centre, alternating direction
            phi = 2 * math.pi * i / crowd_size + 0.02 * t * (1 if i % 2 else -1)
            start = herd_centre + ring * np.stack([np.cos(phi), np.sin(phi)], 1)
            heading, speed = herd_heading, 0.7 * speed
        else:
            start = np.broadcast_to(next(solo), (n, 2))
            heading = rng.uniform(0, 2 * math.pi)
        drift = np.array([math.cos(heading), math.sin(heading)]) * speed * t[:, None]
        sway = _wobble(rng, t, 0.04 * math.sqrt(area), 2)
        path = start + drift + sway - sway[0] - (cam - cam[0])
        r = min(obj.reach(), 0.45 * min(w, h))
        obj.pos = np.stack([_fold(path[:, 0], r, w - r), _fold(path[:, 1], r, h - r)], 1)

    planned: dict = {"occlusion": [], "disappearance": []}
    ramp = max(3, round(n * 0.1))
    pillar = None
    if flags["disappearance"]:
        candidates = [o for o in objects if not o.small] or objects
        obj = candidates[int(rng.integers(0, len(candidates)))]
        hold = max(4, round(n * rng.uniform(0.15, 0.3)))
        t0 = int(rng.integers(max(ramp + 1, round(0.2 * n)), max(ramp + 2, n - hold - ramp - 3)))
        t1 = min(t0 + hold, n - ramp - 2)
        reach = obj.reach()
        behind = reach * 2 + 6 <= w / 3 and rng.uniform() < 0.5
        tt = np.arange(n)
        wgt = _ramp_weight(tt, t0, t1, ramp)[:, None]
        if behind:
            width = math.ceil(2 * reach + 8)
            x_screen = float(rng.uniform(0.25, 0.75) * w)
            mid = (t0 + t1) // 2
            x_world = x_screen + cam[mid, 0]
            pillar = _Pillar(x_world, width, _pillar_texture(rng, h + 2 * my, width))
            target = np.stack([x_world - cam[:, 0], obj.pos[:, 1]], 1)
        else:
            p = obj.pos[t0]
            dists = {"left": p[0], "right": w - p[0], "top": p[1], "bottom": h - p[1]}
            edge = min(dists, key=dists.get)
            out = reach + 4
            target = obj.pos.copy()
            if edge in ("left", "right"):
                target[:, 0] = -out if edge == "left" else w + out
            else:
                target[:, 1] = -out if edge == "top" else h + out
        obj.pos = (1 - wgt) * obj.pos + wgt * target
        planned["disappearance"].append({"object": obj.oid, "cause": "behind_occluder" if behind else "out_of_frame",
                                         "frames": [t0, t1]})
    gone = {d["object"] for d in planned["disappearance"]}
    eligible = [o for o in objects if o.oid not in gone and not o.small]
    if len(eligible) < 2:  # too few objects (max_objects): keep the planned cases that fit
        eligible = [o for o in objects if o.oid not in gone]
    if flags["occlusion"] and len(eligible) >= 2:
        hold = max(4, round(n * rng.uniform(0.15, 0.3)))
        t0 = int(rng.integers(ramp + 1, max(ramp + 2, n - hold - ramp - 1)))
        t1 = min(t0 + hold, n - ramp - 1)
        back = eligible[int(rng.integers(0, len(eligible)))]
        # A front object of about the same size (mid-event) hides most of the back one without swallowing it.
        tm = (t0 + t1) // 2
        front = min((o for o in eligible if o is not back),
                    key=lambda o: (abs(o.radius * o.scale[tm] - back.radius * back.scale[tm]), o.oid))
        if front.radius * front.scale[tm] < back.radius * back.scale[tm]:
            back, front = front, back  # the larger one in front, so the target share can be hidden
        ang = rng.uniform(0, 2 * math.pi)
        offset = _occluding_offsets(back, front, t0, t1, ang, rng.uniform(0.6, 0.85))
        wgt = _ramp_weight(np.arange(n), t0, t1, ramp)[:, None]
        front.pos = (1 - wgt) * front.pos + wgt * (back.pos + offset)
        if objects.index(front) < objects.index(back):  # paint the occluder after its victim
            objects.remove(front)
            objects.insert(objects.index(back) + 1, front)
        planned["occlusion"].append({"object": back.oid, "by": front.oid, "frames": [t0, t1]})
    order = rng.permutation(len(objects))
    if not planned["occlusion"]:  # depth order: random, unless an occlusion already fixed who is in front
        objects = [objects[i] for i in order]
    planned["distractors"] = [sorted(o.oid for o in objects if o.crowd is not None)] if crowd_size >= 2 else []
    planned["small_objects"] = [o.oid for o in objects if o.small]
    planned["deformation"] = sorted(o.oid for o in objects if o.deforms)

    noise = None
    if cfg.noise > 0:
        field_ = rng.standard_normal((h + 16, w + 16, 3), dtype=np.float32) * np.float32(cfg.noise)
        noise = (np.clip(field_, 0, 255).astype(np.uint8), np.clip(-field_, 0, 255).astype(np.uint8))
    offsets = rng.integers(0, 17, (n, 2))
    return _Video(video_name(cfg.seed, split, index), n, objects, cam, (mx, my), canvas, pillar, noise, offsets,
                  planned, flags)


def _radius_at(obj: _Object, i: int, screen_angle: np.ndarray) -> np.ndarray:
    """Boundary distance from the centre of `obj` on frame i along screen directions (px)."""
    local = screen_angle - obj.angle[i]
    wave = (obj.amp[i][:, None] * np.cos(obj.ks[:, None] * local.ravel()[None, :] + obj.phase[i][:, None])).sum(0)
    return (obj.radius * obj.scale[i] * (1 + wave)).reshape(local.shape)


def _occluding_offsets(back: _Object, front: _Object, t0: int, t1: int, ang: float, cover: float) -> np.ndarray:
    """(T, 2) offsets of the front centre from the back centre that hide ≈ `cover` of the back object.

    Coverage is exact for these star-shaped objects: a point is inside iff its distance from the centre is below
    the boundary radius in its direction. Points sample the back object uniformly by area.
    """
    theta = np.linspace(0, 2 * np.pi, 32, endpoint=False)[:, None]
    u = np.sqrt((np.arange(8)[None, :] + 0.5) / 8)
    direction = np.array([math.cos(ang), math.sin(ang)])
    dists = np.zeros(back.pos.shape[0])
    hold = np.arange(t0, t1 + 1)
    for i in hold:
        rho = _radius_at(back, i, theta + back.angle[i]) * u  # (32, 8) sample radii, screen angle θ + α
        pts = np.stack([rho * np.cos(theta + back.angle[i]), rho * np.sin(theta + back.angle[i])], -1).reshape(-1, 2)
        span = back.reach() + front.reach()
        cands = np.linspace(0.0, span, 24)
        rel = pts[None, :, :] - cands[:, None, None] * direction  # (24, P, 2) relative to the front centre
        inside = np.hypot(rel[..., 0], rel[..., 1]) < _radius_at(front, i, np.arctan2(rel[..., 1], rel[..., 0]))
        dists[i] = cands[int(np.argmin(np.abs(inside.mean(axis=1) - cover)))]
    smooth = np.convolve(np.pad(dists[hold], 1, mode="edge"), np.ones(3) / 3, mode="valid")
    dists = np.interp(np.arange(len(dists)), hold, smooth)  # held constant through the ramps
    return dists[:, None] * direction


def _spread_points(rng: np.random.Generator, radii: list[float], w: int, h: int) -> np.ndarray:
    """Centres for discs of the given radii, each the best of 16 random candidates at keeping clear of the discs
    placed before it, so frame 0 shows every id."""
    pts: list[np.ndarray] = []
    for r in radii:
        lo = np.minimum([r, r], [w / 2, h / 2])
        cand = rng.uniform(lo, np.array([w, h]) - lo, (16, 2))
        if pts:
            gap = np.linalg.norm(cand[:, None, :] - np.array(pts)[None], axis=2) - np.array(radii[: len(pts)]) - r
            pts.append(cand[int(np.argmax(gap.min(axis=1)))])
        else:
            pts.append(cand[0])
    return np.array(pts)


def _pillar_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Bark-like vertical grain, so the pillar is clearly not background and has trackable texture."""
    c = _random_colour(rng, (0.1, 0.5), (0.2, 0.6))
    grain = _smooth_noise(rng, h, w, 3.0, 1) * 25 + _smooth_noise(rng, h // 8 + 2, w, 2.0, 1)[
        np.arange(h) // 8] * 30
    return np.clip(c + grain, 0, 255).astype(np.uint8)


# ---- rendering --------------------------------------------------------------------------------------------------

_THETA = np.linspace(0, 2 * np.pi, _POLY_POINTS, endpoint=False)
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)


def _histogram(labels: np.ndarray) -> np.ndarray:
    """(256,) int64 pixel count per id; OpenCV's histogram is ~4× faster than bincount and exact below 2²⁴ px."""
    import cv2

    if labels.size >= 1 << 24:
        return np.bincount(labels.ravel(), minlength=256)
    return cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def _render_frame(v: _Video, i: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Frame i → (RGB HxWx3 uint8, labels HxW uint8, and per id (256,): px inside the frame, visible before the
    pillar is drawn, visible in the end)."""
    import cv2

    mx, my = v.margin
    cx, cy = v.camera[i]
    frame = v.canvas[my + cy: my + cy + h, mx + cx: mx + cx + w].copy()
    labels = np.zeros((h, w), np.uint8)
    in_frame = np.zeros(256, np.int64)
    for obj in v.objects:
        r = obj.radius * obj.scale[i] * (1 + (obj.amp[i][:, None] * np.cos(obj.ks[:, None] * _THETA + obj.phase[i][
            :, None])).sum(axis=0))
        ca, sa = math.cos(obj.angle[i]), math.sin(obj.angle[i])
        lx, ly = r * _COS, r * _SIN
        px = obj.pos[i, 0] + ca * lx - sa * ly
        py = obj.pos[i, 1] + sa * lx + ca * ly
        x0, x1 = max(0, math.floor(px.min())), min(w, math.ceil(px.max()) + 1)
        y0, y1 = max(0, math.floor(py.min())), min(h, math.ceil(py.max()) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        pts = np.round(np.stack([px - x0, py - y0], 1) * (1 << _SHIFT)).astype(np.int32)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        count = int(cv2.countNonZero(mask))
        if count == 0:
            continue
        # Inverse map patch pixel → texture pixel: undo translation, rotation and scale.
        s = obj.scale[i]
        tc = (obj.texture.shape[1] - 1) / 2.0
        a = np.array([[ca, sa], [-sa, ca]]) / s
        b = a @ np.array([x0 - obj.pos[i, 0], y0 - obj.pos[i, 1]]) + tc
        m = np.hstack([a, b[:, None]]).astype(np.float64)
        patch = cv2.warpAffine(obj.texture, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        cv2.copyTo(patch, mask, frame[y0:y1, x0:x1])  # in place into the view: far faster than a numpy mask
        labels[y0:y1, x0:x1][mask.view(bool)] = obj.oid
        in_frame[obj.oid] = count
    before_pillar = _histogram(labels)
    if v.pillar is not None:
        xc = v.pillar.x_world - cx
        px0 = round(xc - v.pillar.width / 2)
        a0, a1 = max(0, px0), min(w, px0 + v.pillar.width)
        if a1 > a0:
            frame[:, a0:a1] = v.pillar.texture[my + cy: my + cy + h, a0 - px0: a1 - px0]
            labels[:, a0:a1] = 0
    if v.noise is not None:
        ox, oy = v.noise_offsets[i]
        plus, minus = v.noise
        frame = cv2.subtract(cv2.add(frame, plus[oy: oy + h, ox: ox + w]), minus[oy: oy + h, ox: ox + w])
    visible = _histogram(labels) if v.pillar is not None else before_pillar
    return frame, labels, in_frame, before_pillar, visible


def _first_frame_ok(v: _Video, h: int, w: int) -> bool:
    """Every id must be clearly visible in frame 0: the first annotation defines the object set."""
    _, _, in_frame, _, visible = _render_frame(v, 0, h, w)
    return all(visible[o.oid] >= max(3, 0.6 * in_frame[o.oid]) and in_frame[o.oid] > 0 for o in v.objects)


def plan_video(cfg: SynthConfig, split: str, index: int) -> _Video:
    """The deterministic plan of one video (re-drawn with the next attempt seed until frame 0 shows every id)."""
    if split not in _SPLIT_INDEX:
        raise BadInputError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    for attempt in range(50):
        v = _plan_video(cfg, split, index, attempt)
        if _first_frame_ok(v, cfg.height, cfg.width):
            return v
    raise BadInputError(f"synth video {split}/{index}: could not place {len(v.objects)} objects visibly in "
                        f"{cfg.height}x{cfg.width} (use a larger size or fewer objects)")


def render_video(cfg: SynthConfig, split: str, index: int):
    """Yield (RGB HxWx3 uint8, labels HxW uint8) per frame, and return the video's meta (generator return)."""
    v = plan_video(cfg, split, index)
    h, w = cfg.height, cfg.width
    ids = [o.oid for o in sorted(v.objects, key=lambda o: o.oid)]
    vis = np.zeros((v.frames, 256), np.int64)
    inf = np.zeros((v.frames, 256), np.int64)
    pre = np.zeros((v.frames, 256), np.int64)
    for i in range(v.frames):
        rgb, labels, inf[i], pre[i], vis[i] = _render_frame(v, i, h, w)
        yield rgb, labels
    return _measure(v, ids, vis[:, ids], inf[:, ids], pre[:, ids], h * w)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end] (inclusive) of every run of True."""
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(mask) - 1))
    return out


def _measure(v: _Video, ids: list[int], vis: np.ndarray, inf: np.ndarray, pre: np.ndarray, area: int) -> dict:
    """Meta for one video: the plan, plus every hard case as measured on the rendered ground truth."""
    n = v.frames
    occluded: dict[str, list[int]] = {}
    gaps = []
    for j, oid in enumerate(ids):
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(inf[:, j] > 0, pre[:, j] / np.maximum(inf[:, j], 1), 1.0)
        frames = [int(f) for f in np.flatnonzero(share < OCCLUDED_BELOW)]
        if frames:
            occluded[str(oid)] = frames
        for a, b in _runs(vis[:, j] == 0):
            if a == 0 or b == n - 1:
                continue  # disappearance = gone and back again within the video
            if np.all(inf[a:b + 1, j] == 0):
                cause = "out_of_frame"
            elif np.all(pre[a:b + 1, j] > 0):
                cause = "behind_occluder"
            else:
                cause = "behind_object"
            gaps.append({"object": oid, "absent": [a, b], "frames": b - a + 1, "cause": cause})
    small = [oid for j, oid in enumerate(ids) if 0 < vis[:, j].max() < SMALL_FRACTION * area]
    shift = np.abs(v.camera - v.camera[0]).max(axis=0) if n else np.zeros(2)
    area_range = {}
    for j, oid in enumerate(ids):
        full = inf[:, j][inf[:, j] > 0]
        if len(full):
            area_range[str(oid)] = [int(full.min()), int(full.max())]
    occ_frames = sorted({f for fr in occluded.values() for f in fr})
    hard = {
        "occlusion": {"frames": occ_frames, "objects": occluded, "planned": v.planned["occlusion"]},
        "disappearance": gaps,
        "distractors": v.planned["distractors"],
        "small_objects": small,
        "camera_motion": {"max_shift_px": [int(shift[0]), int(shift[1])],
                          "offsets": v.camera.tolist()} if v.flags["camera_motion"] else None,
        "deformation": {"objects": v.planned["deformation"], "in_frame_px_range": area_range},
        "textured_background": bool(v.flags["textured_background"]),
    }
    present = [case for case, on in (
        ("occlusion", bool(occ_frames)), ("disappearance", bool(gaps)), ("distractors", bool(hard["distractors"])),
        ("small_objects", bool(small)), ("camera_motion", bool(v.flags["camera_motion"])),
        ("deformation", bool(v.planned["deformation"])), ("textured_background", hard["textured_background"]),
    ) if on]
    return {
        "frames": n,
        "object_ids": ids,
        "objects": {str(o.oid): {"shape": o.shape, "crowd": o.crowd, "small": o.small, "deforms": o.deforms}
                    for o in sorted(v.objects, key=lambda o: o.oid)},
        "present": present,
        "hard_cases": hard,
        "planned_disappearance": v.planned["disappearance"],
        "visible_px": {str(oid): vis[:, j].tolist() for j, oid in enumerate(ids)},
        "in_frame_px": {str(oid): inf[:, j].tolist() for j, oid in enumerate(ids)},
    }


# ---- writing ----------------------------------------------------------------------------------------------------

def _as_store(store_or_uri: Store | str | Path) -> Store:
    return store_or_uri if isinstance(store_or_uri, Store) else open_store(store_or_uri)


def generate_video(store_or_uri: Store | str | Path, cfg: SynthConfig, split: str, index: int) -> tuple[str, dict]:
    """Render and write one video under `<root>/<split>/` (and `<split>_gt/` for valid/test); → (name, meta)."""
    root = _as_store(store_or_uri)
    name = video_name(cfg.seed, split, index)
    frames_dir = f"{split}/{FRAMES_DIR}/{name}"
    ann_dir = f"{split}/{ANNOTATIONS_DIR}/{name}"
    gt_dir = f"{split}{GT_SUFFIX}/{ANNOTATIONS_DIR}/{name}" if split != "train" else None
    gen = render_video(cfg, split, index)
    i = 0
    while True:
        try:
            rgb, labels = next(gen)
        except StopIteration as stop:
            meta = stop.value
            break
        stem = frame_stem(i)
        root.write_bytes(f"{frames_dir}/{stem}.jpg", encode_jpeg(rgb, cfg.jpeg_quality))
        png = encode_label_png(labels)
        if gt_dir is None or i == 0:
            root.write_bytes(f"{ann_dir}/{stem}.png", png)
        if gt_dir is not None:
            root.write_bytes(f"{gt_dir}/{stem}.png", png)
        i += 1
    meta["split"] = split
    return name, meta


def _generate_one(args: tuple[str, SynthConfig, str, int]) -> tuple[str, dict]:
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    return generate_video(*args)


def generate_split(store_or_uri: Store | str | Path, cfg: SynthConfig, split: str = "train",
                   videos: int | None = None, workers: int = 1) -> dict[str, dict]:
    """Write one split of `videos` (default `cfg.videos`) videos under the dataset root; update `meta.json`.

    Returns {video name: meta}. With `workers` > 1 videos render in parallel processes (same bytes as serial).
    """
    if split not in _SPLIT_INDEX:
        raise BadInputError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    root = _as_store(store_or_uri)
    count = cfg.videos if videos is None else videos
    jobs = [(root.root, cfg, split, i) for i in range(count)]
    if workers > 1 and count > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process whose OpenCV/BLAS threads hold locks can deadlock the children.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_generate_one, jobs))
    else:
        results = [generate_video(root, cfg, split, i) for i in range(count)]
    metas = dict(sorted(results))
    meta = root.read_json(META_FILE) if root.exists(META_FILE) else _meta_header(cfg)
    meta.setdefault("splits", {})[split] = metas
    meta["config"] = cfg.to_json()
    root.write_json(META_FILE, meta)
    return metas


def _meta_header(cfg: SynthConfig) -> dict:
    return {
        "generator": "stseg synthetic MOSE-like benchmark",
        "config": cfg.to_json(),
        "layout": {
            "train": "train/JPEGImages/<video>/<frame>.jpg, train/Annotations/<video>/<frame>.png (every frame)",
            "valid": "valid/JPEGImages/…, valid/Annotations/<video>/00000.png (first frame only)",
            "valid_gt": "valid_gt/Annotations/<video>/<frame>.png (every frame; ground truth for J&F)",
            "test": "as valid; ground truth in test_gt/Annotations",
        },
        "thresholds": {"occluded_below_visible_share": OCCLUDED_BELOW, "small_below_frame_share": SMALL_FRACTION},
        "splits": {},
    }


def generate_dataset(root: Store | str | Path, cfg: SynthConfig, workers: int = 1,
                     splits: tuple[str, ...] = SPLITS) -> dict:
    """Write train/valid/test (+ valid_gt/test_gt) and `meta.json` under `root`; returns the meta."""
    store = _as_store(root)
    store.write_json(META_FILE, _meta_header(cfg))
    for split in splits:
        generate_split(store, cfg, split, workers=workers)
    return store.read_json(META_FILE)


def mose_like_costs(num_videos: int = 2149, seed: int = 0) -> dict[str, int]:
    """Work (frames × objects) per video with MOSEv1's spread: lognormal lengths, about 2.4 objects per video.

    For planning and benchmarking shards without the real data set.
    """
    rng = np.random.default_rng(seed)
    frames = np.clip(np.round(rng.lognormal(math.log(70), 0.6, num_videos)), 5, 600).astype(int)
    objects = np.clip(1 + rng.poisson(1.4, num_videos), 1, 15)
    return {video_name(seed, "mose-like", i): int(f * o) for i, (f, o) in enumerate(zip(frames, objects,
                                                                                           strict=True))}
