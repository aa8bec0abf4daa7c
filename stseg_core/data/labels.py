"""Label maps as palette PNGs: pixel value = object id (0 = background), DAVIS colours for people."""

from __future__ import annotations

import io
import re

import numpy as np

from stseg_core.errors import BadInputError


def _davis_palette() -> bytes:
    # The DAVIS/MOSE palette: bit-interleaved colours, id 1 = (128, 0, 0), id 2 = (0, 128, 0), …
    out = bytearray()
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += bytes((r, g, b))
    return bytes(out)


DAVIS_PALETTE: bytes = _davis_palette()
"""768 bytes: RGB for ids 0…255."""


def encode_label_png(labels: np.ndarray) -> bytes:
    """HxW uint8 ids → palette PNG bytes (ids preserved bit-exactly)."""
    from PIL import Image

    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise BadInputError(f"label map must be HxW uint8, got shape {labels.shape} dtype {labels.dtype}")
    img = Image.fromarray(labels, mode="P")
    img.putpalette(DAVIS_PALETTE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_error(name: str, data: bytes, err: BaseException, kind: str = "image") -> BadInputError:
    """One line for an image PIL cannot read, naming the file (PIL's own text names an in-memory buffer)."""
    from PIL import UnidentifiedImageError

    if not data:
        return BadInputError(f"{name}: empty file (0 bytes), not a {kind}")
    if isinstance(err, UnidentifiedImageError):
        return BadInputError(f"{name}: unreadable or corrupt {kind} (not an image format stseg reads)")
    return BadInputError(f"{name}: unreadable or corrupt {kind} ({re.sub(r'<_io[^>]*>', 'the file', str(err))})")


def read_label_png(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Palette ("P") or single-channel grey ("L") PNG → HxW uint8 ids; anything else is bad input."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise image_error(name, data, err, "PNG") from None
    if img.mode not in ("P", "L"):
        raise BadInputError(f"{name}: annotation must be a palette or grey single-channel PNG, got mode {img.mode}")
    return np.asarray(img, dtype=np.uint8)


def _png_bit_depth(data: bytes) -> int | None:
    # IHDR is always the first chunk: 8-byte signature, 4 length, 4 type, 4 width, 4 height, 1 bit depth.
    if len(data) >= 25 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return data[24]
    return None


def decode_label_png(data: bytes, uri: str) -> np.ndarray:
    """PNG bytes → HxW uint8 ids, refusing 16-bit maps (ids > 255) with a clear message."""
    if _png_bit_depth(data) == 16:
        raise BadInputError(f"{uri}: 16-bit annotation: object ids above 255 are not supported (8-bit ids 0…255)")
    return read_label_png(data, uri)
