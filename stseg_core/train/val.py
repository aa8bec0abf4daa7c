"""Validation J&F of a model adapter on held-out training videos (full ground truth), with the project's metric."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.base import VOSModel


def jf_on_videos(model: VOSModel, data: MoseSplit, videos: tuple[str, ...]) -> dict[str, float]:
    """Run `model` on each video from its first-frame masks and score every later frame against the ground
    truth (first and last frame dropped, as DAVIS does); the global DAVIS scores in [0, 1]."""
    from stseg_core.metrics.evaluate import global_scores
    from stseg_core.metrics.jf import VideoAccumulator
    from stseg_core.models.base import VideoInput

    results = []
    for name in videos:
        video = VideoInput.from_split(data, name)
        acc = VideoAccumulator(name, video.object_ids)
        last = video.num_frames - 1
        for t, res in enumerate(model.segment(video)):
            if 0 < t < last:
                acc.update(data.annotation(name, res.stem), res.labels, res.stem)
        results.append(acc.result())
    return {k: v for k, v in global_scores(results, "davis").items() if v is not None}
