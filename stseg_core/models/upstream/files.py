"""The files between stseg and an upstream program: the generic layout it reads, the masks and scores it writes.

    <work>/data/JPEGImages/<video>/<stem>.jpg   frames: the stored JPEG bytes, copied (or hard-linked) as they are
    <work>/data/Annotations/<video>/<stem0>.png the first frame's palette label map only
    <work>/out/…                                written by the program (see `programs.py` for each one's folders)

The programs decode frames with PIL; stseg decodes the same bytes with OpenCV, and both use libjpeg-turbo's
default (accurate) decoder, so the program sees the pixels every other stseg model sees (a test checks it).
A video whose frames are not JPEG files on local disk is written as lossless PNG instead.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models.base import FrameResult, VideoInput
from stseg_core.models.upstream.programs import UpstreamProgram

_JPEG = (".jpg", ".jpeg")


def lay_out(video: VideoInput, data: Path) -> None:
    """Add `video` to the generic layout under `data`: its frames (JPEG files byte for byte, else lossless PNG)
    and its first label map."""
    from stseg_core.data.labels import encode_label_png

    frames_dir = data / "JPEGImages" / video.name
    masks_dir = data / "Annotations" / video.name
    frames_dir.mkdir(parents=True)
    masks_dir.mkdir(parents=True)
    files = video.frame_files
    if files is not None and all(Path(f).suffix.lower() in _JPEG for f in files):
        for stem, src in zip(video.stems, files, strict=True):
            _check_size(video, Path(src))
            _link_or_copy(Path(src), frames_dir / f"{stem}.jpg")  # the programs cut 4 characters off the name
    else:
        _write_png_frames(video, frames_dir)
    (masks_dir / f"{video.stems[0]}.png").write_bytes(encode_label_png(video.first_labels))


def _check_size(video: VideoInput, path: Path) -> None:
    """The frame's size from its header: the program must get frames of the video's size (as decoding checks)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as err:
        raise BadInputError(f"{path}: not a readable image ({err})") from None
    if (height, width) != (video.height, video.width):
        raise BadInputError(f"{path}: frame is {height}x{width} but video {video.name} is {video.height}x{video.width}")


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(src, dest)


def _write_png_frames(video: VideoInput, frames_dir: Path) -> None:
    from PIL import Image

    count = 0
    for stem, rgb in zip(video.stems, video.frames(), strict=False):
        Image.fromarray(rgb).save(frames_dir / f"{stem}.png", compress_level=1)
        count += 1
    if count != video.num_frames:
        raise BadInputError(f"video {video.name}: {count} frames streamed for {video.num_frames} stems")


def _hickle() -> ModuleType:
    try:
        return importlib.import_module("hickle")
    except ImportError:
        raise BadInputError("reading upstream score files needs the hickle package (pip install 'stseg[ml]')") from None


def _load_hkl(path: Path) -> Any:
    try:
        return _hickle().load(str(path))
    except (OSError, ValueError, KeyError) as err:
        raise BadInputError(f"{path}: unreadable hickle file ({str(err).splitlines()[0][:200]})") from None


def _channels(scores_dir: Path, ids: tuple[int, ...]) -> list[int]:
    """Score-file channel of each object id, in `ids` order: from `backward.hkl` ({object id: channel}, which
    XMem and the patched Cutie write), else the temporary-id order (ascending ids)."""
    backward = scores_dir / "backward.hkl"
    if not backward.is_file():
        return list(range(1, len(ids) + 1))
    mapping = _load_hkl(backward)
    try:
        by_id = {int(k): int(v) for k, v in mapping.items()}
    except (AttributeError, TypeError, ValueError):
        by_id = {}
    if set(by_id) != set(ids):
        raise BadInputError(f"{backward}: maps {mapping!r}, expected the first frame's ids {list(ids)}")
    return [by_id[i] for i in ids]


def convert_outputs(program: UpstreamProgram, out: Path, video: VideoInput, scores: bool) -> Iterator[FrameResult]:
    """The program's files under `out` → one FrameResult per stem (frame 0 = the given labels)."""
    from stseg_core.data.labels import read_label_png

    ids = video.object_ids
    masks_dir = program.masks_dir(out, video.name, scores)
    scores_dir = out / "Scores" / video.name
    use_scores = program.writes_scores(scores)
    channels = _channels(scores_dir, ids) if use_scores else []
    known = np.zeros(256, bool)
    known[[0, *ids]] = True
    for index, stem in enumerate(video.stems):
        if index == 0:  # the given labels, as every model yields them
            soft = np.stack([(video.first_labels == i).astype(np.uint8) * 255 for i in ids]) if use_scores else None
            yield FrameResult(
                stem=stem,
                labels=video.first_labels.copy(),
                scores=dict.fromkeys(ids, 1.0),
                present=dict.fromkeys(ids, True),
                probs=soft,
            )
            continue
        mask_path = masks_dir / f"{stem}.png"
        if not mask_path.is_file():
            raise MissingArtifactError(f"video {video.name} frame {stem}: {program.name} wrote no mask ({mask_path})")
        labels = read_label_png(mask_path.read_bytes(), str(mask_path))
        if labels.shape != (video.height, video.width):
            raise BadInputError(
                f"video {video.name} frame {stem}: {program.name} wrote a {labels.shape[0]}x"
                f"{labels.shape[1]} mask for a {video.height}x{video.width} frame ({mask_path})"
            )
        if not known[labels].all():
            extra = sorted(set(np.unique(labels).tolist()) - {0, *ids})
            raise BadInputError(
                f"video {video.name} frame {stem}: {program.name} wrote ids {extra} not in the "
                f"first frame's {list(ids)} ({mask_path})"
            )
        present = {i: bool((labels == i).any()) for i in ids}
        probs = None
        if use_scores:
            score_path = scores_dir / f"{stem}.hkl"
            if not score_path.is_file():
                raise MissingArtifactError(
                    f"video {video.name} frame {stem}: {program.name} wrote no scores ({score_path})"
                )
            raw = np.asarray(_load_hkl(score_path))
            if raw.ndim != 3 or raw.shape[1:] != labels.shape or raw.dtype != np.uint8 or raw.shape[0] <= max(channels):
                raise BadInputError(
                    f"video {video.name} frame {stem}: expected uint8 ({max(channels) + 1}, "
                    f"{labels.shape[0]}, {labels.shape[1]}) probabilities, got {raw.dtype} "
                    f"{raw.shape} ({score_path})"
                )
            probs = raw[channels]
            conf = {i: float(probs[k][labels == i].mean()) / 255.0 if present[i] else 0.0 for k, i in enumerate(ids)}
        else:
            conf = {i: 1.0 if present[i] else 0.0 for i in ids}
        yield FrameResult(stem=stem, labels=labels, scores=conf, present=present, probs=probs)
