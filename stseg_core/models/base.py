"""The contract every VOS model meets: a video in (`VideoInput`), one `FrameResult` per frame out.

Notation: T frames named by `stems`, each H×W RGB uint8; K objects with ids `object_ids` (1…255, 0 is
background); a label map is H×W uint8 holding one id per pixel.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from stseg_core.errors import BadInputError

if TYPE_CHECKING:
    from stseg_core.data.mose import MoseSplit


@dataclass(frozen=True)
class VideoInput:
    """One video to segment, frames streamed lazily so memory does not grow with its length.

    `frames()` returns a fresh iterator of H×W×3 uint8 RGB arrays, one per stem in order; a model may call
    it more than once. `first_labels` (H×W uint8) is the label map of frame `stems[0]` and holds exactly the
    ids in `object_ids` (at least one, ascending, no 0).
    """

    name: str
    stems: tuple[str, ...]
    height: int
    width: int
    first_labels: np.ndarray = field(repr=False)
    object_ids: tuple[int, ...]
    frames: Callable[[], Iterator[np.ndarray]] = field(repr=False, compare=False)
    frame_files: tuple[str, ...] | None = field(default=None, repr=False, compare=False)
    """The stored (encoded) frame files on local disk, one per stem, when the frames are local files: a model
    that runs an external program hands these on unchanged instead of re-encoding `frames()`."""

    def __post_init__(self) -> None:
        if not self.stems:
            raise BadInputError(f"video {self.name}: has no frames")
        lab = self.first_labels
        if lab.ndim != 2 or lab.dtype != np.uint8 or lab.shape != (self.height, self.width):
            raise BadInputError(
                f"video {self.name}: first-frame labels must be {self.height}x{self.width} uint8, "
                f"got shape {lab.shape} dtype {lab.dtype}"
            )
        if not self.object_ids:
            raise BadInputError(f"video {self.name}: no object ids (nothing to segment)")
        if 0 in self.object_ids or list(self.object_ids) != sorted(set(self.object_ids)):
            raise BadInputError(
                f"video {self.name}: object ids must be ascending, unique and non-zero, got {list(self.object_ids)}"
            )
        present = set(np.unique(lab).tolist()) - {0}
        missing = [i for i in self.object_ids if i not in present]
        if missing:
            raise BadInputError(
                f"video {self.name}: object ids {missing} are absent from the first frame "
                f"{self.stems[0]} (ids present there: {sorted(present)})"
            )
        extra = sorted(present - set(self.object_ids))
        if extra:
            raise BadInputError(
                f"video {self.name}: first frame {self.stems[0]} holds ids {extra} "
                f"not listed in object_ids {list(self.object_ids)}"
            )

    @property
    def num_frames(self) -> int:
        return len(self.stems)

    @classmethod
    def from_split(cls, split: MoseSplit, name: str) -> VideoInput:
        """A video of a MOSE-layout split; its first frame must be annotated and hold every object id."""
        info = split.video(name)  # raises on a missing first-frame annotation or one without objects
        first = split.first_annotation(name)
        ids = tuple(sorted(int(i) for i in info.object_ids))

        def frames() -> Iterator[np.ndarray]:
            for _stem, rgb in split.iter_frames(name):
                yield rgb

        from stseg_core.data.mose import FRAMES_DIR

        paths = [split.store.local_path(f"{FRAMES_DIR}/{name}/{stem}.jpg") for stem in info.frames]
        files = None if None in paths else tuple(str(p) for p in paths)
        return cls(
            name=name,
            stems=tuple(info.frames),
            height=int(info.height),
            width=int(info.width),
            first_labels=first,
            object_ids=ids,
            frames=frames,
            frame_files=files,
        )


@dataclass(frozen=True)
class FrameResult:
    """A model's output for one frame.

    `labels`: H×W uint8 ids (0 background). `scores`: per object id, a confidence in [0, 1] whose meaning
    the model states in `VOSModel.confidence_definition`. `present`: per object id, whether the model
    thinks the object is visible in this frame. `probs`: optional K×H×W uint8 (probability × 255) per
    object in `object_ids` order.
    """

    stem: str
    labels: np.ndarray = field(repr=False)
    scores: dict[int, float]
    present: dict[int, bool]
    probs: np.ndarray | None = field(default=None, repr=False)


class VOSModel(ABC):
    """A semi-supervised VOS model: first-frame masks in, per-frame label maps and confidences out."""

    name: str = ""
    default_size: int | None = None
    """Short side (pixels) the model works at by default; None = the input's own size."""
    confidence_definition: str = ""
    """How `FrameResult.scores` is computed, written to every scores.json."""

    @abstractmethod
    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        """Yield one FrameResult per stem, in order; the first is the given first-frame labels."""

    def first_result(self, video: VideoInput, probs: bool = False) -> FrameResult:
        """The frame-0 result every model yields: the given labels, full confidence, every object present
        (and, with `probs`, their one-hot as K×H×W uint8 × 255)."""
        onehot = np.stack([video.first_labels == i for i in video.object_ids]).astype(np.uint8) * 255
        return FrameResult(
            stem=video.stems[0],
            labels=video.first_labels.copy(),
            scores={i: 1.0 for i in video.object_ids},
            present={i: True for i in video.object_ids},
            probs=onehot if probs else None,
        )


def checked_frames(video: VideoInput) -> Iterator[tuple[int, np.ndarray]]:
    """(t, rgb) for each frame of `video.frames()`, refusing (one line, naming the video and frame) an empty
    stream, a stream longer than the stems, and a frame whose size is not the video's."""
    t = -1
    for t, rgb in enumerate(video.frames()):
        if t >= len(video.stems):
            raise BadInputError(f"video {video.name}: frame stream is longer than its {len(video.stems)} stems")
        if rgb.shape[:2] != (video.height, video.width):
            raise BadInputError(
                f"video {video.name}: frame {video.stems[t]} is {rgb.shape[1]}x{rgb.shape[0]}, "
                f"expected {video.width}x{video.height}"
            )
        yield t, rgb
    if t < 0:
        raise BadInputError(f"video {video.name}: frame stream is empty")
