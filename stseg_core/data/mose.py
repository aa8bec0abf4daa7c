"""MOSE/DAVIS split layout: lazy frame-by-frame reading, writing and validation of `JPEGImages/` + `Annotations/`.

A split root holds::

    <split>/JPEGImages/<video>/<00000>.jpg   RGB frames, names = consecutive numbers
    <split>/Annotations/<video>/<00000>.png  palette ("P") or grey ("L") PNG, pixel = object id (0 = background)

Train splits annotate every frame; validation/test splits annotate only the first frame. A ground-truth
folder (only `Annotations/`, e.g. the synthetic `valid_gt/`) is read with `MoseSplit(..., frames=False)`.
Nothing reads a whole video at once: listings are cached, images are fetched one at a time from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import ParamSpec

import numpy as np

from stseg_core.data.jpeg import JPEG_QUALITY, decode_jpeg, encode_jpeg, image_size
from stseg_core.data.labels import decode_label_png, encode_label_png
from stseg_core.errors import BadInputError, StsegError
from stseg_core.store import Store, open_store

FRAMES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "Annotations"
P = ParamSpec("P")


@dataclass(frozen=True)
class VideoInfo:
    """One video of a split.

    `frames`: frame stems ("00000", …) sorted numerically; `height`/`width`: frame size in pixels;
    `object_ids`: ids (1…255) present in the first frame's annotation, ascending; `annotated`: stems that have an
    annotation PNG (every frame in train, only the first in valid/test).
    """

    name: str
    frames: tuple[str, ...]
    height: int
    width: int
    object_ids: tuple[int, ...]
    annotated: tuple[str, ...]

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def check_video_name(name: str) -> str:
    """A video name is one plain folder name; anything that could climb out of the split is bad input."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith("."):
        raise BadInputError(f"video name {name!r} is not a plain folder name (path traversal or empty)")
    return name


def frame_stem(index: int) -> str:
    """MOSE/DAVIS frame name for a 0-based index: five digits, zero-padded."""
    return f"{index:05d}"


def _as_store(store_or_uri: Store | str | Path) -> Store:
    return store_or_uri if isinstance(store_or_uri, Store) else open_store(store_or_uri)


def frame_sequence(stems: Iterable[str], where: str, gaps_ok: bool = False) -> list[str]:
    """Frame stems sorted by number; refuses non-numeric names, duplicates and (unless `gaps_ok`) gaps. One check
    for the dataset reader (and so `data validate`) and the J&F ground truth, so they cannot disagree."""
    stems = list(stems)
    for stem in stems:
        if not stem.isdigit():
            raise BadInputError(f"{where}/{stem}: frame name {stem!r} is not a number")
    stems.sort(key=int)
    for a, b in pairwise(stems):
        if int(b) == int(a) or (int(b) != int(a) + 1 and not gaps_ok):
            what = "duplicate frame number" if int(a) == int(b) else "gap in frame numbers"
            raise BadInputError(f"{where}: {what} ({a} → {b})")
    return stems


def first_frame_objects(labels: np.ndarray, where: str, video: str) -> tuple[int, ...]:
    """The object ids of a video's first annotation; none is bad input (there is nothing to segment or score)."""
    ids = tuple(int(i) for i in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)) if i != 0)
    if not ids:
        raise BadInputError(f"{where}: the first frame of video {video!r} annotates no object (nothing to segment)")
    return ids


class MoseSplit:
    """Read access to one split root (or, with `frames=False`, a ground-truth folder with `Annotations/` only)."""

    def __init__(self, store_or_uri: Store | str | Path, frames: bool = True) -> None:
        self.store = _as_store(store_or_uri)
        self.has_frames = frames
        self._listing: tuple[dict[str, list[str]], dict[str, list[str]], list[str]] | None = None
        self._info: dict[str, VideoInfo] = {}

    # ---- listing -------------------------------------------------------------------------------------------
    def _list(self) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
        """Files per video under JPEGImages/ and Annotations/, plus layout problems (stray files)."""
        if self._listing is None:
            stray: list[str] = []
            frames = self._group(FRAMES_DIR, stray) if self.has_frames else {}
            anns = self._group(ANNOTATIONS_DIR, stray)
            if self.has_frames:
                # Empty video folders are invisible in object stores but real on disk: report them too.
                root = self.store.local_path(FRAMES_DIR)
                if root is not None and root.is_dir():
                    for d in root.iterdir():
                        if d.is_dir() and not d.name.startswith("."):
                            frames.setdefault(d.name, [])
            self._listing = (frames, anns, stray)
        return self._listing

    def _group(self, top: str, stray: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key in self.store.list(top):
            parts = key.split("/")
            if any(p.startswith(".") for p in parts[1:]):
                continue  # hidden files and folders (.DS_Store, editor swap files, .ipynb_checkpoints)
            if len(parts) != 3:
                stray.append(f"{self.store.uri(key)}: not in the layout {top}/<video>/<frame> (stray file)")
                continue
            out.setdefault(parts[1], []).append(parts[2])
        return out

    def videos(self) -> list[str]:
        """Names of every video (a folder under JPEGImages/, or Annotations/ for a ground-truth folder), sorted."""
        frames, anns, _ = self._list()
        return sorted(set(frames) | set(anns)) if self.has_frames else sorted(anns)

    # ---- one video ------------------------------------------------------------------------------------------
    def _stems(self, name: str, files: list[str], top: str, ext: str, gaps_ok: bool = False) -> list[str]:
        """Numeric stems sorted numerically; rejects other extensions, non-numeric names and (unless allowed) gaps."""
        stems = []
        for f in files:
            stem, dot, suffix = f.rpartition(".")
            if not dot or suffix.lower() != ext:
                raise BadInputError(f"{self.store.uri(f'{top}/{name}/{f}')}: expected a .{ext} file")
            if not stem.isdigit():  # named with its extension here; `frame_sequence` checks bare stems too
                raise BadInputError(f"{self.store.uri(f'{top}/{name}/{f}')}: frame name {stem!r} is not a number")
            stems.append(stem)
        return frame_sequence(stems, self.store.uri(f"{top}/{name}"), gaps_ok)

    def video(self, name: str) -> VideoInfo:
        """Stems, size and object ids of one video; checks names, gaps and the first-frame annotation."""
        check_video_name(name)
        if name in self._info:
            return self._info[name]
        frames_by_video, anns_by_video, _ = self._list()
        if name not in frames_by_video and name not in anns_by_video:
            top = FRAMES_DIR if self.has_frames else ANNOTATIONS_DIR
            raise BadInputError(f"{self.store.uri(f'{top}/{name}')}: no such video")
        # Annotated frames may be a subset (valid/test: the first only); frames themselves may not skip numbers.
        ann_stems = self._stems(name, anns_by_video.get(name, []), ANNOTATIONS_DIR, "png", gaps_ok=self.has_frames)
        if self.has_frames:
            stems = self._stems(name, frames_by_video.get(name, []), FRAMES_DIR, "jpg")
            if not stems:
                raise BadInputError(f"{self.store.uri(f'{FRAMES_DIR}/{name}')}: empty video (no frames)")
            extra = sorted(set(ann_stems) - set(stems), key=int)
            if extra:
                raise BadInputError(
                    f"{self.store.uri(f'{ANNOTATIONS_DIR}/{name}/{extra[0]}.png')}: annotation without a frame"
                )
        else:
            stems = ann_stems
            if not stems:
                raise BadInputError(f"{self.store.uri(f'{ANNOTATIONS_DIR}/{name}')}: empty video (no annotations)")
        first_ann = f"{ANNOTATIONS_DIR}/{name}/{stems[0]}.png"
        if not ann_stems or ann_stems[0] != stems[0]:
            raise BadInputError(f"{self.store.uri(first_ann)}: missing first-frame annotation of video {name!r}")
        ann_data = self.store.read_bytes(first_ann)
        labels = decode_label_png(ann_data, self.store.uri(first_ann))
        if self.has_frames:
            first_frame = f"{FRAMES_DIR}/{name}/{stems[0]}.jpg"
            h, w = image_size(self.store.read_bytes(first_frame), self.store.uri(first_frame))
            self._check_size(labels, h, w, first_ann, first_frame)
        else:
            h, w = labels.shape
        ids = first_frame_objects(labels, self.store.uri(first_ann), name)
        info = VideoInfo(name, tuple(stems), h, w, ids, tuple(ann_stems))
        self._info[name] = info
        return info

    def _check_size(self, labels: np.ndarray, h: int, w: int, ann_key: str, frame_key: str) -> None:
        if labels.shape != (h, w):
            raise BadInputError(
                f"{self.store.uri(ann_key)}: annotation is {labels.shape[0]}x{labels.shape[1]} "
                f"but frame {self.store.uri(frame_key)} is {h}x{w}"
            )

    def read_frame(self, name: str, stem: str) -> np.ndarray:
        """One frame as HxWx3 uint8 RGB."""
        info = self.video(name)
        if not self.has_frames:
            raise BadInputError(f"{self.store.root}: a ground-truth folder has no frames (video {name!r})")
        if stem not in info.frames:
            raise BadInputError(f"{self.store.uri(f'{FRAMES_DIR}/{name}/{stem}.jpg')}: no such frame")
        key = f"{FRAMES_DIR}/{name}/{stem}.jpg"
        rgb = decode_jpeg(self.store.read_bytes(key), self.store.uri(key))
        if rgb.shape[:2] != (info.height, info.width):
            raise BadInputError(
                f"{self.store.uri(key)}: frame is {rgb.shape[0]}x{rgb.shape[1]} but the video's first frame is "
                f"{info.height}x{info.width}"
            )
        return rgb

    def iter_frames(self, name: str) -> Iterator[tuple[str, np.ndarray]]:
        """(stem, HxWx3 uint8 RGB) in order, fetched and decoded one at a time."""
        for stem in self.video(name).frames:
            yield stem, self.read_frame(name, stem)

    def annotation(self, name: str, stem: str) -> np.ndarray:
        """The label map of one annotated frame: HxW uint8 ids."""
        info = self.video(name)
        key = f"{ANNOTATIONS_DIR}/{name}/{stem}.png"
        if stem not in info.annotated:
            raise BadInputError(f"{self.store.uri(key)}: frame {stem} of video {name!r} has no annotation")
        labels = decode_label_png(self.store.read_bytes(key), self.store.uri(key))
        self._check_size(labels, info.height, info.width, key, f"{FRAMES_DIR}/{name}/{stem}.jpg")
        extra = sorted(set(np.flatnonzero(np.bincount(labels.ravel(), minlength=256)).tolist()) - {0, *info.object_ids})
        if extra:
            raise BadInputError(
                f"{self.store.uri(key)}: object ids {extra} are absent from the first frame "
                f"{info.frames[0]} of video {name!r} (ids there: {list(info.object_ids)})"
            )
        return labels

    def first_annotation(self, name: str) -> np.ndarray:
        return self.annotation(name, self.video(name).frames[0])

    def iter_annotations(self, name: str) -> Iterator[tuple[str, np.ndarray]]:
        """(stem, HxW uint8 ids) for every annotated frame, one at a time."""
        for stem in self.video(name).annotated:
            yield stem, self.annotation(name, stem)

    # ---- validation -----------------------------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Every problem in the split, one line each (empty = valid). Decodes every image once."""
        _, _, stray = self._list()
        problems = list(stray)
        names = self.videos()
        if not names:
            top = FRAMES_DIR if self.has_frames else ANNOTATIONS_DIR
            problems.append(f"{self.store.uri(top)}: no videos")
        for name in names:
            problems.extend(self._validate_video(name))
        return list(dict.fromkeys(problems))  # a file a structural check already named is listed once

    def _validate_video(self, name: str) -> list[str]:
        try:
            info = self.video(name)
        except StsegError as err:
            # The video's structure is broken; still report every unreadable file in it.
            return [str(err), *self._validate_files(name)]
        problems = []
        if self.has_frames:
            for stem in info.frames:
                problems.extend(_collect(self.read_frame, name, stem))
        for stem in info.annotated:
            problems.extend(_collect(self.annotation, name, stem))
        return problems

    def _validate_files(self, name: str) -> list[str]:
        frames_by_video, anns_by_video, _ = self._list()
        problems = []
        for f in frames_by_video.get(name, []):
            key = f"{FRAMES_DIR}/{name}/{f}"
            if f.lower().endswith(".jpg"):
                problems.extend(_collect(self._decode, key, decode_jpeg))
        for f in anns_by_video.get(name, []):
            key = f"{ANNOTATIONS_DIR}/{name}/{f}"
            if f.lower().endswith(".png"):
                problems.extend(_collect(self._decode, key, decode_label_png))
        return problems

    def _decode(self, key: str, decode: Callable[[bytes, str], np.ndarray]) -> np.ndarray:
        return decode(self.store.read_bytes(key), self.store.uri(key))


def _collect(fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> list[str]:
    """The error message of `fn(*args, **kwargs)` as a one-item list, or [] when it succeeds."""
    try:
        fn(*args, **kwargs)
    except StsegError as err:
        return [str(err)]
    return []


class MoseWriter:
    """Writes videos into a split root in the MOSE layout (JPEG frames, palette PNG annotations)."""

    def __init__(self, store_or_uri: Store | str | Path, jpeg_quality: int = JPEG_QUALITY) -> None:
        self.store = _as_store(store_or_uri)
        self.jpeg_quality = jpeg_quality

    def write_frame(self, video: str, index: int, rgb: np.ndarray) -> str:
        """Frame `index` (0-based) as `JPEGImages/<video>/<index:05d>.jpg`; returns the key."""
        key = f"{FRAMES_DIR}/{check_video_name(video)}/{frame_stem(index)}.jpg"
        self.store.write_bytes(key, encode_jpeg(rgb, self.jpeg_quality))
        return key

    def write_annotation(self, video: str, index: int, labels: np.ndarray) -> str:
        """Label map of frame `index` as a DAVIS-palette PNG; returns the key."""
        key = f"{ANNOTATIONS_DIR}/{check_video_name(video)}/{frame_stem(index)}.png"
        self.store.write_bytes(key, encode_label_png(labels))
        return key


def write_video(
    store_or_uri: Store | str | Path,
    name: str,
    frames: Iterable[np.ndarray],
    annotations: Mapping[int, np.ndarray],
    jpeg_quality: int = JPEG_QUALITY,
) -> int:
    """Write one video: `frames` (HxWx3 uint8 RGB, streamed) and `annotations` {frame index: HxW uint8 ids}.

    Index 0 must be annotated (it defines the object set). Returns the number of frames written.
    """
    writer = MoseWriter(store_or_uri, jpeg_quality)
    check_video_name(name)
    if 0 not in annotations:
        raise BadInputError(f"video {name!r}: the first frame (index 0) must be annotated")
    n = 0
    shape = None
    for i, rgb in enumerate(frames):
        shape = shape or rgb.shape[:2]
        if rgb.shape[:2] != shape:
            raise BadInputError(f"video {name!r} frame {i}: size {rgb.shape[:2]} differs from the first {shape}")
        writer.write_frame(name, i, rgb)
        n += 1
    if n == 0:
        raise BadInputError(f"video {name!r}: empty video (no frames)")
    for i in sorted(annotations):
        if not 0 <= i < n:
            raise BadInputError(f"video {name!r}: annotation for frame {i} but the video has {n} frames")
        if annotations[i].shape != shape:
            raise BadInputError(f"video {name!r} frame {i}: annotation size {annotations[i].shape} != frame {shape}")
        writer.write_annotation(name, i, annotations[i])
    return n


def discover_splits(store_or_uri: Store | str | Path) -> list[tuple[str, bool]]:
    """Split roots at or one level below a root: [(prefix, has frames)], "" when the root itself is a split.

    A folder with `JPEGImages/` is a split; one with only `Annotations/` is a ground-truth folder (`valid_gt/`).
    """
    store = _as_store(store_or_uri)
    keys = store.list("")
    tops: dict[str, set[str]] = {}
    for key in keys:
        parts = key.split("/")
        if parts[0] in (FRAMES_DIR, ANNOTATIONS_DIR):
            tops.setdefault("", set()).add(parts[0])
        elif len(parts) > 2 and parts[1] in (FRAMES_DIR, ANNOTATIONS_DIR):
            tops.setdefault(parts[0], set()).add(parts[1])
    root = store.local_path(FRAMES_DIR)
    if root is not None and root.is_dir():  # an on-disk split whose video folders are all empty
        tops.setdefault("", set()).add(FRAMES_DIR)
    if "" in tops:
        return [("", FRAMES_DIR in tops[""])]
    return [(name, FRAMES_DIR in dirs) for name, dirs in sorted(tops.items())]
