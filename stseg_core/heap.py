"""Flat resident memory for stages that stream many large frames through one process.

glibc's malloc serves blocks of 128 KiB and more with mmap and gives them back on free, but after the first
such free it raises that threshold (up to 32 MiB), so later frame-sized buffers come from the heap, which
fragments and keeps growing: the streaming fuse's peak RSS grew 1.4 × from 60 to 300 frames of 720p
(`bench/bench_fuse_memory.py`) with nothing of the frames alive. Pinning the threshold stops that.
"""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
_DEFAULT = 128 * 1024


def pin_mmap_threshold(nbytes: int = _DEFAULT) -> bool:
    """Fix glibc's mmap threshold at `nbytes` for this process (idempotent); False where malloc is not glibc's."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, nbytes))
