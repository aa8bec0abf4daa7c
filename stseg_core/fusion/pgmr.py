"""PGMR for one video: features → historical trust → weighted-vote pseudo-label → agreement → recommendation.

Pure arrays in, arrays out; reading the run and the data, scoring and writing live in `stseg_core.fusion.stage`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.fusion.baselines import METHODS as BASELINES
from stseg_core.fusion.baselines import bbox_fuse_video
from stseg_core.fusion.calibrate import calibrated
from stseg_core.fusion.consistency import model_agreement
from stseg_core.fusion.features import VideoFeatures, video_features
from stseg_core.fusion.perfdb import FUSED
from stseg_core.fusion.recommend import KEEP_FUSED, Recommendation, Recommender
from stseg_core.fusion.spans import per_span
from stseg_core.fusion.video import ModelVideo, check_outputs
from stseg_core.fusion.vote import FusedVideo, fuse_video

PGMR = "pgmr"
"""Method name of the final output (the kept output: see CHOICES)."""
CHOICES = ("vote", "video", "span")
"""What PGMR keeps: the pseudo-label everywhere (the recommendation is still made and recorded), the
recommended candidate per video, or one per span (`stseg_core.fusion.spans`). The default, "vote", is the
best of the three on `bench/bench_pgmr_synthetic.py` (README, "PGMR on the synthetic benchmark")."""
DEFAULT_CHOICE = "vote"


@dataclass(frozen=True)
class VideoOutcome:
    """Everything PGMR decided for one video. `output`: (T, H, W) uint8 ids kept for the video (the
    recommended model's masks or the pseudo-label); `baselines`: method → (T, H, W) ids, when asked for."""

    video: str
    features: VideoFeatures
    fused: FusedVideo
    recommendation: Recommendation
    output: np.ndarray
    output_scores: np.ndarray
    output_present: np.ndarray
    baselines: dict[str, np.ndarray]


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


def process_video(
    video: str,
    outputs: list[ModelVideo],
    object_ids: tuple[int, ...],
    first_labels: np.ndarray,
    frames: Iterable[np.ndarray],
    num_frames: int,
    recommender: Recommender | None = None,
    with_baselines: bool = True,
    choose: str = DEFAULT_CHOICE,
    calibrate: bool = True,
) -> VideoOutcome:
    """Run PGMR on one video's model outputs (checked first: same shapes, ids from the first frame).

    choose: "vote", "video" or "span" (see CHOICES). calibrate: replace each model's confidences by the database's
    calibrated values before the vote (no database or no calibration for a model: unchanged); a kept model's
    output then carries its calibrated scores."""
    if choose not in CHOICES:
        raise BadInputError(f"unknown PGMR choice {choose!r}; known: {', '.join(CHOICES)}")
    object_ids = tuple(object_ids)
    check_outputs(video, outputs, object_ids)
    if recommender is not None and calibrate:
        outputs = [calibrated(o, recommender.db.calibration.get(o.model)) for o in outputs]
    features = video_features(frames, num_frames, first_labels, object_ids, outputs)
    names = [o.model for o in outputs]
    trust = None
    if recommender is not None:
        unknown = [m for m in names if m not in recommender.db.models]
        if unknown:
            raise BadInputError(
                f"performance database has no history for model(s) {', '.join(unknown)} "
                f"(it knows {', '.join(recommender.db.models)})"
            )
        by_name = recommender.trust(features)
        trust = [by_name[m] for m in names]
    fused = fuse_video(outputs, object_ids, trust, video)
    agreement = {o.model: model_agreement(o.labels, fused.labels, object_ids) for o in outputs}
    if recommender is None:
        rec = no_database(video, features, agreement)
    else:
        rec = recommender.recommend(video, features, agreement)
    if choose == "vote" and rec.choice != FUSED:
        rec = replace(rec, choice=FUSED, reason=f"vote only (the recommender would keep {rec.choice}: {rec.reason})")
    if choose == "span" and recommender is not None and recommender.method != KEEP_FUSED:
        output, scores, present, spans = per_span(recommender, features, outputs, fused)
        longest: dict[str, int] = {}
        for sp in spans:
            longest[sp.choice] = longest.get(sp.choice, 0) + sp.end - sp.start
        rec = replace(
            rec,
            choice=max(longest, key=longest.get),
            spans=[sp.to_json() for sp in spans],
            reason=f"per span ({len(spans)}): " + ", ".join(f"{sp.start}–{sp.end - 1} {sp.choice}" for sp in spans),
        )
    elif rec.choice == FUSED:
        output, scores, present = fused.labels, fused.scores, fused.present
    else:
        chosen = outputs[names.index(rec.choice)]
        output, scores, present = chosen.labels, chosen.scores, chosen.present
    baselines = {m: bbox_fuse_video(outputs, object_ids, m, video) for m in BASELINES} if with_baselines else {}
    return VideoOutcome(video, features, fused, rec, output, scores, present, baselines)
