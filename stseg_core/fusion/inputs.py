"""What the fuse stage and the database builder read: a run's model outputs per video, frames, ground truth.

A model's video without scores.json falls back to presence = "has pixels" and confidence 1 (the caller records
it); a frame count, frame names or a frame size that is not the video's, or object ids that are not its first
frame's, are bad input naming the video and the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from stseg_core.data.mose import MoseSplit, VideoInfo
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.fusion.video import Frame, ModelFrames, ModelVideo, without_scores
from stseg_core.runlayout import pred_prefix
from stseg_core.store import Store, join_key


def open_model_frames(run_store: Store, model: str, info: VideoInfo, fallbacks: list[str] | None = None) -> ModelFrames:
    """One model's outputs for one video as a frame stream (scores and presence read now, label maps and
    probabilities on each pass); a missing scores.json uses the documented fallback (noted in `fallbacks`)."""
    from stseg_core.predictions import SCORES_FILE, read_video_predictions

    base = join_key(pred_prefix(model), info.name)
    if not run_store.exists(join_key(base, SCORES_FILE)):
        return _fallback_frames(run_store, model, info, base, fallbacks)
    preds = read_video_predictions(run_store, model, info.name)
    _check_stems(info, model, preds.stems)
    if tuple(preds.object_ids) != tuple(info.object_ids):
        raise BadInputError(
            f"video {info.name}, model {model}: object ids {list(preds.object_ids)} differ from the "
            f"first frame's {list(info.object_ids)}"
        )
    ids, T = info.object_ids, info.num_frames
    scores = np.array([[preds.scores[s][i] for i in ids] for s in preds.stems], np.float32).reshape(T, -1)
    present = np.array([[preds.present[s][i] for i in ids] for s in preds.stems], bool).reshape(T, -1)
    has_probs = preds.has_probs

    def frames(with_probs: bool) -> Iterator[Frame]:
        labels = _sized(info, model, preds.iter_labels())
        if not (with_probs and has_probs):
            return ((lab, None) for lab in labels)
        return zip(labels, (p for _s, p in preds.iter_probs()), strict=True)

    return ModelFrames(model, tuple(ids), (T, info.height, info.width), scores, present, frames, has_probs)


def _fallback_frames(
    run_store: Store, model: str, info: VideoInfo, base: str, fallbacks: list[str] | None
) -> ModelFrames:
    """Label maps without scores.json: `without_scores` (one pass now keeps its (T, K) tables)."""
    from stseg_core.data.labels import read_label_png

    stems = [k.rsplit("/", 1)[-1][:-4] for k in run_store.list(base) if k.endswith(".png")]
    if not stems:
        raise MissingArtifactError(f"{run_store.uri(base)}: model {model} has no output for video {info.name}")
    _check_stems(info, model, tuple(sorted(stems, key=lambda s: (len(s), s))))

    def frames(with_probs: bool) -> Iterator[Frame]:
        pairs = (
            (s, read_label_png(run_store.read_bytes(f"{base}/{s}.png"), run_store.uri(f"{base}/{s}.png")))
            for s in info.frames
        )
        return ((lab, None) for lab in _sized(info, model, pairs))

    ids = tuple(info.object_ids)
    scores, present = without_scores((lab for lab, _p in frames(False)), ids)
    if fallbacks is not None:
        fallbacks.append(f"{model}/{info.name}: no scores.json; presence from pixels, confidence 1")
    return ModelFrames(model, ids, (info.num_frames, info.height, info.width), scores, present, frames)


def load_model_video(run_store: Store, model: str, info: VideoInfo, fallbacks: list[str] | None = None) -> ModelVideo:
    """One model's outputs for one video as (T, …) arrays (the database builder scores them several times)."""
    stream = open_model_frames(run_store, model, info, fallbacks)
    frames = list(stream.frames(True))
    labels = np.stack([lab for lab, _p in frames])
    probs = np.stack([p for _lab, p in frames if p is not None]) if stream.has_probs else None
    return ModelVideo(model, labels, stream.object_ids, stream.scores, stream.present, probs)


def _check_stems(info: VideoInfo, model: str, stems: tuple[str, ...]) -> None:
    if stems != tuple(info.frames):
        extra = sorted(set(stems) - set(info.frames))[:3]
        lost = sorted(set(info.frames) - set(stems))[:3]
        raise BadInputError(
            f"video {info.name}, model {model}: {len(stems)} frames, the video has "
            f"{len(info.frames)} (missing {lost}, extra {extra})"
        )


def _sized(info: VideoInfo, model: str, frames: Iterable[tuple[str, np.ndarray]]) -> Iterator[np.ndarray]:
    """Label maps from (stem, label map) pairs, refusing a frame whose size is not the video's."""
    for stem, lab in frames:
        if lab.shape != (info.height, info.width):
            raise BadInputError(
                f"video {info.name}, model {model}, frame {stem}: label map is "
                f"{lab.shape[1]}x{lab.shape[0]}, the video is {info.width}x{info.height} (WxH)"
            )
        yield lab


def scene_frames(data: MoseSplit, name: str) -> Iterator[np.ndarray]:
    """The video's RGB frames, one at a time (the scene features read them once)."""
    return (rgb for _s, rgb in data.iter_frames(name))


def check_ground_truth(gt: MoseSplit, info: VideoInfo) -> None:
    """Every frame of the video has a ground-truth annotation (checked on the listing, before any work)."""
    annotated = set(gt.video(info.name).annotated)
    missing = [s for s in info.frames if s not in annotated]
    if missing:
        raise MissingArtifactError(
            f"{gt.store.uri(f'Annotations/{info.name}')}: ground truth lacks frame(s) "
            f"{', '.join(missing[:5])} of video {info.name}"
        )


def ground_truth(gt: MoseSplit, info: VideoInfo) -> np.ndarray:
    """(T, H, W) ground truth of one video (the database builder's whole-video scoring)."""
    check_ground_truth(gt, info)
    return np.stack([gt.annotation(info.name, s) for s in info.frames])
