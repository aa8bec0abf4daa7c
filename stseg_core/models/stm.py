"""`stm`: a weight-free STM-like tracker — pixels of the current frame read their labels from a memory.

Notation: working size h×w (short side ≤ `size`); per pixel a key q = (L, a, b, texture, λ·x, λ·y) from
`stseg_core.models.pixelfeat` (λ = `position_weight`). The memory holds frame 0 (keys and its annotation as
one-hot values) and the last `recent` frames with the tracker's own predicted soft labels; background keys
are subsampled (every `bg_stride`-th pixel) so that small objects keep their weight. For every pixel of
frame t, attention over the N memory keys m_j with values v_j ∈ Δ^{K}:

    a_j = softmax_j(−‖q − m_j‖² / τ),     p(x) = Σ_j a_j v_j            (τ = `temperature`)

The labels are the arg-max of p upsampled to full size. New frames enter the memory with their predicted p,
so the tracker follows appearance and position changes — and carries its own mistakes forward (drift).

Confidence: match similarity of the object, mean over its predicted pixels of p_k(x) · exp(−d_min(x) / τ),
d_min the squared distance to the nearest key. Presence: its area is at least `vanish_ratio` × its frame-0 area.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel, checked_frames
from stseg_core.models.pixelfeat import colour_texture, onehot, positions, shrink, upsample_labels, working_size


@dataclass(frozen=True)
class StmConfig:
    """Options (all overridable by name through the registry).

    size: short side (pixels) of the working frames. recent: predicted frames kept in memory besides frame 0.
    temperature: softmax temperature τ on squared feature distances. position_weight: λ, how much pixel
    position counts against colour and texture. bg_stride: keep every n-th background pixel as a key.
    vanish_ratio: an object is absent below this share of its frame-0 area. probs: emit soft probabilities.
    """

    size: int = 48
    recent: int = 1
    temperature: float = 0.005
    position_weight: float = 1.0
    bg_stride: int = 3
    vanish_ratio: float = 0.1
    probs: bool = True

    def __post_init__(self) -> None:
        if self.size < 8:
            raise BadInputError(f"stm option size={self.size} must be at least 8 pixels")
        if self.recent < 0 or self.bg_stride < 1:
            raise BadInputError(f"stm options recent={self.recent} must be ≥ 0 and bg_stride={self.bg_stride} ≥ 1")
        if self.temperature <= 0 or self.position_weight < 0:
            raise BadInputError(
                f"stm options temperature={self.temperature} must be > 0 and position_weight={self.position_weight} ≥ 0"
            )
        if not 0.0 <= self.vanish_ratio < 1.0:
            raise BadInputError(f"stm option vanish_ratio={self.vanish_ratio} must be in [0, 1)")


class Stm(VOSModel):
    """Space-time memory matching without learnt weights; see the module docstring."""

    name = "stm"
    default_size = 48
    confidence_definition = (
        "match similarity: mean over the object's predicted pixels of its attention readout times "
        "exp(-distance to the nearest memory key / temperature); 0 when absent"
    )

    def __init__(self, config: StmConfig | None = None) -> None:
        self.config = config or StmConfig()

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        cfg = self.config
        ids = video.object_ids
        H, W = video.height, video.width
        h, w = working_size(H, W, cfg.size)
        pos = positions(h, w) * cfg.position_weight
        frames = checked_frames(video)
        _, first = next(frames)
        keys0 = self._keys(first, h, w, pos)
        values0 = onehot(shrink(video.first_labels, h, w, nearest=True), ids).reshape(len(ids) + 1, -1).T
        anchor = self._sample(keys0, values0)
        areas = values0.sum(axis=0)
        recent: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=cfg.recent)  # (keys, values) per frame
        yield self.first_result(video, probs=cfg.probs)
        for t, rgb in frames:
            query = self._keys(rgb, h, w, pos)
            mem_k = np.concatenate([anchor[0], *(k for k, _v in recent)])
            mem_v = np.concatenate([anchor[1], *(v for _k, v in recent)])
            p, sim = self._read(query, mem_k, mem_v)
            best = np.argmax(p, axis=1)
            scores: dict[int, float] = {}
            present: dict[int, bool] = {}
            for c, oid in enumerate(ids, start=1):
                mine = best == c
                present[oid] = bool(mine.sum() >= max(1.0, cfg.vanish_ratio * areas[c]))
                scores[oid] = float((p[mine, c] * sim[mine]).mean()) if present[oid] else 0.0
                if not present[oid]:
                    p[:, 0] += p[:, c]
                    p[:, c] = 0.0
            recent.append(self._sample(query, p))
            full, soft = upsample_labels(np.ascontiguousarray(p.T.reshape(-1, h, w)), ids, H, W)
            yield FrameResult(
                stem=video.stems[t], labels=full, scores=scores, present=present, probs=soft if cfg.probs else None
            )

    @staticmethod
    def _keys(rgb: np.ndarray, h: int, w: int, pos: np.ndarray) -> np.ndarray:
        """(h·w)×6 float32 keys: colour, texture, weighted position."""
        return np.concatenate([colour_texture(shrink(rgb, h, w)), pos], axis=-1).reshape(h * w, -1)

    def _sample(self, keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Memory entries of one frame: every pixel whose value is mostly an object, every n-th other one."""
        keep = values[:, 0] < 0.5
        keep[:: self.config.bg_stride] = True
        return np.ascontiguousarray(keys[keep]), np.ascontiguousarray(values[keep])

    def _read(self, query: np.ndarray, mem_k: np.ndarray, mem_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Softmax-attention readout: (P×(K+1) label distribution, P nearest-key similarity)."""
        import cv2

        tau = self.config.temperature
        # −‖q − m‖²/τ = (2 q·m − ‖m‖²)/τ − ‖q‖²/τ; the last term is constant per query row (the softmax ignores
        # it), and the rest is one matrix product of augmented keys: [2q/τ, −1/τ] · [m, ‖m‖²]
        qa = np.concatenate([query * (2.0 / tau), np.full((len(query), 1), -1.0 / tau, np.float32)], axis=1)
        ka = np.concatenate([mem_k, (mem_k * mem_k).sum(1, keepdims=True)], axis=1)
        s = qa @ ka.T
        top = s.max(axis=1, keepdims=True)
        s -= top
        np.maximum(s, -40.0, out=s)  # exp(−40) ≈ 4e−18 is nothing next to the nearest key's 1; avoids denormals
        weights = cv2.exp(s, s)  # in place: one P×N buffer in all
        p = weights @ mem_v
        p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        sim = np.exp(-np.maximum((query * query).sum(1) / tau - top[:, 0], 0.0))
        return p.astype(np.float32), sim.astype(np.float32)


def build(**overrides: Any) -> Stm:
    """Registry builder: overrides are StmConfig fields, given as values or strings (from the CLI/env)."""
    from stseg_core.models.options import parse_options

    return Stm(parse_options(StmConfig, overrides, model="stm", note="; it takes no checkpoint"))
