"""What one synthetic object is: shape family, size, texture and how its shape changes over time.

An object is a closed radial curve r(θ) = R·s(t)·(1 + Σₘ aₘ(t)·cos(kₘθ + φₘ(t))) rotated by α(t) and filled with
its own texture, which is mapped through the same rotation and scale, so the texture moves with the object and a
flow tracker can follow it. Where it goes is `synth_plan`'s part; drawing it is `synth_render`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stseg_core.data.synth_texture import object_texture

_SHAPES = {  # family → [(harmonic k, amplitude)]
    "ellipse": [(2, 0.3)],
    "blob": [(2, 0.15), (3, 0.12), (5, 0.05)],
    "star": [(5, 0.25), (2, 0.08)],
    "box": [(4, 0.14), (8, 0.04)],
}


@dataclass
class ObjectPlan:
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

    def radius_at(self, i: int, screen_angle: np.ndarray) -> np.ndarray:
        """Boundary distance from the centre on frame i along screen directions (px)."""
        local = screen_angle - self.angle[i]
        harmonics = self.ks[:, None] * local.ravel()[None, :] + self.phase[i][:, None]  # (M, points)
        wave = (self.amp[i][:, None] * np.cos(harmonics)).sum(0)
        radius: np.ndarray = (self.radius * self.scale[i] * (1 + wave)).reshape(local.shape)
        return radius


_Look = tuple[str, np.ndarray, float, np.ndarray, bool]
"""What a crowd's members share: shape family, base amplitudes, radius, texture, whether they deform."""


def make_objects(
    rng: np.random.Generator, flags: dict[str, bool], k: int, t: np.ndarray, area: int
) -> tuple[list[ObjectPlan], int]:
    """Objects 1…k with shape, size, texture and deformation (positions still zero); crowds share shape and
    texture. → (objects, crowd size)."""
    crowd_size = int(rng.integers(2, k + 1)) if flags["distractors"] else 0
    if flags["small_objects"] and crowd_size >= k:
        crowd_size = max(0, k - 1) if k - 1 >= 2 else 0
    small_id = k if flags["small_objects"] else None
    objects: list[ObjectPlan] = []
    crowd_template: _Look | None = None
    for oid in range(1, k + 1):
        in_crowd = oid <= crowd_size
        small = oid == small_id
        deforms = flags["deformation"] and not small and rng.uniform() < 0.7
        texture: np.ndarray | None
        if in_crowd and crowd_template is not None:
            shape, base_amp, radius0, tex0, deforms = crowd_template
            radius = radius0 * rng.uniform(0.92, 1.08)
            jitter = rng.uniform(-10, 10, 3)
            texture = np.clip(tex0.astype(np.float32) + jitter, 0, 255).astype(np.uint8)
        else:
            shape, base_amp, radius = _new_look(rng, small, in_crowd, area)
            texture = None
        ks, amp, phase, scale, angle = _shape_in_time(rng, shape, base_amp, deforms, t)
        local_reach = radius * (1 + float(np.abs(amp).sum(axis=1).max()))
        if texture is None:
            texture = object_texture(rng, 2 * math.ceil(local_reach) + 4, small)
        if in_crowd and crowd_template is None:
            crowd_template = (shape, base_amp, radius, texture, deforms)
        objects.append(
            ObjectPlan(
                oid,
                shape,
                radius,
                ks,
                amp,
                phase,
                scale,
                angle,
                np.zeros((len(t), 2)),
                texture,
                crowd=0 if in_crowd else None,
                small=small,
                deforms=deforms,
            )
        )
    return objects, crowd_size


def _new_look(rng: np.random.Generator, small: bool, in_crowd: bool, area: int) -> tuple[str, np.ndarray, float]:
    """(shape family, base harmonic amplitudes, base radius px) of an object that does not copy a crowd's."""
    shape = str(rng.choice(list(_SHAPES)))
    base_amp = np.array([a * rng.uniform(0.7, 1.3) for _, a in _SHAPES[shape]])
    # Share of the frame: small < 1 %; herd members smaller than solo objects, as in MOSE's crowds.
    frac = rng.uniform(0.002, 0.004) if small else rng.uniform(0.006, 0.02) if in_crowd else rng.uniform(0.012, 0.045)
    return shape, base_amp, max(2.0, math.sqrt(frac * area / math.pi))


def _shape_in_time(
    rng: np.random.Generator, shape: str, base_amp: np.ndarray, deforms: bool, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(harmonic numbers, amplitudes (T, M), phases (T, M), scale (T,), angle (T,)) of one object."""
    n = len(t)
    ks = np.array([kk for kk, _ in _SHAPES[shape]], np.float64)
    d = 0.45 if deforms else 0.08
    amp = base_amp[None, :] * (
        1 + d * np.sin(rng.uniform(0.05, 0.2, len(ks)) * t[:, None] + rng.uniform(0, 6.3, len(ks)))
    )
    phase = (
        rng.uniform(0, 6.3, len(ks))[None, :]
        + (rng.uniform(-0.08, 0.08, len(ks)) if deforms else rng.uniform(-0.01, 0.01, len(ks)))[None, :] * t[:, None]
    )
    if deforms:  # scale change: approach or recede by up to ~2×, plus breathing
        s_end = math.exp(rng.uniform(0.45, 0.75) * rng.choice([-1.0, 1.0]))
        scale = np.exp(np.log(s_end) * t / max(n - 1, 1)) * (1 + 0.08 * np.sin(0.15 * t + rng.uniform(0, 6)))
    else:
        scale = 1 + 0.05 * np.sin(rng.uniform(0.03, 0.1) * t + rng.uniform(0, 6.3))
    angle = rng.uniform(0, 6.3) + rng.uniform(-0.04, 0.04) * t
    return ks, amp, phase, scale, angle
