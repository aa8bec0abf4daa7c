"""Confidence-weighted voting: the pseudo-label of several models' masks, with a fixed conflict-resolution rule.

Weights. Model m's *trust* τ_m is its historical performance: its expected J&F (0…1) on similar videos
of the performance database, raised to the database's sharpening power γ (see
`stseg_core.fusion.recommend.TRUST_POWERS`); uniform when there is no database. In frame t its vote for
object k weighs
    w[m, k+1] = τ_m · s[m, t, k]          (s = the model's own per-frame confidence for the object, mapped
                                           to its accuracy by the database's calibration when `pgmr` has one)
and its vote for background weighs
    w[m, 0]   = τ_m · mean_k s[m, t, k]   (its overall confidence in that frame),
so a model that is unsure in a frame counts less for everything it says there.

Rules, applied per frame:
1. Presence: object k is absent when the models that call it absent carry more trust than those that call
   it present (Σ τ over `present = False` > Σ τ over `present = True`); a tie keeps it. An absent object
   gets no pixels, whatever any model painted.
2. Agreement: a pixel where every model gives the same label keeps it (background if that object is absent).
3. Vote: every other pixel goes to the label with the largest summed weight. A model with soft
   probabilities votes p_k · w[m, k+1] for each object and (1 − Σ_k p_k) · w[m, 0] for background; a model
   without votes its hard label with full weight.
4. One pixel gets exactly one label, so overlapping claims are settled by the vote.
5. Ties (scores equal after rounding to 1e-9) go to the lowest label index: background first, then the
   object with the smaller id. Sums run over models in the given order, so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.fusion.consistency import agreement_map
from stseg_core.fusion.video import ModelFrames, ModelVideo, check_outputs, id_table, index_lut

_ROUND = 9


@dataclass(frozen=True)
class FusedVideo:
    """The pseudo-label of one video: labels (T, H, W) uint8 ids; scores (T, K) float32; present (T, K) bool."""

    labels: np.ndarray
    object_ids: tuple[int, ...]
    scores: np.ndarray
    present: np.ndarray


def normalise_trust(trust: Sequence[float] | np.ndarray | None, num_models: int) -> np.ndarray:
    """(M,) float64 trust ≥ 0; None or all-zero → uniform (no history: every model counts the same)."""
    if trust is None:
        return np.ones(num_models)
    trust = np.asarray(trust, dtype=np.float64)
    if trust.shape != (num_models,) or not np.all(np.isfinite(trust)) or np.any(trust < 0):
        raise BadInputError(f"trust must be {num_models} finite values ≥ 0, got {trust.tolist()}")
    return trust if trust.sum() > 0 else np.ones(num_models)


def presence(present: np.ndarray, trust: np.ndarray) -> np.ndarray:
    """(M, K) bool presence claims, (M,) trust → (K,) bool: kept unless absent carries strictly more trust."""
    yes = (trust[:, None] * present).sum(axis=0)
    no = (trust[:, None] * ~present).sum(axis=0)
    kept: np.ndarray = np.round(no, _ROUND) <= np.round(yes, _ROUND)
    return kept


def vote_weights(trust: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(M,) trust and (M, K) per-frame confidences → (M, K+1) vote weights (column 0 = background)."""
    scores = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
    frame_conf = scores.mean(axis=1) if scores.shape[1] else np.ones(scores.shape[0])
    weights: np.ndarray = trust[:, None] * np.concatenate([frame_conf[:, None], scores], axis=1)
    return weights


def fuse_frame(
    frames: Sequence[np.ndarray] | np.ndarray,
    weights: np.ndarray,
    keep: np.ndarray,
    probs: Sequence[np.ndarray | None] | None = None,
    object_ids: tuple[int, ...] | None = None,
) -> np.ndarray:
    """One frame's pseudo-label.

    frames: M label maps (H, W) uint8 of object ids (a list or an (M, H, W) array); weights: (M, K+1) from
    `vote_weights`; keep: (K,) bool from `presence`; probs: per model None or (K, H, W) uint8 probability × 255;
    object_ids: the K ids (default 1…K). Returns (H, W) uint8 ids. Only conflict pixels are looked up and
    voted on, so the cost is a few comparisons per pixel plus work proportional to the disagreement.
    """
    object_ids = tuple(range(1, weights.shape[1])) if object_ids is None else tuple(object_ids)
    agree = agreement_map(frames)
    out = frames[0].copy()
    for k in np.flatnonzero(~keep):
        out[agree & (out == object_ids[k])] = 0
    where = np.nonzero(~agree)
    n = where[0].size
    if n == 0:
        return out
    lut = index_lut(object_ids)
    cols = np.arange(n)
    votes = np.zeros((weights.shape[1], n))
    for m in range(len(frames)):
        p = probs[m] if probs is not None else None
        if p is not None:
            soft = p[:, where[0], where[1]].astype(np.float64) / 255.0
            votes[1:] += weights[m, 1:, None] * soft
            votes[0] += weights[m, 0] * np.clip(1.0 - soft.sum(axis=0), 0.0, 1.0)
        else:
            lab = lut[frames[m][where]]
            votes[lab, cols] += weights[m, lab]
    votes = np.round(votes, _ROUND)
    votes[np.concatenate([[False], ~keep])] = -np.inf
    out[where] = id_table(object_ids)[np.argmax(votes, axis=0)]
    return out


def fuse_video(
    outputs: list[ModelVideo], object_ids: tuple[int, ...], trust: Sequence[float] | None = None, video: str = "<video>"
) -> FusedVideo:
    """Fuse M models' outputs for one video into a pseudo-label (rules in the module docstring).

    trust: (M,) historical performance in the order of `outputs`, or None for uniform. The fused score of
    an object in a frame is the trust-weighted mean of the models' scores; it is present when kept and painted.
    """
    object_ids = tuple(object_ids)
    check_outputs(video, outputs, object_ids)
    weights = normalise_trust(trust, len(outputs))
    T, K = outputs[0].shape[0], len(object_ids)
    labels = np.empty(outputs[0].shape, np.uint8)
    scores = np.zeros((T, K), np.float32)
    present = np.zeros((T, K), bool)
    have_probs = any(o.probs is not None for o in outputs)
    for t in range(T):
        probs = [None if o.probs is None else o.probs[t] for o in outputs] if have_probs else None
        labels[t], scores[t], present[t] = fuse_frame_of(
            outputs, t, [o.labels[t] for o in outputs], probs, weights, object_ids
        )
    return FusedVideo(labels, object_ids, scores, present)


def fuse_frame_of(
    outputs: Sequence[ModelVideo | ModelFrames],
    t: int,
    frames: Sequence[np.ndarray],
    probs: Sequence[np.ndarray | None] | None,
    trust: np.ndarray,
    object_ids: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame t of the pseudo-label: (H, W) ids, (K,) fused scores, (K,) presence. `outputs` give the (T, K)
    scores and presence (`ModelVideo` or a frame stream), `frames`/`probs` frame t's label maps and
    probabilities (None per model, or None for all), `trust` the normalised (M,) trust."""
    frame_scores = np.stack([o.scores[t] for o in outputs])
    keep = presence(np.stack([o.present[t] for o in outputs]), trust)
    fused = fuse_frame(frames, vote_weights(trust, frame_scores), keep, probs, object_ids)
    scores = (trust[:, None] * frame_scores).sum(axis=0) / trust.sum()
    present = keep & np.array([np.count_nonzero(fused == i) > 0 for i in object_ids], bool)
    return fused, scores, present
