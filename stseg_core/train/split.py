"""Deterministic train/validation split of a training split's videos (85/15), recorded next to the checkpoints."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stseg_core.errors import BadInputError
from stseg_core.store import Store

if TYPE_CHECKING:
    from stseg_core.data.mose import MoseSplit

SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class VideoSplit:
    """Which videos train and which score checkpoints; both sorted, disjoint, together all the videos."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    val_fraction: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"train": list(self.train), "val": list(self.val), "val_fraction": self.val_fraction, "seed": self.seed}


def split_videos(videos: list[str] | tuple[str, ...], val_fraction: float = 0.15, seed: int = 0) -> VideoSplit:
    """Hold out round(val_fraction·N) videos (at least one, at most N−1) chosen by a seeded hash of the name.

    Hashing names (rather than shuffling a list) keeps a video on the same side when others are added or
    removed, so a split stays comparable across dataset versions.
    """
    names = sorted(set(videos))
    if len(names) < 2:
        raise BadInputError(f"training split: {len(names)} video(s); need at least 2 (one to train, one to validate)")
    if not 0 < val_fraction < 1:
        raise BadInputError(f"val_fraction={val_fraction}: must be between 0 and 1")
    n_val = min(max(1, round(val_fraction * len(names))), len(names) - 1)
    order = sorted(names, key=lambda v: hashlib.sha256(f"{seed}:{v}".encode()).hexdigest())
    val = set(order[:n_val])
    return VideoSplit(
        train=tuple(v for v in names if v not in val), val=tuple(sorted(val)), val_fraction=val_fraction, seed=seed
    )


def recorded_split(
    store: Store, videos: list[str] | tuple[str, ...], val_fraction: float = 0.15, seed: int = 0
) -> VideoSplit:
    """The run's split: the one in `store/split.json` when the run already has one (resume), else a new one
    written there. A recorded split naming videos the data no longer has is bad input."""
    if store.exists(SPLIT_FILE):
        data = store.read_json(SPLIT_FILE)
        rec = VideoSplit(
            train=tuple(data["train"]),
            val=tuple(data["val"]),
            val_fraction=float(data["val_fraction"]),
            seed=int(data["seed"]),
        )
        gone = sorted(set(rec.train + rec.val) - set(videos))
        if gone:
            raise BadInputError(
                f"{store.uri(SPLIT_FILE)}: names videos missing from the data ({', '.join(gone[:3])}"
                f"{', …' if len(gone) > 3 else ''})"
            )
        return rec
    split = split_videos(videos, val_fraction, seed)
    store.write_json(SPLIT_FILE, split.to_dict())
    return split


def check_train_videos(data: MoseSplit, videos: Sequence[str], num_frames: int) -> None:
    """Every training video must be annotated on every frame and long enough for a clip; say which is not."""
    for name in videos:
        info = data.video(name)
        if info.annotated != info.frames:
            gap = next(s for s in info.frames if s not in set(info.annotated))
            raise BadInputError(
                f"video {name}: frame {gap} has no annotation; finetuning needs every frame "
                f"annotated ({len(info.annotated)} of {len(info.frames)} are)"
            )
        if len(info.frames) < max(num_frames, 3):
            raise BadInputError(
                f"video {name}: {len(info.frames)} frames; finetuning samples clips of "
                f"{num_frames} (and validation needs 3)"
            )
