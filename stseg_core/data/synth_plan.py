"""Planning one synthetic video: its objects' paths, the camera and the hard cases, all drawn from one seeded rng.

Notation: H×W frame, T frames, K objects (ids 1…K; what each object looks like is `synth_objects`). Positions
are screen pixels (x right, y down). Objects are painted back to front (their depth order), then the id-0
occluder (a full-height textured pillar that moves with the camera), then sensor noise.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stseg_core.data.synth_config import HARD_CASES, SPLIT_INDEX, SynthConfig, video_name
from stseg_core.data.synth_objects import ObjectPlan, make_objects
from stseg_core.data.synth_texture import background, pillar_texture


@dataclass
class Pillar:
    x_world: float  # centre x in background-canvas coordinates minus the margin, px
    width: int
    texture: np.ndarray  # (canvas height, width, 3) uint8


@dataclass
class VideoPlan:
    name: str
    frames: int
    objects: list[ObjectPlan]  # in depth order, back to front
    camera: np.ndarray  # (T, 2) int background offset, px
    margin: tuple[int, int]  # (x, y) canvas margin around the frame
    canvas: np.ndarray  # (H + 2my, W + 2mx, 3) uint8 background
    pillar: Pillar | None
    noise: tuple[np.ndarray, np.ndarray] | None  # (+, −) uint8 noise fields, 16 px larger than the frame
    noise_offsets: np.ndarray  # (T, 2) int
    planned: dict[str, list[Any]] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect a path into [lo, hi] (objects bounce off the borders instead of leaving by accident)."""
    span = max(hi - lo, 1e-6)
    y = np.mod(x - lo, 2 * span)
    folded: np.ndarray = lo + span - np.abs(y - span)
    return folded


def _ramp_weight(t: np.ndarray, t0: int, t1: int, ramp: int) -> np.ndarray:
    """0 outside, smooth step up over [t0 − ramp, t0], 1 on [t0, t1], smooth step down over [t1, t1 + ramp]."""
    up = np.clip((t - (t0 - ramp)) / ramp, 0, 1)
    down = np.clip(((t1 + ramp) - t) / ramp, 0, 1)
    w = np.minimum(up, down)
    weight: np.ndarray = w * w * (3 - 2 * w)
    return weight


def _wobble(rng: np.random.Generator, t: np.ndarray, amp: float, dims: int) -> np.ndarray:
    out = np.zeros((len(t), dims))
    for _ in range(2):
        freq = rng.uniform(0.02, 0.12, dims)
        out += amp * rng.uniform(0.3, 1.0, dims) * np.sin(freq * t[:, None] + rng.uniform(0, 6.3, dims))
    return out


def plan_attempt(cfg: SynthConfig, split: str, index: int, attempt: int) -> VideoPlan:
    """One draw of a video's plan from the seed (cfg.seed, split, index, attempt).

    The helpers below (and `synth_objects.make_objects`) draw from the one rng in a fixed order: changing that order
    changes every video's bytes.
    """
    rng = np.random.default_rng([cfg.seed, SPLIT_INDEX[split], index, attempt])
    h, w = cfg.height, cfg.width
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    t = np.arange(n, dtype=np.float64)
    flags = _draw_flags(rng, cfg, n)
    k = _object_count(rng, cfg, flags)
    # The canvas is larger than the frame by the camera's largest offset.
    cam = _camera_path(rng, flags["camera_motion"], t, h, w)
    mx, my = int(np.abs(cam[:, 0]).max()) + 1, int(np.abs(cam[:, 1]).max()) + 1
    canvas = background(rng, h + 2 * my, w + 2 * mx, flags["textured_background"])
    objects, crowd_size = make_objects(rng, flags, k, t, h * w)
    _place_paths(rng, objects, crowd_size, cam, t, (h, w))
    planned: dict[str, list[Any]] = {"occlusion": [], "disappearance": []}
    ramp = max(3, round(n * 0.1))
    pillar = None
    if flags["disappearance"]:
        event, pillar = _plan_disappearance(rng, objects, ramp, cam, (h, w, my))
        planned["disappearance"].append(event)
    gone = {d["object"] for d in planned["disappearance"]}
    eligible = [o for o in objects if o.oid not in gone and not o.small]
    if len(eligible) < 2:  # too few objects (max_objects): keep the planned cases that fit
        eligible = [o for o in objects if o.oid not in gone]
    if flags["occlusion"] and len(eligible) >= 2:
        planned["occlusion"].append(_plan_occlusion(rng, objects, eligible, ramp, n))
    order = rng.permutation(len(objects))
    if not planned["occlusion"]:  # depth order: random, unless an occlusion already fixed who is in front
        objects = [objects[i] for i in order]
    planned["distractors"] = [sorted(o.oid for o in objects if o.crowd is not None)] if crowd_size >= 2 else []
    planned["small_objects"] = [o.oid for o in objects if o.small]
    planned["deformation"] = sorted(o.oid for o in objects if o.deforms)
    noise = _noise_fields(rng, cfg.noise, h, w)
    offsets = rng.integers(0, 17, (n, 2))
    return VideoPlan(
        video_name(cfg.seed, split, index), n, objects, cam, (mx, my), canvas, pillar, noise, offsets, planned, flags
    )


def _draw_flags(rng: np.random.Generator, cfg: SynthConfig, n: int) -> dict[str, bool]:
    """The hard cases this video plans (each drawn with its rate), less those it has no room for."""
    flags = {case: bool(rng.uniform() < getattr(cfg, case)) for case in HARD_CASES}
    long_enough = n >= 16  # timed events need room for a ramp in, a hold and a ramp out
    flags["occlusion"] &= long_enough and cfg.max_objects >= 2
    flags["disappearance"] &= long_enough
    flags["distractors"] &= cfg.max_objects >= 2
    return flags


def _object_count(rng: np.random.Generator, cfg: SynthConfig, flags: dict[str, bool]) -> int:
    k = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    # Enough objects for every planned case: two for an occlusion, one more to disappear, one more to be small.
    needed = max(
        2 if flags["distractors"] else 1, (2 if flags["occlusion"] else 0) + (1 if flags["disappearance"] else 0)
    ) + int(flags["small_objects"])
    return max(k, min(needed, cfg.max_objects))


def _camera_path(rng: np.random.Generator, moves: bool, t: np.ndarray, h: int, w: int) -> np.ndarray:
    """(T, 2) int background offsets: a smooth pan plus sway, starting at 0 (all zero without camera motion)."""
    n = len(t)
    if moves:
        pan = rng.uniform(-1, 1, 2) * np.array([0.10 * w, 0.04 * h]) * t[:, None] / max(n - 1, 1)
        cam = pan + _wobble(rng, t, 0.03 * min(h, w), 2)
        cam -= cam[0]
    else:
        cam = np.zeros((n, 2))
    offsets: np.ndarray = np.round(cam).astype(np.int64)
    return offsets


def _place_paths(
    rng: np.random.Generator,
    objects: list[ObjectPlan],
    crowd_size: int,
    cam: np.ndarray,
    t: np.ndarray,
    size: tuple[int, int],
) -> None:
    """Set every object's base path: spread-out starts, drift + sway, camera-induced shift, folded into the frame.

    The herd is one disc holding its members on a ring wide enough that neighbours do not overlap at the start.
    """
    h, w = size
    n, area = len(t), h * w
    crowd_reach = max((o.reach() for o in objects if o.crowd is not None), default=0.0)
    ring = 1.15 * crowd_reach / math.sin(math.pi / crowd_size) if crowd_size >= 2 else 0.0
    discs = ([ring + crowd_reach] if crowd_size >= 2 else []) + [o.reach() for o in objects if o.crowd is None]
    centres = _spread_points(rng, discs, w, h)
    herd_centre, solo = (centres[0], iter(centres[1:])) if crowd_size >= 2 else (np.zeros(2), iter(centres))
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


def _plan_disappearance(
    rng: np.random.Generator, objects: list[ObjectPlan], ramp: int, cam: np.ndarray, size: tuple[int, int, int]
) -> tuple[dict[str, Any], Pillar | None]:
    """Steer one object out of the frame, or behind a new pillar, for a while. → (planned event, the pillar)."""
    h, w, my = size
    n = len(cam)
    candidates = [o for o in objects if not o.small] or objects
    obj = candidates[int(rng.integers(0, len(candidates)))]
    hold = max(4, round(n * rng.uniform(0.15, 0.3)))
    t0 = int(rng.integers(max(ramp + 1, round(0.2 * n)), max(ramp + 2, n - hold - ramp - 3)))
    t1 = min(t0 + hold, n - ramp - 2)
    reach = obj.reach()
    behind = reach * 2 + 6 <= w / 3 and rng.uniform() < 0.5
    wgt = _ramp_weight(np.arange(n), t0, t1, ramp)[:, None]
    pillar = None
    if behind:
        width = math.ceil(2 * reach + 8)
        x_screen = float(rng.uniform(0.25, 0.75) * w)
        x_world = x_screen + cam[(t0 + t1) // 2, 0]
        pillar = Pillar(x_world, width, pillar_texture(rng, h + 2 * my, width))
        target = np.stack([x_world - cam[:, 0], obj.pos[:, 1]], 1)
    else:
        target = _exit_path(obj, t0, reach + 4, h, w)
    obj.pos = (1 - wgt) * obj.pos + wgt * target
    event = {"object": obj.oid, "cause": "behind_occluder" if behind else "out_of_frame", "frames": [t0, t1]}
    return event, pillar


def _exit_path(obj: ObjectPlan, t0: int, out: float, h: int, w: int) -> np.ndarray:
    """The object's path pushed `out` px beyond the frame edge nearest to it on frame t0."""
    p = obj.pos[t0]
    dists = {"left": p[0], "right": w - p[0], "top": p[1], "bottom": h - p[1]}
    edge = min(dists, key=lambda e: float(dists[e]))
    target = obj.pos.copy()
    if edge in ("left", "right"):
        target[:, 0] = -out if edge == "left" else w + out
    else:
        target[:, 1] = -out if edge == "top" else h + out
    return target


def _plan_occlusion(
    rng: np.random.Generator, objects: list[ObjectPlan], eligible: list[ObjectPlan], ramp: int, n: int
) -> dict[str, Any]:
    """Steer one eligible object onto another for a while, and paint it after its victim. → the planned event."""
    hold = max(4, round(n * rng.uniform(0.15, 0.3)))
    t0 = int(rng.integers(ramp + 1, max(ramp + 2, n - hold - ramp - 1)))
    t1 = min(t0 + hold, n - ramp - 1)
    back = eligible[int(rng.integers(0, len(eligible)))]
    # A front object of about the same size (mid-event) hides most of the back one without swallowing it.
    tm = (t0 + t1) // 2
    front = min(
        (o for o in eligible if o is not back),
        key=lambda o: (abs(o.radius * o.scale[tm] - back.radius * back.scale[tm]), o.oid),
    )
    if front.radius * front.scale[tm] < back.radius * back.scale[tm]:
        back, front = front, back  # the larger one in front, so the target share can be hidden
    ang = rng.uniform(0, 2 * math.pi)
    offset = _occluding_offsets(back, front, t0, t1, ang, rng.uniform(0.6, 0.85))
    wgt = _ramp_weight(np.arange(n), t0, t1, ramp)[:, None]
    front.pos = (1 - wgt) * front.pos + wgt * (back.pos + offset)
    if objects.index(front) < objects.index(back):  # paint the occluder after its victim
        objects.remove(front)
        objects.insert(objects.index(back) + 1, front)
    return {"object": back.oid, "by": front.oid, "frames": [t0, t1]}


def _noise_fields(rng: np.random.Generator, sigma: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(+, −) uint8 sensor-noise fields 16 px larger than the frame (each frame reads a shifted window)."""
    if sigma <= 0:
        return None
    field_ = rng.standard_normal((h + 16, w + 16, 3), dtype=np.float32) * np.float32(sigma)
    return np.clip(field_, 0, 255).astype(np.uint8), np.clip(-field_, 0, 255).astype(np.uint8)


def _occluding_offsets(back: ObjectPlan, front: ObjectPlan, t0: int, t1: int, ang: float, cover: float) -> np.ndarray:
    """(T, 2) offsets of the front centre from the back centre that hide ≈ `cover` of the back object.

    Coverage is exact for these star-shaped objects: a point is inside iff its distance from the centre is below
    the boundary radius in its direction. Points sample the back object uniformly by area.
    """
    theta = np.linspace(0, 2 * np.pi, 32, endpoint=False)[:, None]
    u = np.sqrt((np.arange(8)[None, :] + 0.5) / 8)
    direction = np.array([math.cos(ang), math.sin(ang)])
    dists = np.zeros(back.pos.shape[0])
    hold = np.arange(t0, t1 + 1)
    for i in range(t0, t1 + 1):
        rho = back.radius_at(i, theta + back.angle[i]) * u  # (32, 8) sample radii, screen angle θ + α
        pts = np.stack([rho * np.cos(theta + back.angle[i]), rho * np.sin(theta + back.angle[i])], -1).reshape(-1, 2)
        span = back.reach() + front.reach()
        cands = np.linspace(0.0, span, 24)
        rel = pts[None, :, :] - cands[:, None, None] * direction  # (24, P, 2) relative to the front centre
        inside = np.hypot(rel[..., 0], rel[..., 1]) < front.radius_at(i, np.arctan2(rel[..., 1], rel[..., 0]))
        dists[i] = cands[int(np.argmin(np.abs(inside.mean(axis=1) - cover)))]
    smooth = np.convolve(np.pad(dists[hold], 1, mode="edge"), np.ones(3) / 3, mode="valid")
    dists = np.interp(np.arange(len(dists)), hold, smooth)  # held constant through the ramps
    offsets: np.ndarray = dists[:, None] * direction
    return offsets


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
