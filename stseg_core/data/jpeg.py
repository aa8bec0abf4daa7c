"""Video frames as JPEG bytes: decoding with a clear error for damaged files, encoding as MOSE's frames are."""

from __future__ import annotations

import io

import numpy as np

from stseg_core.data.labels import image_error
from stseg_core.errors import BadInputError

JPEG_QUALITY = 95
"""Written frames: high enough that compression barely touches object boundaries."""


def decode_jpeg(data: bytes, uri: str) -> np.ndarray:
    """JPEG bytes → HxWx3 uint8 RGB; truncated or corrupt files are bad input."""
    import cv2

    # libjpeg pads a truncated file with grey and only warns, so check the end-of-image marker ourselves.
    if data[:2] != b"\xff\xd8" or b"\xff\xd9" not in data[-64:]:
        raise BadInputError(f"{uri}: unreadable or corrupt image (not a complete JPEG)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3:
        raise BadInputError(f"{uri}: unreadable or corrupt image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """HxWx3 uint8 RGB → JPEG bytes (baseline 4:2:0, as MOSE's own frames)."""
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInputError(f"frame must be HxWx3 uint8 RGB, got shape {rgb.shape} dtype {rgb.dtype}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise BadInputError(f"could not encode a {rgb.shape} frame as JPEG")
    return buf.tobytes()


def image_size(data: bytes, uri: str) -> tuple[int, int]:
    """(height, width) from an image header, without decoding pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise image_error(uri, data, err) from None
    return h, w
