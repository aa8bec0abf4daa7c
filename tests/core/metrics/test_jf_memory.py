"""Streaming: scoring a long 1080p video keeps a worker's memory bounded (< 500 MB peak RSS)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from stseg_core.data.labels import encode_label_png


@pytest.mark.slow
def test_1080p_300_frames_10_objects_under_500_mb(tmp_path):
    import cv2

    h, w = 1080, 1920
    frames = []
    for shift in (0, 7, 15):
        lab = np.zeros((h, w), np.uint8)
        for k in range(1, 11):
            cv2.circle(lab, (150 + 170 * k + shift, 300 + 40 * k), 60 + 5 * k, k, -1)
        frames.append(encode_label_png(lab))
    for folder, offset in ((tmp_path / "gt" / "long", 0), (tmp_path / "pred" / "long", 1)):
        folder.mkdir(parents=True)
        for t in range(300):
            (folder / f"{t:05d}.png").write_bytes(frames[(t + offset) % 3])
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so a child of a pytest worker that once
    # held torch would report the worker's peak, not its own.
    code = (
        "import re, sys; from stseg_core.metrics.evaluate import evaluate; "
        "r = evaluate(sys.argv[1], sys.argv[2]); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1); "
        "print(r.frames, len(r.videos[0].objects), hwm)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "gt"), str(tmp_path / "pred")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.split()
    frames_scored, objects, peak_kib = int(out[0]), int(out[1]), int(out[2])
    assert (frames_scored, objects) == (298, 10)
    assert peak_kib < 500 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
