"""Hand-drawn videos for model tests: frames and labels held in memory, opened as the models' VideoInput."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stseg_core.models.base import VideoInput


def in_memory_video(
    frames: Sequence[np.ndarray], first_labels: np.ndarray, object_ids: tuple[int, ...], name: str = "handmade"
) -> VideoInput:
    """A video of `frames` (H×W×3) whose first annotation is `first_labels`; stems are 00000, 00001, …"""
    height, width = first_labels.shape
    return VideoInput(
        name=name,
        stems=tuple(f"{i:05d}" for i in range(len(frames))),
        height=height,
        width=width,
        first_labels=first_labels,
        object_ids=object_ids,
        frames=lambda: iter(frames),
    )
