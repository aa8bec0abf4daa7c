"""Hand-made per-pixel features shared by the weight-free appearance trackers (`oneshot`, `stm`).

Notation: a frame shrunk to a working size h×w (short side ≤ `size`); per pixel, colour in CIE Lab (L, a, b
scaled to about 0…1), texture = local standard deviation of L in a 5×5 window (≈ 0…1), position = (x/w, y/h).
"""

from __future__ import annotations

import numpy as np

TEXTURE_WINDOW = 5


def working_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with short side at most `size`, aspect kept (never upscaled, at least 8 px)."""
    scale = min(1.0, size / min(height, width))
    return max(8, round(height * scale)), max(8, round(width * scale))


def shrink(image: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    """`image` resized to h×w (area averaging for colour, nearest neighbour for label maps)."""
    import cv2

    if image.shape[:2] == (h, w):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def colour_texture(rgb: np.ndarray) -> np.ndarray:
    """h×w×4 float32: L, a, b (each ≈ 0…1) and the local standard deviation of L (texture)."""
    import cv2

    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    lum = lab[..., 0]
    k = (TEXTURE_WINDOW, TEXTURE_WINDOW)
    mean = cv2.blur(lum, k)
    var = np.maximum(cv2.blur(lum * lum, k) - mean * mean, 0.0)
    return np.concatenate([lab, np.sqrt(var)[..., None] * 4.0], axis=-1)


def positions(h: int, w: int) -> np.ndarray:
    """h×w×2 float32 (x/w, y/h) of every pixel centre."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([(xs + 0.5) / w, (ys + 0.5) / h], axis=-1)


def onehot(labels: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    """(K+1)×h×w float32: background then each object id."""
    return np.stack([labels == i for i in (0, *ids)]).astype(np.float32)


def upsample_labels(probs: np.ndarray, ids: tuple[int, ...], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(K+1)×h×w soft probabilities → (full-size label map, K×H×W uint8 object probabilities × 255).

    Bilinear upsampling of the probabilities before the arg-max gives smooth full-size boundaries."""
    import cv2

    up = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in probs])
    best = np.argmax(up, axis=0)
    labels = np.array((0, *ids), np.uint8)[best]
    return labels, np.clip(up[1:] * 255.0 + 0.5, 0, 255).astype(np.uint8)
