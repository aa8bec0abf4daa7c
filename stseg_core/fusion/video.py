"""One model's output for one video as arrays, and the checks that make several of them fusable.

Notation used across `stseg_core.fusion`: M models, T frames, H×W pixels, K objects (the ids of the
video's first annotated frame, in ascending order). A *label index* l ∈ 0…K is 0 for background and
k+1 for the k-th object id; fusion works on indices so that ids like (3, 7) cost no 256-wide tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from stseg_core.errors import BadInputError


@dataclass(frozen=True)
class ModelVideo:
    """One model's predictions for one video.

    labels: (T, H, W) uint8 object ids (0 = background).
    scores: (T, K) float32 in [0, 1], the model's own confidence per frame and object (K = len(object_ids)).
    present: (T, K) bool, whether the model says the object is visible in that frame.
    probs: optional (T, K, H, W) uint8, per-object probability × 255.
    """

    model: str
    labels: np.ndarray
    object_ids: tuple[int, ...]
    scores: np.ndarray
    present: np.ndarray
    probs: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)


Frame = tuple[np.ndarray, np.ndarray | None]
"""One frame of one model: (H, W) uint8 ids and, when asked for and available, (K, H, W) uint8 probabilities."""


@dataclass(frozen=True)
class ModelFrames:
    """One model's predictions for one video, read a frame at a time (what the fuse stage streams).

    `scores`/`present` are (T, K) like `ModelVideo`'s (small, held); `frames(with_probs)` starts a new pass over
    the video's frames, so memory holds one frame per model however long the video is. `shape` is (T, H, W).
    """

    model: str
    object_ids: tuple[int, ...]
    shape: tuple[int, int, int]
    scores: np.ndarray
    present: np.ndarray
    frames: Callable[[bool], Iterator[Frame]]
    has_probs: bool = False


def frames_of(video: ModelVideo) -> ModelFrames:
    """An in-memory `ModelVideo` as a frame stream (the array API runs on the streaming code)."""

    def frames(with_probs: bool) -> Iterator[Frame]:
        for t in range(video.labels.shape[0]):
            yield video.labels[t], video.probs[t] if with_probs and video.probs is not None else None

    return ModelFrames(
        video.model, tuple(video.object_ids), video.shape, video.scores, video.present, frames, video.probs is not None
    )


def from_labels(model: str, labels: np.ndarray, object_ids: tuple[int, ...]) -> ModelVideo:
    """A ModelVideo for outputs without a scores file (`without_scores`)."""
    labels = np.asarray(labels, dtype=np.uint8)
    scores, present = without_scores(labels, object_ids)
    return ModelVideo(model, labels, tuple(object_ids), scores, present)


def without_scores(labels: Iterable[np.ndarray], object_ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The documented fallback for outputs without a scores file, from their (H, W) label maps in frame order:
    (T, K) confidences and presence. An object is present in a frame exactly when it has pixels, and every
    confidence is 1, so the model's vote is weighted by its historical performance alone."""
    rows = [[bool(np.any(lab == i)) for i in object_ids] for lab in labels]
    present = np.array(rows, bool).reshape(len(rows), len(object_ids))
    return np.ones(present.shape, np.float32), present


def index_lut(object_ids: tuple[int, ...]) -> np.ndarray:
    """256-entry table id → label index (0 background, k+1 object k); unknown ids map to 255."""
    lut = np.full(256, 255, np.uint8)
    lut[0] = 0
    for k, oid in enumerate(object_ids):
        lut[oid] = k + 1
    return lut


def id_table(object_ids: tuple[int, ...]) -> np.ndarray:
    """Label index → object id, the inverse of `index_lut`."""
    return np.array((0, *object_ids), np.uint8)


def check_outputs(video: str, outputs: list[ModelVideo], object_ids: tuple[int, ...]) -> None:
    """Refuse outputs that cannot be fused pixel by pixel; every message is one line naming video and model.

    Rules: at least one model; all models have the same (T, H, W); every id a model paints is one of the
    video's first-frame `object_ids` (a model that invents an object is broken, not a voter); scores and
    presence are (T, K) for the video's objects; probs, if any, are (T, K, H, W).
    """
    for out in outputs:
        if out.labels.ndim != 3 or out.labels.dtype != np.uint8:
            raise BadInputError(
                f"video {video}, model {out.model}: labels must be (T,H,W) uint8, "
                f"got {out.labels.shape} {out.labels.dtype}"
            )
    streams = [frames_of(o) for o in outputs]
    check_streams(video, streams, object_ids)
    for stream, out in zip(streams, outputs, strict=True):
        if out.probs is not None and out.probs.shape != (out.shape[0], len(object_ids), *out.shape[1:]):
            raise BadInputError(
                f"video {video}, model {out.model}: probs must have shape "
                f"{(out.shape[0], len(object_ids), *out.shape[1:])}, got {out.probs.shape}"
            )
        for t in range(out.shape[0]):
            check_frame(video, stream, t, out.labels[t], object_ids)


def check_streams(video: str, outputs: list[ModelFrames], object_ids: tuple[int, ...]) -> None:
    """The whole-video rules of `check_outputs` that need no pixels: models, shapes, ids, scores, presence."""
    if not outputs:
        raise BadInputError(f"video {video}: no model outputs to fuse")
    ref = outputs[0]
    for out in outputs:
        if tuple(out.shape) != tuple(ref.shape):
            what = "frame count" if out.shape[0] != ref.shape[0] else "frame size"
            raise BadInputError(
                f"video {video}: {what} differs between models: {ref.model} has (T,H,W)="
                f"{tuple(ref.shape)}, {out.model} has {tuple(out.shape)}"
            )
        if tuple(out.object_ids) != tuple(object_ids):
            raise BadInputError(
                f"video {video}, model {out.model}: object ids {list(out.object_ids)} differ "
                f"from the first frame's {list(object_ids)}"
            )
        k_shape = (ref.shape[0], len(object_ids))
        for field in ("scores", "present"):
            if getattr(out, field).shape != k_shape:
                raise BadInputError(
                    f"video {video}, model {out.model}: {field} must have shape {k_shape}, "
                    f"got {getattr(out, field).shape}"
                )


def check_frame(video: str, out: ModelFrames, t: int, labels: np.ndarray, object_ids: tuple[int, ...]) -> None:
    """The per-frame rules of `check_outputs` on a label map: the frame's size, ids the first frame has."""
    if labels.shape != tuple(out.shape[1:]) or labels.dtype != np.uint8:
        raise BadInputError(
            f"video {video}, model {out.model}, frame index {t}: labels must be {out.shape[1:]} "
            f"uint8, got {labels.shape} {labels.dtype}"
        )
    allowed = sum(np.count_nonzero(labels == i) for i in (0, *object_ids))
    if allowed != labels.size:
        bad = min(set(np.unique(labels).tolist()) - {0, *object_ids})
        raise BadInputError(
            f"video {video}, model {out.model}, frame index {t}: object id {bad} is not "
            f"in the first frame (ids {sorted(object_ids)})"
        )


def check_probs(video: str, out: ModelFrames, t: int, probs: np.ndarray, object_ids: tuple[int, ...]) -> None:
    """Frame t's probabilities are (K, H, W) for the video's objects and frame size (`check_outputs`' rule)."""
    want = (len(object_ids), *out.shape[1:])
    if probs.shape != want:
        raise BadInputError(
            f"video {video}, model {out.model}, frame index {t}: probs must have shape {want}, got {probs.shape}"
        )
