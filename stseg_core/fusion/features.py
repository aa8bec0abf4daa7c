"""Per-video features the recommender compares videos by: scene complexity, objects, and ensemble-only signals.

Scene features are measured on frames shrunk to at most `ANALYSIS_SIDE` pixels on the long side (a
texture/motion summary, not a segmentation), on at most `max_samples` evenly spaced frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from stseg_core.fusion.consistency import frame_disagreement
from stseg_core.fusion.video import ModelFrames, ModelVideo, index_lut

ANALYSIS_SIDE = 256
SMALL_OBJECT = 0.01
"""An object covering less than this share of the first frame counts as small (MOSE's hard cases)."""

VECTOR_FIELDS = (
    "edge_density",
    "motion",
    "num_objects",
    "log_size_mean",
    "log_size_min",
    "small_fraction",
    "disagreement",
)
"""The model-independent features, in the order of `VideoFeatures.vector()`, that video similarity uses."""


@dataclass(frozen=True)
class VideoFeatures:
    """What the recommender knows about a video.

    edge_density: share of Canny edge pixels (0…1), mean over sampled frames — texture / clutter.
    motion: mean optical-flow magnitude between consecutive sampled frames, as a share of the image diagonal.
    num_objects: objects in the first annotated frame.
    size_mean, size_min: first-frame object areas as shares of the image (0 when there are no objects).
    small_fraction: share of objects smaller than SMALL_OBJECT.
    disagreement: conflict pixels / foreground pixels among the models, mean over frames (0 = all agree).
    vanish: per model, object disappearances (present → absent between consecutive frames) per object-frame.
    absent: per model, share of (frame, object) pairs the model calls absent.
    """

    edge_density: float
    motion: float
    num_objects: int
    size_mean: float
    size_min: float
    small_fraction: float
    disagreement: float = 0.0
    vanish: dict[str, float] = field(default_factory=dict)
    absent: dict[str, float] = field(default_factory=dict)

    def vector(self) -> np.ndarray:
        """Model-independent features as float64 in VECTOR_FIELDS order (sizes on a log scale)."""
        return np.array(
            [
                self.edge_density,
                self.motion,
                self.num_objects,
                math.log10(max(self.size_mean, 1e-5)),
                math.log10(max(self.size_min, 1e-5)),
                self.small_fraction,
                self.disagreement,
            ],
            np.float64,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VideoFeatures:
        return cls(**obj)


def _small_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    scale = ANALYSIS_SIDE / max(gray.shape)
    if scale < 1:
        gray = cv2.resize(
            gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
    return gray


def scene_features(frames: Iterable[np.ndarray], num_frames: int, max_samples: int = 12) -> tuple[float, float]:
    """(edge_density, motion) from a stream of (H, W, 3) uint8 RGB frames; reads each frame once."""
    import cv2

    step = max(1, math.ceil(num_frames / max_samples))
    edges, motion = [], []
    prev = None
    for i, rgb in enumerate(frames):
        if i % step and (i - 1) % step:
            prev = None
            continue
        gray = _small_gray(rgb)
        if i % step == 0:
            edges.append(np.count_nonzero(cv2.Canny(gray, 100, 200)) / gray.size)
        if prev is not None and (i - 1) % step == 0:
            flow = cv2.calcOpticalFlowFarneback(prev, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
            motion.append(float(np.linalg.norm(flow, axis=2).mean()) / math.hypot(*gray.shape))
        prev = gray
    return (float(np.mean(edges)) if edges else 0.0, float(np.mean(motion)) if motion else 0.0)


def object_sizes(first_labels: np.ndarray, object_ids: tuple[int, ...]) -> tuple[float, float, float]:
    """(size_mean, size_min, small_fraction) of the first-frame objects, areas as shares of the image."""
    if not object_ids:
        return 0.0, 0.0, 0.0
    areas = np.array([np.count_nonzero(first_labels == i) for i in object_ids]) / first_labels.size
    return float(areas.mean()), float(areas.min()), float(np.mean(areas < SMALL_OBJECT))


def ensemble_features(
    outputs: Sequence[ModelVideo | ModelFrames],
    object_ids: tuple[int, ...],
    disagreements: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Signals only several models give: disagreement, and per model vanish rate and absent share.

    `disagreements`: the per-frame values (`frame_disagreement`) when the caller streamed the frames already
    (the fuse stage's first pass); else they are measured here from the outputs' (T, H, W) labels.
    """
    if disagreements is None:
        lut = index_lut(tuple(object_ids))
        labels = [o.labels for o in outputs if isinstance(o, ModelVideo)]
        if len(labels) != len(outputs):
            raise TypeError("ensemble_features: frame streams come with their per-frame disagreements")
        disagreements = [
            frame_disagreement(np.stack([lut[lab[t]] for lab in labels])) for t in range(outputs[0].shape[0])
        ]
    vanish, absent = {}, {}
    for o in outputs:
        T = o.present.shape[0]
        pairs = max(1, (T - 1) * len(object_ids))
        vanish[o.model] = float(np.count_nonzero(o.present[:-1] & ~o.present[1:]) / pairs) if T > 1 else 0.0
        absent[o.model] = float(np.mean(~o.present)) if o.present.size else 0.0
    return {
        "disagreement": float(np.mean(disagreements)) if len(disagreements) else 0.0,
        "vanish": vanish,
        "absent": absent,
    }


def video_features(
    frames: Iterable[np.ndarray],
    num_frames: int,
    first_labels: np.ndarray,
    object_ids: tuple[int, ...],
    outputs: Sequence[ModelVideo | ModelFrames] | None = None,
    disagreements: Sequence[float] | None = None,
) -> VideoFeatures:
    """All features of one video: frames stream once; `outputs` (checked, same video) adds the ensemble signals
    (see `ensemble_features` for `disagreements`)."""
    edge, motion = scene_features(frames, num_frames)
    size_mean, size_min, small = object_sizes(first_labels, tuple(object_ids))
    ens = ensemble_features(outputs, tuple(object_ids), disagreements) if outputs else {}
    return VideoFeatures(edge, motion, len(object_ids), size_mean, size_min, small, **ens)
