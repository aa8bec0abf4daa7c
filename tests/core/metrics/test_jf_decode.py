"""The fast label-PNG reader returns exactly what `read_label_png` returns, and fails the same way."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

from stseg_core.data.labels import encode_label_png, read_label_png
from stseg_core.errors import BadInputError
from stseg_core.metrics.decode import _fast_path, read_label_png_fast


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with_filters(labels: np.ndarray, filters: list[int], colour: int = 3) -> bytes:
    """A PNG whose rows use the given filter types (0 None, 1 Sub, 2 Up), written by hand."""
    h, w = labels.shape
    rows, prev = [], np.zeros(w, np.uint8)
    for y in range(h):
        row = labels[y]
        if filters[y] == 1:
            row = row - np.r_[np.uint8(0), row[:-1]]
        elif filters[y] == 2:
            row = row - prev
        rows.append(bytes([filters[y]]) + row.astype(np.uint8).tobytes())
        prev = labels[y]
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    plte = _chunk(b"PLTE", bytes(range(256)) * 3) if colour == 3 else b""
    data = zlib.compress(b"".join(rows), 6)
    # split the stream over two IDAT chunks, as large files are
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + plte
        + _chunk(b"IDAT", data[:7])
        + _chunk(b"IDAT", data[7:])
        + _chunk(b"IEND", b"")
    )


def test_same_ids_as_pillow_on_every_row_filter():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 256, size=(23, 31), dtype=np.uint8)
    labels[5:15, 3:20] = 7  # runs that make Sub/Up rows non-trivial
    for filters in ([0] * 23, [1] * 23, [2] * 23, rng.integers(0, 3, 23).tolist(), [2, 2, 1, 2, 2, 0] * 3 + [2] * 5):
        for colour in (3, 0):
            png = _png_with_filters(labels, filters, colour)
            assert _fast_path(png) is not None  # the fast path handled it
            assert np.array_equal(read_label_png_fast(png), read_label_png(png))
            assert np.array_equal(read_label_png_fast(png), labels)


def test_project_writer_and_pillow_defaults():
    from PIL import Image

    rng = np.random.default_rng(1)
    lab = np.zeros((48, 64), np.uint8)
    lab[rng.integers(0, 48, 200), rng.integers(0, 64, 200)] = rng.integers(1, 9, 200)
    png = encode_label_png(lab)
    assert _fast_path(png) is not None
    assert np.array_equal(read_label_png_fast(png), lab)
    for kwargs in ({}, {"optimize": True}, {"bits": 4}):
        img = Image.fromarray(lab, mode="P")
        buf = io.BytesIO()
        img.save(buf, format="PNG", **kwargs)
        assert np.array_equal(read_label_png_fast(buf.getvalue()), read_label_png(buf.getvalue()))


def test_paeth_and_interlaced_files_fall_back_to_pillow():
    import cv2

    lab = (np.arange(40 * 50).reshape(40, 50) % 7).astype(np.uint8)
    ok, png = cv2.imencode(".png", lab)  # libpng's adaptive filters (Average/Paeth rows)
    assert ok
    assert np.array_equal(read_label_png_fast(png.tobytes()), lab)
    # an Adam7-interlaced header is not the fast path's business
    png = _png_with_filters(lab, [0] * 40)
    ihdr = struct.pack(">IIBBBBB", 50, 40, 8, 3, 0, 0, 1)
    assert _fast_path(png[:8] + _chunk(b"IHDR", ihdr) + png[33:]) is None


def test_errors_are_pillows():
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="PNG")
    with pytest.raises(BadInputError, match=r"x\.png: annotation must be a palette"):
        read_label_png_fast(buf.getvalue(), "x.png")
    good = encode_label_png(np.ones((8, 8), np.uint8))
    with pytest.raises(BadInputError, match=r"y\.png: unreadable or corrupt PNG"):
        read_label_png_fast(good[:60], "y.png")
