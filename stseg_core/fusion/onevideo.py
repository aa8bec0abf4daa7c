"""One video of the fuse stage, streamed: PGMR's two passes over the models' frames, then the kept output
written frame by frame, each method scored as its frames go by.

Memory holds a few frames per model whatever the video's length: the pseudo-label waits deflated in a temporary
file until the recommendation says what is kept; a kept model's frames are read a third time to write them, and
a per-span output reads the candidates its spans keep a third time, in step, to stitch them.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stseg_core.data.mose import MoseSplit, VideoInfo
from stseg_core.fusion.baselines import METHODS as BASELINES
from stseg_core.fusion.inputs import open_model_frames, scene_frames
from stseg_core.fusion.perfdb import FUSED
from stseg_core.fusion.pgmr import PGMR, FusedFrame, VideoDecision, decide_video, with_spans
from stseg_core.fusion.recommend import Recommender
from stseg_core.fusion.scoring import VideoScores, jf
from stseg_core.fusion.spans import Span, Stitcher
from stseg_core.metrics.jf import VideoResult
from stseg_core.runlayout import FUSED as FUSED_PREFIX
from stseg_core.store import Store

CONFIDENCE = "pgmr: the kept output's own confidence (a model's, or the trust-weighted mean of the models')"


@dataclass(frozen=True)
class VideoFused:
    """One video done: the keys written under fused/, its recommend.json entry, and (with ground truth) each
    method's J&F result, PGMR last."""

    keys: list[str]
    entry: dict[str, Any]
    results: dict[str, VideoResult] = field(default_factory=dict)


@dataclass(frozen=True)
class FuseOptions:
    """How PGMR runs on every video: the recommender (None = no database), what it keeps (`pgmr.CHOICES`), and
    whether the vote uses the database's calibrated confidences."""

    recommender: Recommender | None
    choose: str
    calibrate: bool


def fuse_one_video(
    run_store: Store,
    data: MoseSplit,
    gt: MoseSplit | None,
    info: VideoInfo,
    models: tuple[str, ...],
    options: FuseOptions,
    fallbacks: list[str],
) -> VideoFused:
    """PGMR on one video, streamed; writes fused/<video>/… (see the module docstring)."""
    name = info.name
    streams = [open_model_frames(run_store, m, info, fallbacks) for m in models]
    scores = _scores_for(gt, info, (*models, *BASELINES, FUSED))
    cache = _FrameCache()
    try:
        decision = decide_video(
            name,
            streams,
            info.object_ids,
            data.first_annotation(name),
            scene_frames(data, name),
            info.num_frames,
            options.recommender,
            with_baselines=gt is not None,
            choose=options.choose,
            calibrate=options.calibrate,
            on_frame=_on_vote_frame(cache, gt, info, models, scores),
        )
        labels, out_scores, out_present, spans = _kept_output(decision, cache)
        kept_scores = _scores_for(gt, info, (PGMR,)) if decision.plan else None
        if gt is not None and kept_scores is not None:
            labels = _tapped(labels, _scorer(gt, info, kept_scores))
        keys = _write_output(run_store, info, labels, out_scores, out_present)
    finally:
        cache.close()
    rec = with_spans(decision.recommendation, spans) if decision.plan else decision.recommendation
    entry = {**rec.to_json(), "features": decision.features.to_json()}
    if scores is None:
        return VideoFused(keys, entry)
    results = scores.results()
    # a whole-video choice keeps one method's masks frame for frame: its result is PGMR's
    results[PGMR] = kept_scores.results()[PGMR] if kept_scores is not None else results[rec.choice]
    entry["jf"] = {m: round(jf(res), 4) for m, res in results.items()}
    return VideoFused(keys, entry, results)


def _scores_for(gt: MoseSplit | None, info: VideoInfo, methods: tuple[str, ...]) -> VideoScores | None:
    """J&F accumulators for `methods` on one video, seeded with its first annotation; None without ground truth."""
    if gt is None:
        return None
    return VideoScores(info.name, gt.annotation(info.name, info.frames[0]), info.num_frames, methods)


def _on_vote_frame(
    cache: _FrameCache, gt: MoseSplit | None, info: VideoInfo, models: tuple[str, ...], scores: VideoScores | None
) -> Callable[[FusedFrame], None]:
    """What the vote does with each fused frame: keeps the pseudo-label in `cache` for the output pass, and (with
    ground truth) scores every model, baseline and the pseudo-label on it."""

    def on_frame(frame: FusedFrame) -> None:
        cache.add(frame.labels)
        if gt is not None and scores is not None and scores.scored(frame.t):
            stem = info.frames[frame.t]
            scores.update(
                gt.annotation(info.name, stem),
                {**dict(zip(models, frame.models, strict=True)), **frame.baselines, FUSED: frame.labels},
                stem,
            )

    return on_frame


def _kept_output(
    decision: VideoDecision, cache: _FrameCache
) -> tuple[Iterator[np.ndarray], np.ndarray, np.ndarray, list[Span]]:
    """(frames, (T, K) scores, (T, K) presence, spans) of the kept output. Per span, only the plan's candidates
    are read, in step, and stitched as they are read; the scores' rows and `spans` fill in as they go."""
    if not decision.plan:
        frames, scores, present = _candidate(decision, cache, decision.recommendation.choice)
        return frames, scores, present, []
    candidates = {c: _candidate(decision, cache, c) for c in dict.fromkeys(c for _s, _e, c in decision.plan)}
    tables = {c: (scores, present) for c, (_f, scores, present) in candidates.items()}
    stitcher = Stitcher(tables, decision.plan, decision.outputs[0].object_ids)
    in_step = zip(*(f for f, _sc, _pr in candidates.values()), strict=True)
    frames = (stitcher.frame(t, dict(zip(candidates, frame, strict=True))) for t, frame in enumerate(in_step))
    return frames, stitcher.scores, stitcher.present, stitcher.spans


def _candidate(
    decision: VideoDecision, cache: _FrameCache, name: str
) -> tuple[Iterator[np.ndarray], np.ndarray, np.ndarray]:
    """One candidate's frames (a new pass), (T, K) scores and presence: the pseudo-label from `cache`, a model
    from its stream."""
    if name == FUSED:
        return cache.frames(), decision.fused_scores, decision.fused_present
    kept = next(o for o in decision.outputs if o.model == name)
    return (lab for lab, _p in kept.frames(False)), kept.scores, kept.present


def _scorer(gt: MoseSplit, info: VideoInfo, scores: VideoScores) -> Callable[[int, np.ndarray], None]:
    def score(t: int, labels: np.ndarray) -> None:
        if scores.scored(t):
            stem = info.frames[t]
            scores.update(gt.annotation(info.name, stem), {PGMR: labels}, stem)

    return score


def _tapped(frames: Iterable[np.ndarray], tap: Callable[[int, np.ndarray], None]) -> Iterator[np.ndarray]:
    for t, labels in enumerate(frames):
        tap(t, labels)
        yield labels


def _write_output(
    run_store: Store, info: VideoInfo, labels: Iterable[np.ndarray], scores: np.ndarray, present: np.ndarray
) -> list[str]:
    """The kept output of one video under fused/: `labels` streams its (H, W) frames, `scores`/`present` (T, K)
    (read for frame t only once frame t was taken from `labels`)."""
    from stseg_core.models.base import FrameResult
    from stseg_core.predictions import write_video_predictions

    ids = info.object_ids
    results = (
        FrameResult(
            stem=s,
            labels=lab,
            scores={i: float(np.clip(scores[t, k], 0, 1)) for k, i in enumerate(ids)},
            present={i: bool(present[t, k]) for k, i in enumerate(ids)},
        )
        for t, (s, lab) in enumerate(zip(info.frames, labels, strict=True))
    )
    return write_video_predictions(
        run_store,
        PGMR,
        info.name,
        results,
        stems=info.frames,
        object_ids=ids,
        confidence_definition=CONFIDENCE,
        prefix=FUSED_PREFIX,
    )


class _FrameCache:
    """The pseudo-label's frames, deflated into a temporary file while PGMR votes, read back if it is kept."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="stseg-fused-")  # noqa: SIM115 (closed by close())
        self._spans: list[tuple[int, int, tuple[int, ...]]] = []

    def add(self, labels: np.ndarray) -> None:
        data = zlib.compress(np.ascontiguousarray(labels).tobytes(), 1)
        self._spans.append((self._file.tell(), len(data), labels.shape))
        self._file.write(data)

    def frames(self) -> Iterator[np.ndarray]:
        for offset, size, shape in self._spans:
            self._file.seek(offset)
            yield np.frombuffer(zlib.decompress(self._file.read(size)), np.uint8).reshape(shape)

    def close(self) -> None:
        self._file.close()
