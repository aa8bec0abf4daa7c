"""`oneshot`: a weight-free OSVOS-like tracker — a per-video pixel classifier fitted on the first frame only.

Notation: K objects, classes c ∈ {0 (background), 1…K}; per pixel x at working size h×w its colour bin
b(x) (CIE Lab quantised to 8×12×12), texture bin u(x) (local standard deviation of L, 8 levels) and position
p(x) ∈ [0, 1]². Fitted on frame 0 from its annotation (a naive-Bayes classifier, counts + Laplace smoothing):

    P(c | x) ∝ π_c · H_c[b(x)] · G_c[u(x)] · N(p(x); μ_c, σ²)     (background: uniform in position)

π_c = the class's share of frame 0, H_c / G_c its colour / texture histograms, μ_c its frame-0 centroid,
σ = `position_sigma` (0.12 of the frame: objects move, but on the synthetic `valid` splits of seeds 0–2 a
tight prior beat a loose one, since colour alone confuses objects with a colourful background). Every later
frame is classified independently (no propagation, so an object that reappears after an occlusion is found
again at once; look-alike objects are told apart only by the position prior, so they get confused).
Posteriors are box-smoothed; a pixel is foreground when P(0 | x) < ½ and then takes the most likely object;
each object keeps its largest connected region (and regions at least `keep_ratio` of it).

Confidence: the object's classifier margin, mean over its kept pixels of P(c | x) − max_{c'≠c} P(c' | x).
Presence: its kept area is at least `vanish_ratio` × its frame-0 area and its mean posterior there exceeds the
background's by at least `min_margin` (look-alikes share posterior mass, so the margin alone would hide them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel, checked_frames
from stseg_core.models.pixelfeat import colour_texture, positions, shrink, upsample_labels, working_size

_L_LEVELS, _AB_LEVELS = 8, 12  # lightness and each chroma channel → 1152 colour bins
_AB_RANGE = (0.25, 0.75)  # Lab a, b of ordinary colours (scaled 0…1) lie well inside this
_COLOURS = _L_LEVELS * _AB_LEVELS * _AB_LEVELS
_TEXTURE_LEVELS = 8
_ALPHA = 0.2  # Laplace pseudo-count per bin
_SMOOTH = 5  # posterior box filter (pixels at working size)


@dataclass(frozen=True)
class OneShotConfig:
    """Options (all overridable by name through the registry).

    size: short side (pixels) the classifier works at. position_sigma: spread of each object's position prior,
    as a share of the frame (larger = position matters less). vanish_ratio: an object is absent when its kept
    area falls below this share of its frame-0 area. min_margin: or when its mean posterior over the background's
    is below this. keep_ratio: connected regions of an object smaller than this share of its largest are dropped.
    probs: emit K×H×W soft probabilities.
    """

    size: int = 240
    position_sigma: float = 0.12
    vanish_ratio: float = 0.2
    min_margin: float = 0.2
    keep_ratio: float = 0.3
    probs: bool = True

    def __post_init__(self) -> None:
        if self.size < 16:
            raise BadInputError(f"oneshot option size={self.size} must be at least 16 pixels")
        if self.position_sigma <= 0:
            raise BadInputError(f"oneshot option position_sigma={self.position_sigma} must be > 0")
        for name in ("vanish_ratio", "min_margin", "keep_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise BadInputError(f"oneshot option {name}={getattr(self, name)} must be in [0, 1)")


def _bins(feat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour bin (0…1151) and texture bin (0…7) per pixel of an h×w×4 feature map."""
    lo, hi = _AB_RANGE
    lum = np.clip((feat[..., 0] * _L_LEVELS).astype(np.int32), 0, _L_LEVELS - 1)
    ab = np.clip(((feat[..., 1:3] - lo) * (_AB_LEVELS / (hi - lo))).astype(np.int32), 0, _AB_LEVELS - 1)
    colour = (lum * _AB_LEVELS + ab[..., 0]) * _AB_LEVELS + ab[..., 1]
    texture = np.clip((feat[..., 3] * _TEXTURE_LEVELS).astype(np.int32), 0, _TEXTURE_LEVELS - 1)
    return colour, texture


def _hist(index: np.ndarray, mask: np.ndarray, bins: int) -> np.ndarray:
    """Laplace-smoothed normalised histogram of `index` over `mask`."""
    h = np.bincount(index[mask], minlength=bins).astype(np.float64) + _ALPHA
    hist: np.ndarray = (h / h.sum()).astype(np.float32)
    return hist


class OneShot(VOSModel):
    """First-frame pixel classifier applied to every frame; see the module docstring."""

    name = "oneshot"
    default_size = 240
    confidence_definition = (
        "classifier margin: mean over the object's kept pixels of its posterior minus the best other class's "
        "posterior (naive Bayes on colour, texture and position fitted on frame 0); 0 when absent"
    )

    def __init__(self, config: OneShotConfig | None = None) -> None:
        self.config = config or OneShotConfig()

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        cfg = self.config
        ids = video.object_ids
        H, W = video.height, video.width
        h, w = working_size(H, W, cfg.size)
        frames = checked_frames(video)
        _, first = next(frames)
        small = shrink(video.first_labels, h, w, nearest=True)
        colour, texture = _bins(colour_texture(shrink(first, h, w)))
        masks = [small == c for c in (0, *ids)]
        log_colour = np.log(np.stack([_hist(colour, m, _COLOURS) for m in masks]))  # (K+1)×1152
        log_texture = np.log(np.stack([_hist(texture, m, _TEXTURE_LEVELS) for m in masks]))
        areas = np.array([max(int(m.sum()), 1) for m in masks], np.float64)
        log_prior = np.log(areas / areas.sum())
        pos = positions(h, w)
        log_pos = np.zeros((len(ids) + 1, h, w), np.float32)  # background: uniform on the unit square
        for c, m in enumerate(masks[1:], start=1):
            centre = pos[m].mean(axis=0) if m.any() else np.full(2, 0.5, np.float32)
            d2 = ((pos - centre) ** 2).sum(-1)
            s2 = cfg.position_sigma**2
            log_pos[c] = -d2 / (2 * s2) - np.log(2 * np.pi * s2)
        static = (log_prior[:, None, None] + log_pos).astype(np.float32)
        yield self.first_result(video, probs=cfg.probs)
        for t, rgb in frames:
            colour, texture = _bins(colour_texture(shrink(rgb, h, w)))
            post = self._posterior(static + log_colour[:, colour] + log_texture[:, texture])
            labels, scores, present = self._decide(post, areas, ids)
            probs = np.zeros_like(post)
            probs[0] = labels == 0
            for k in range(1, len(ids) + 1):
                probs[k] = np.where(labels == ids[k - 1], post[k], 0.0)
                probs[0] += np.where(labels == ids[k - 1], 1.0 - post[k], 0.0)
            full, soft = upsample_labels(probs, ids, H, W)
            yield FrameResult(
                stem=video.stems[t], labels=full, scores=scores, present=present, probs=soft if cfg.probs else None
            )

    @staticmethod
    def _posterior(log_joint: np.ndarray) -> np.ndarray:
        """(K+1)×h×w normalised posteriors from log joint likelihoods, box-smoothed per class."""
        import cv2

        log_joint -= log_joint.max(axis=0, keepdims=True)
        post = np.exp(log_joint)
        post /= post.sum(axis=0, keepdims=True)
        return np.stack([cv2.blur(p, (_SMOOTH, _SMOOTH)) for p in post])

    def _decide(
        self, post: np.ndarray, areas: np.ndarray, ids: tuple[int, ...]
    ) -> tuple[np.ndarray, dict[int, float], dict[int, bool]]:
        """Working-size labels (kept regions only), and per object its margin and presence."""
        import cv2

        cfg = self.config
        # foreground first (look-alikes split their posterior between them, so a plain arg-max would hand
        # their pixels to the background), then the most likely object among the foreground pixels
        best = np.where(post[0] < 0.5, 1 + np.argmax(post[1:], axis=0), 0)
        top2 = np.sort(post, axis=0)[-2:]
        labels = np.zeros(best.shape, np.uint8)
        scores: dict[int, float] = {}
        present: dict[int, bool] = {}
        for c, oid in enumerate(ids, start=1):
            mask = (best == c).astype(np.uint8)
            n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            kept = np.zeros(mask.shape, bool)
            if n > 1:
                sizes = stats[1:, cv2.CC_STAT_AREA]
                for j in np.flatnonzero(sizes >= cfg.keep_ratio * sizes.max()):
                    kept |= comp == j + 1
            margin = float((top2[1] - top2[0])[kept].mean()) if kept.any() else 0.0
            over_bg = float((post[c] - post[0])[kept].mean()) if kept.any() else 0.0
            present[oid] = bool(kept.sum() >= cfg.vanish_ratio * areas[c] and over_bg >= cfg.min_margin)
            scores[oid] = margin if present[oid] else 0.0
            if present[oid]:
                labels[kept] = oid
        return labels, scores, present


def build(**overrides: Any) -> OneShot:
    """Registry builder: overrides are OneShotConfig fields, given as values or strings (from the CLI/env)."""
    from stseg_core.models.options import parse_options

    return OneShot(parse_options(OneShotConfig, overrides, model="oneshot", note="; it takes no checkpoint"))
