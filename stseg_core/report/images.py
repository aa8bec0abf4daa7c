"""Thumbnails: masks over frames in the DAVIS palette, labelled overlay strips and animated previews."""

from __future__ import annotations

import io

import numpy as np

from stseg_core.data.labels import DAVIS_PALETTE

THUMB_SIDE = 160
"""Longest side of a strip cell / preview frame, pixels: a 300-video report stays small and fast."""
LABEL_WIDTH = 110
TITLE_HEIGHT = 16
ALPHA = 0.55
_PALETTE = np.frombuffer(DAVIS_PALETTE, np.uint8).reshape(256, 3)


def thumb_size(height: int, width: int, side: int = THUMB_SIDE) -> tuple[int, int]:
    """(h, w) with the longest side at most `side`, aspect kept."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink(image: np.ndarray, size: tuple[int, int], labels: bool = False) -> np.ndarray:
    """Downscale an RGB frame (area) or a label map (nearest: ids stay ids) to (h, w)."""
    import cv2

    if image.shape[:2] == size:
        return image
    interp = cv2.INTER_NEAREST if labels else cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(image), (size[1], size[0]), interpolation=interp)


def overlay(rgb: np.ndarray | None, labels: np.ndarray) -> np.ndarray:
    """Object pixels tinted with their DAVIS colour over the frame (over mid grey when there is no frame)."""
    base = np.full((*labels.shape, 3), 96, np.uint8) if rgb is None else rgb
    out = base.astype(np.float32)
    fg = labels > 0
    out[fg] = (1 - ALPHA) * out[fg] + ALPHA * _PALETTE[labels[fg]]
    return out.round().astype(np.uint8)


def strip(rows: list[tuple[str, list[np.ndarray]]], titles: list[str]) -> bytes:
    """One PNG: a title row (frame stems), then one labelled row of equally sized cells per mask source."""
    from PIL import Image, ImageDraw

    h, w = rows[0][1][0].shape[:2]
    gap = 2
    width = LABEL_WIDTH + len(titles) * (w + gap)
    height = TITLE_HEIGHT + len(rows) * (h + gap)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((LABEL_WIDTH + c * (w + gap) + 2, 2), title, fill=(0, 0, 0))
    for r, (label, cells) in enumerate(rows):
        y = TITLE_HEIGHT + r * (h + gap)
        draw.text((2, y + h // 2 - 6), label[:18], fill=(0, 0, 0))
        for c, cell in enumerate(cells):
            canvas.paste(Image.fromarray(cell), (LABEL_WIDTH + c * (w + gap), y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def gif(frames: list[np.ndarray], fps: float = 8.0) -> bytes:
    """An endlessly looping animated GIF of RGB frames, all mapped to one palette learnt from a sample of them
    (20x faster than Pillow quantizing every frame on its own)."""
    from PIL import Image

    sample = np.concatenate(frames[:: max(1, len(frames) // 8)], axis=0)
    palette = Image.fromarray(sample).quantize(colors=255, method=Image.Quantize.FASTOCTREE)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=False
    )
    return buf.getvalue()
