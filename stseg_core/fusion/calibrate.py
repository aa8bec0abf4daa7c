"""Calibrated confidences: per model, a monotone map from its own confidence to its observed per-frame accuracy.

Models' confidences mean different things (a flow-consistency share, a classifier margin, a match
similarity; LiVOS has none), so the vote cannot compare them as they are. From the performance database's
split (ground truth known) every model gives pairs (s, a): s = its confidence for object k in frame t
(t ≥ 1), a = the IoU of its mask of k with the truth in that frame (1 when both are empty). An isotonic
regression (pool-adjacent-violators, weights = pair counts) fits a non-decreasing step map s ↦ â(s); between
the fitted points it is interpolated linearly and it is flat beyond them. With fewer than `MIN_PAIRS` pairs
the map is the identity (too little history to say anything). Applied on a split without ground truth, it
replaces each score by â(s) before the vote — learnt on `valid`, never on the split being fused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from stseg_core.fusion.video import ModelFrames, ModelVideo

MIN_PAIRS = 50
_BINS = 20  # pairs are pooled into at most this many confidence quantiles before the fit (a short, stable map)


@dataclass(frozen=True)
class Calibration:
    """A monotone map given by its knots: confidences `x` (increasing) → accuracies `y` (non-decreasing).
    Empty knots = identity."""

    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    pairs: int = 0

    @property
    def identity(self) -> bool:
        return not self.x

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, np.float32)
        if self.identity:
            return scores
        out: np.ndarray = np.interp(scores, self.x, self.y).astype(np.float32)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y), "pairs": self.pairs}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Calibration:
        return cls(tuple(obj.get("x", ())), tuple(obj.get("y", ())), int(obj.get("pairs", 0)))


def isotonic(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing fit of `y` (ordered by `x`) minimising weighted squared
    error; returns the fitted value for each input, in the input's order."""
    order = np.argsort(x, kind="stable")
    ys = np.asarray(y, np.float64)[order]
    ws = np.ones(len(ys)) if w is None else np.asarray(w, np.float64)[order]
    level, weight, count = [], [], []
    for v, wt in zip(ys, ws, strict=True):
        level.append(v)
        weight.append(wt)
        count.append(1)
        while len(level) > 1 and level[-2] > level[-1]:  # merge the violating pair into its weighted mean
            wsum = weight[-2] + weight[-1]
            merged = (level[-2] * weight[-2] + level[-1] * weight[-1]) / wsum
            n = count[-2] + count[-1]
            level[-2:], weight[-2:], count[-2:] = [merged], [wsum], [n]
    fitted = np.repeat(level, count)
    out = np.empty_like(fitted)
    out[order] = fitted
    return out


def fit(scores: np.ndarray, accuracy: np.ndarray, min_pairs: int = MIN_PAIRS) -> Calibration:
    """The calibration of one model from its (confidence, accuracy) pairs; identity below `min_pairs`."""
    s = np.asarray(scores, np.float64).ravel()
    a = np.asarray(accuracy, np.float64).ravel()
    if s.size < min_pairs:
        return Calibration(pairs=int(s.size))
    # pool into confidence quantiles first: the map gets ≤ _BINS knots, and equal confidences share one value
    edges = np.unique(np.quantile(s, np.linspace(0, 1, _BINS + 1)))
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, max(len(edges) - 2, 0))
    used = np.unique(which)
    xs = np.array([s[which == b].mean() for b in used])
    ys = np.array([a[which == b].mean() for b in used])
    ws = np.array([np.count_nonzero(which == b) for b in used], np.float64)
    fitted = isotonic(xs, ys, ws)
    order = np.argsort(xs)
    return Calibration(
        tuple(round(float(v), 6) for v in xs[order]), tuple(round(float(v), 6) for v in fitted[order]), int(s.size)
    )


def accuracy_pairs(output: ModelVideo, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidences, IoUs) of one model on one video with ground truth, frames 1…T−1, every object."""
    s, a = [], []
    for t in range(1, output.shape[0]):
        for k, oid in enumerate(output.object_ids):
            pred, gt = output.labels[t] == oid, truth[t] == oid
            union = np.count_nonzero(pred | gt)
            s.append(float(output.scores[t, k]))
            a.append(1.0 if union == 0 else np.count_nonzero(pred & gt) / union)
    return np.array(s), np.array(a)


Output = TypeVar("Output", ModelVideo, ModelFrames)


def calibrated(output: Output, calibration: Calibration | None) -> Output:
    """`output` (arrays or a frame stream) with its scores replaced by their calibrated values (unchanged
    without a calibration)."""
    if calibration is None or calibration.identity:
        return output
    return replace(output, scores=calibration(output.scores))
