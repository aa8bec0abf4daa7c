"""J&F of the fuse stage's methods with the project's evaluator: ground-truth frames 1…T−2, objects of the
first frame, fed a frame at a time (the streaming fuse) or a video at a time (the database builder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from stseg_core.metrics.jf import VideoResult


class VideoScores:
    """J&F accumulators of several methods on one video; memory is a few floats per object and frame."""

    def __init__(self, video: str, first_gt: np.ndarray, num_frames: int, methods: Sequence[str]) -> None:
        from stseg_core.metrics.jf import VideoAccumulator

        ids = tuple(int(i) for i in np.unique(first_gt) if i not in (0, 255))
        self.num_frames = num_frames
        self.acc = {m: VideoAccumulator(video, ids, "davis") for m in methods}

    def scored(self, t: int) -> bool:
        """Whether frame t counts (the first and the last frame do not)."""
        return 1 <= t < self.num_frames - 1

    def update(self, gt: np.ndarray, preds: dict[str, np.ndarray], stem: str) -> None:
        for method, pred in preds.items():
            self.acc[method].update(gt, pred, stem)

    def results(self) -> dict[str, VideoResult]:
        return {m: a.result() for m, a in self.acc.items()}


def score(video: str, gt: np.ndarray, pred: np.ndarray, stems: tuple[str, ...]) -> VideoResult:
    """J&F of one video's (T, H, W) prediction against its (T, H, W) ground truth."""
    scores = VideoScores(video, gt[0], len(stems), ("pred",))
    for t in range(len(stems)):
        if scores.scored(t):
            scores.update(gt[t], {"pred": pred[t]}, stems[t])
    return scores.results()["pred"]


def jf(result: VideoResult) -> float:
    """Per-video J&F (0…100): the mean over its objects, as the evaluator's tables report it."""
    from stseg_core.metrics.tables import video_scores

    return 100.0 * cast(float, video_scores(result)["J&F"])
