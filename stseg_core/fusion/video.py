"""One model's output for one video as arrays, and the checks that make several of them fusable.

Notation used across `stseg_core.fusion`: M models, T frames, H×W pixels, K objects (the ids of the
video's first annotated frame, in ascending order). A *label index* l ∈ 0…K is 0 for background and
k+1 for the k-th object id; fusion works on indices so that ids like (3, 7) cost no 256-wide tables.
"""

from __future__ import annotations

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
        return tuple(self.labels.shape)  # type: ignore[return-value]


def from_labels(model: str, labels: np.ndarray, object_ids: tuple[int, ...]) -> ModelVideo:
    """A ModelVideo for outputs without a scores file: the documented fallback.

    Without scores, an object is present in a frame exactly when it has pixels, and every confidence is 1,
    so the model's vote is weighted by its historical performance alone.
    """
    labels = np.asarray(labels, dtype=np.uint8)
    present = (
        np.stack([(labels == i).any(axis=(1, 2)) for i in object_ids], axis=1)
        if object_ids
        else np.zeros((labels.shape[0], 0), bool)
    )
    return ModelVideo(model, labels, tuple(object_ids), np.ones(present.shape, np.float32), present)


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
    if not outputs:
        raise BadInputError(f"video {video}: no model outputs to fuse")
    ref = outputs[0]
    known = set(object_ids)
    for out in outputs:
        if out.labels.ndim != 3 or out.labels.dtype != np.uint8:
            raise BadInputError(
                f"video {video}, model {out.model}: labels must be (T,H,W) uint8, "
                f"got {out.labels.shape} {out.labels.dtype}"
            )
        if out.shape != ref.shape:
            what = "frame count" if out.shape[0] != ref.shape[0] else "frame size"
            raise BadInputError(
                f"video {video}: {what} differs between models: {ref.model} has (T,H,W)="
                f"{ref.shape}, {out.model} has {out.shape}"
            )
        if tuple(out.object_ids) != tuple(object_ids):
            raise BadInputError(
                f"video {video}, model {out.model}: object ids {list(out.object_ids)} differ "
                f"from the first frame's {list(object_ids)}"
            )
        allowed = sum(np.count_nonzero(out.labels == i) for i in (0, *object_ids))
        painted = set() if allowed == out.labels.size else set(np.unique(out.labels).tolist()) - {0}
        if painted - known:
            bad = min(painted - known)
            frame = int(np.argmax((out.labels == bad).any(axis=(1, 2))))
            raise BadInputError(
                f"video {video}, model {out.model}, frame index {frame}: object id {bad} is not "
                f"in the first frame (ids {sorted(known)})"
            )
        k_shape = (ref.shape[0], len(object_ids))
        for field in ("scores", "present"):
            if getattr(out, field).shape != k_shape:
                raise BadInputError(
                    f"video {video}, model {out.model}: {field} must have shape {k_shape}, "
                    f"got {getattr(out, field).shape}"
                )
        if out.probs is not None and out.probs.shape != (k_shape[0], k_shape[1], *ref.shape[1:]):
            raise BadInputError(
                f"video {video}, model {out.model}: probs must have shape "
                f"{(k_shape[0], k_shape[1], *ref.shape[1:])}, got {out.probs.shape}"
            )
