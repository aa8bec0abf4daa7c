"""What the synthetic benchmark generates (`SynthConfig`), its split and hard-case names, and video names."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import Any

from stseg_core.errors import BadInputError

SPLITS = ("train", "valid", "test")
HARD_CASES = (
    "occlusion",
    "disappearance",
    "distractors",
    "small_objects",
    "camera_motion",
    "deformation",
    "textured_background",
)
META_FILE = "meta.json"
GT_SUFFIX = "_gt"
OCCLUDED_BELOW = 0.75
"""An object counts as occluded on a frame when less than this share of its in-frame pixels is visible."""
SMALL_FRACTION = 0.01
"""A small object covers less than this share of the frame (MOSE's small-object notion)."""
SPLIT_INDEX = {name: i for i, name in enumerate(SPLITS)}
"""Split → its index in the per-video seed."""


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Rates are per-video probabilities in [0, 1] that a hard case is planned."""

    seed: int = 0
    height: int = 480
    width: int = 854
    min_frames: int = 30
    max_frames: int = 120
    min_objects: int = 1
    max_objects: int = 6
    videos: int = 4
    """Videos per split."""
    occlusion: float = 0.7
    disappearance: float = 0.5
    distractors: float = 0.4
    small_objects: float = 0.4
    camera_motion: float = 0.6
    deformation: float = 0.6
    textured_background: float = 0.8
    noise: float = 3.0
    """Sensor noise standard deviation, grey levels."""
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise BadInputError(f"synth size {self.height}x{self.width}: height and width must be ≥ 32")
        if not 2 <= self.min_frames <= self.max_frames:
            raise BadInputError(f"synth frames {self.min_frames}-{self.max_frames}: need 2 ≤ min ≤ max")
        if not 1 <= self.min_objects <= self.max_objects <= 255:
            raise BadInputError(f"synth objects {self.min_objects}-{self.max_objects}: need 1 ≤ min ≤ max ≤ 255")
        if self.videos < 0:
            raise BadInputError(f"synth videos per split must be ≥ 0, got {self.videos}")
        for case in HARD_CASES:
            rate = getattr(self, case)
            if not 0.0 <= rate <= 1.0:
                raise BadInputError(f"synth rate {case}={rate}: must be in [0, 1]")
        if self.noise < 0 or not 1 <= self.jpeg_quality <= 100:
            raise BadInputError("synth noise must be ≥ 0 and jpeg_quality in 1…100")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SynthConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


def video_name(seed: int, split: str, index: int) -> str:
    """MOSE-style 8-hex-digit name, stable per (seed, split, index)."""
    return hashlib.sha1(f"stseg-synth:{seed}:{split}:{index}".encode()).hexdigest()[:8]
