"""Textures of the synthetic benchmark: object skins, backgrounds and the occluding pillar, all from a seeded rng."""

from __future__ import annotations

import math

import numpy as np


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int) -> np.ndarray:
    """Value noise in [-1, 1] with feature size ≈ `cell` px: a small random grid upscaled bicubically."""
    import cv2

    gh, gw = max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1)
    grid = rng.uniform(-1.0, 1.0, (gh, gw, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def random_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))
    return np.array([r, g, b], np.float32) * 255.0


def object_texture(rng: np.random.Generator, size: int, small: bool) -> np.ndarray:
    """Two-colour stripes + blotches + fine grain: distinctive enough to track, not a trivial colour key."""
    c1 = random_colour(rng, (0.35, 0.9), (0.35, 0.95))
    c2 = random_colour(rng, (0.2, 0.9), (0.25, 0.95))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    beta = rng.uniform(0, math.pi)
    freq = rng.uniform(0.15, 0.45) if not small else 0.0
    stripes = np.sin(freq * (xx * math.cos(beta) + yy * math.sin(beta)) + rng.uniform(0, 6.3))
    blotch = smooth_noise(rng, size, size, max(3.0, size / 4), 1)[..., 0]
    t = np.clip(0.5 + 0.3 * stripes + 0.6 * blotch, 0.0, 1.0)[..., None]
    grain = smooth_noise(rng, size, size, 2.0, 3) * 12.0
    texture: np.ndarray = np.clip(c1 * (1 - t) + c2 * t + grain, 0, 255).astype(np.uint8)
    return texture


def background(rng: np.random.Generator, h: int, w: int, textured: bool) -> np.ndarray:
    import cv2

    c1 = random_colour(rng, (0.05, 0.5), (0.25, 0.8))
    c2 = random_colour(rng, (0.05, 0.5), (0.25, 0.8))
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = c1 * (1 - ramp) + c2 * ramp
    img = np.broadcast_to(img, (h, w, 3)).copy()
    if not textured:
        return np.clip(img + smooth_noise(rng, h, w, max(h, w) / 4, 3) * 10.0, 0, 255).astype(np.uint8)
    unit = math.sqrt(h * w) / 640.0
    for cell, gain in ((96 * unit, 45.0), (24 * unit, 28.0), (6 * unit, 14.0)):
        img += smooth_noise(rng, h, w, max(2.0, cell), 3) * gain
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(8, 20))):  # clutter: hard edges that are not objects
        colour = tuple(int(c) for c in random_colour(rng, (0.05, 0.6), (0.2, 0.9)))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(max(3, rng.uniform(0.02, 0.12) * math.sqrt(h * w)))
        if rng.uniform() < 0.5:
            cv2.rectangle(img, (cx, cy), (cx + size, cy + int(size * rng.uniform(0.3, 2))), colour, -1)
        else:
            cv2.circle(img, (cx, cy), size // 2, colour, -1)
    return img


def pillar_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Bark-like vertical grain, so the pillar is clearly not background and has trackable texture."""
    c = random_colour(rng, (0.1, 0.5), (0.2, 0.6))
    grain = smooth_noise(rng, h, w, 3.0, 1) * 25 + smooth_noise(rng, h // 8 + 2, w, 2.0, 1)[np.arange(h) // 8] * 30
    texture: np.ndarray = np.clip(c + grain, 0, 255).astype(np.uint8)
    return texture
