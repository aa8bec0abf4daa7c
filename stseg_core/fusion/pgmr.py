"""PGMR for one video: features → historical trust → weighted-vote pseudo-label → agreement → recommendation.

Frame streams in (`ModelFrames`), per-frame results out to a callback: memory holds one frame per model, not
the video. Reading the run and the data, scoring and writing the kept output live in `stseg_core.fusion.stage`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.fusion.baselines import METHODS as BASELINES
from stseg_core.fusion.baselines import bbox_fuse_frame
from stseg_core.fusion.calibrate import calibrated
from stseg_core.fusion.consistency import AgreementSum, frame_disagreement
from stseg_core.fusion.features import VideoFeatures, video_features
from stseg_core.fusion.perfdb import FUSED
from stseg_core.fusion.recommend import KEEP_FUSED, Recommendation, Recommender
from stseg_core.fusion.spans import Span, frame_agreement, span_plan
from stseg_core.fusion.video import Frame, ModelFrames, check_frame, check_probs, check_streams, index_lut
from stseg_core.fusion.vote import fuse_frame_of, normalise_trust

PGMR = "pgmr"
"""Method name of the final output (the kept output: see CHOICES)."""
DERIVED = (*BASELINES, FUSED, PGMR)
"""Evaluated methods made from the models' masks, in Table 2's order after the models."""
DISPLAY_NAMES = {FUSED: "pseudo-label (vote only)", PGMR: "PGMR (kept output)"}
"""How Table 2 names the vote and the kept output (other methods are named by themselves)."""
CHOICES = ("vote", "video", "span")
"""What PGMR keeps: the pseudo-label everywhere (the recommendation is still made and recorded), the
recommended candidate per video, or one per span (`stseg_core.fusion.spans`). The default, "vote", is the
best of the three on `bench/bench_pgmr_synthetic.py` (README, "PGMR on the synthetic benchmark")."""
DEFAULT_CHOICE = "vote"


def no_database(video: str, features: VideoFeatures, agreement: dict[str, float]) -> Recommendation:
    """The documented fallback without a performance database: equal trust, keep the pseudo-label."""
    return Recommendation(
        video,
        FUSED,
        "none",
        {},
        {m: round(a, 4) for m, a in agreement.items()},
        dict.fromkeys(agreement, 1.0),
        [],
        "no performance database: every model trusted equally, fused pseudo-label kept",
    )


@dataclass(frozen=True)
class FusedFrame:
    """Frame t of a video as PGMR's second pass sees it: each model's (H, W) ids, the pseudo-label, and the
    baselines' ids (method → (H, W), when asked for)."""

    t: int
    models: list[np.ndarray]
    labels: np.ndarray
    baselines: dict[str, np.ndarray]


@dataclass(frozen=True)
class VideoDecision:
    """What PGMR decided for one streamed video; the frames themselves went to `on_frame`.

    outputs: the streams as voted (calibrated scores when the database calibrates), so a kept model is written
    with the scores the vote used; fused_scores / fused_present: the pseudo-label's (T, K); plan: with per-span
    choice, [(start, end, choice)] (stitch it with `spans.Stitcher`, then `with_spans` completes the
    recommendation), else empty and `recommendation.choice` is the kept output."""

    video: str
    features: VideoFeatures
    outputs: list[ModelFrames]
    fused_scores: np.ndarray
    fused_present: np.ndarray
    recommendation: Recommendation
    plan: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class _Votes:
    """The second pass's small results: the pseudo-label's (T, K) scores and presence, agreement sums, and
    with per-span choice the (M, T) per-frame agreement."""

    scores: np.ndarray
    present: np.ndarray
    agreement: dict[str, AgreementSum]
    per_frame: np.ndarray | None


def decide_video(
    video: str,
    outputs: list[ModelFrames],
    object_ids: tuple[int, ...],
    first_labels: np.ndarray,
    frames: Iterable[np.ndarray],
    num_frames: int,
    recommender: Recommender | None = None,
    with_baselines: bool = True,
    choose: str = DEFAULT_CHOICE,
    calibrate: bool = True,
    on_frame: Callable[[FusedFrame], None] | None = None,
) -> VideoDecision:
    """PGMR on one video in two passes over the models' frames, so memory holds one frame per model.

    Pass 1 checks every frame and measures the features (the recommender's trust needs them before any vote);
    pass 2 votes frame by frame, accumulates each model's agreement with the pseudo-label (per frame too, for
    per-span choice) and hands every frame (models, pseudo-label, baselines) to `on_frame`. Then the
    recommendation picks the kept output. choose: "vote", "video" or "span" (see CHOICES). calibrate: replace
    each model's confidences by the database's calibrated values before the vote (no database or no
    calibration for a model: unchanged).
    """
    if choose not in CHOICES:
        raise BadInputError(f"unknown PGMR choice {choose!r}; known: {', '.join(CHOICES)}")
    object_ids = tuple(object_ids)
    check_streams(video, outputs, object_ids)
    if recommender is not None and calibrate:
        outputs = [calibrated(o, recommender.db.calibration.get(o.model)) for o in outputs]
    lut = index_lut(object_ids)
    disagreements = [
        frame_disagreement(np.stack([lut[lab] for lab, _p in frame]))
        for frame in _in_step(outputs, video, object_ids, with_probs=False, check_labels=True)
    ]
    features = video_features(frames, num_frames, first_labels, object_ids, outputs, disagreements)
    names = [o.model for o in outputs]
    trust = normalise_trust(_trust(recommender, features, names), len(outputs))
    by_span = choose == "span" and recommender is not None and recommender.method != KEEP_FUSED
    votes = _vote(video, outputs, object_ids, trust, with_baselines, by_span, on_frame)
    agreed = {m: a.value() for m, a in votes.agreement.items()}
    rec = (
        no_database(video, features, agreed) if recommender is None else recommender.recommend(video, features, agreed)
    )
    if choose == "vote" and rec.choice != FUSED:
        rec = replace(rec, choice=FUSED, reason=f"vote only (the recommender would keep {rec.choice}: {rec.reason})")
    plan = []
    if votes.per_frame is not None and recommender is not None:
        plan = span_plan(recommender, features, votes.per_frame, names)
    return VideoDecision(video, features, outputs, votes.scores, votes.present, rec, plan)


def with_spans(rec: Recommendation, spans: list[Span]) -> Recommendation:
    """The recommendation of a per-span output: its spans, and as `choice` the candidate kept longest."""
    longest: dict[str, int] = {}
    for sp in spans:
        longest[sp.choice] = longest.get(sp.choice, 0) + sp.end - sp.start
    return replace(
        rec,
        choice=max(longest, key=lambda c: longest[c]),
        spans=[sp.to_json() for sp in spans],
        reason=f"per span ({len(spans)}): " + ", ".join(f"{sp.start}–{sp.end - 1} {sp.choice}" for sp in spans),
    )


def _trust(recommender: Recommender | None, features: VideoFeatures, names: list[str]) -> list[float] | None:
    """Each model's historical trust on videos like this one (None without a database: uniform)."""
    if recommender is None:
        return None
    unknown = [m for m in names if m not in recommender.db.models]
    if unknown:
        raise BadInputError(
            f"performance database has no history for model(s) {', '.join(unknown)} "
            f"(it knows {', '.join(recommender.db.models)})"
        )
    by_name = recommender.trust(features)
    return [by_name[m] for m in names]


def _vote(
    video: str,
    outputs: list[ModelFrames],
    object_ids: tuple[int, ...],
    trust: np.ndarray,
    with_baselines: bool,
    per_frame: bool,
    on_frame: Callable[[FusedFrame], None] | None,
) -> _Votes:
    """Pass 2: the pseudo-label frame by frame (`vote.fuse_frame_of`, as `fuse_video` does it)."""
    T, K = outputs[0].shape[0], len(object_ids)
    votes = _Votes(
        np.zeros((T, K), np.float32),
        np.zeros((T, K), bool),
        {o.model: AgreementSum(object_ids) for o in outputs},
        np.zeros((len(outputs), T)) if per_frame else None,
    )
    have_probs = any(o.has_probs for o in outputs)
    for t, frame in enumerate(_in_step(outputs, video, object_ids, with_probs=have_probs, check_labels=False)):
        labels = [lab for lab, _p in frame]
        probs = [p for _lab, p in frame] if have_probs else None
        fused, votes.scores[t], votes.present[t] = fuse_frame_of(outputs, t, labels, probs, trust, object_ids)
        for m, (o, lab) in enumerate(zip(outputs, labels, strict=True)):
            votes.agreement[o.model].add(lab, fused)
            if votes.per_frame is not None:
                votes.per_frame[m, t] = frame_agreement(lab[None], fused[None], object_ids)[0]
        if on_frame is not None:
            baselines = {m: bbox_fuse_frame(labels, object_ids, m) for m in BASELINES} if with_baselines else {}
            on_frame(FusedFrame(t, labels, fused, baselines))
    return votes


def _in_step(
    outputs: list[ModelFrames], video: str, object_ids: tuple[int, ...], with_probs: bool, check_labels: bool
) -> Iterator[tuple[Frame, ...]]:
    """One pass over the models' frames in step: per frame, each model's (labels, probs or None). The label maps
    are checked when `check_labels` (pass 1; pass 2 reads the same ones again), probabilities whenever read."""
    for t, frame in enumerate(zip(*(o.frames(with_probs) for o in outputs), strict=True)):
        for o, (lab, probs) in zip(outputs, frame, strict=True):
            if check_labels:
                check_frame(video, o, t, lab, object_ids)
            if probs is not None:
                check_probs(video, o, t, probs, object_ids)
        yield frame
