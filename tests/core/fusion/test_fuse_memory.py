"""The streaming fuse's peak memory does not grow with the video's length (`bench/bench_fuse_memory.py`)."""

from __future__ import annotations

import bench_fuse_memory
import pytest


def test_fuse_memory_does_not_grow_with_the_video_small() -> None:
    """4 × the frames at 320×180 (5 models × 3 objects with probabilities, per-span choice, which reads every
    candidate three times): the same peak within 20 %."""
    out = bench_fuse_memory.main(
        ["--size", "320x180", "--frames", "8,32", "--objects", "3", "--choose", "span", "--json"]
    )
    assert out["span"][32]["peak_kib"] <= 1.2 * out["span"][8]["peak_kib"]
    assert 0 < out["span"][32]["pgmr"] <= 100


@pytest.mark.slow
def test_fuse_memory_at_720p_300_frames() -> None:
    """The issue's figure: 300 frames of 1280×720, 5 models × 5 objects with probabilities → ≤ 1.5 GiB and
    ≤ 1.2 × the 60-frame peak, for the default vote and for per-span choice (many minutes)."""
    out = bench_fuse_memory.main(["--json"])
    for choose in ("vote", "span"):
        assert out[choose][300]["peak_kib"] <= 1.5 * 1024**2, choose
        assert out[choose][300]["peak_kib"] <= 1.2 * out[choose][60]["peak_kib"], choose
