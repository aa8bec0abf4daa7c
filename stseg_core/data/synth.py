"""Synthetic MOSE-like benchmark: textured objects with exact ground truth and MOSE's hard cases, from a seed.

This module writes the data set; `synth_config` says what to generate, `synth_plan` draws each video's paths
and hard cases, `synth_objects` each object's look and shape over time (the notation is in these two),
`synth_texture` paints, `synth_render` renders frames and measures.

Dataset layout written by `generate_dataset(root, config)`::

    root/meta.json                     config, layout, per split per video: hard cases and on which frames
    root/train/JPEGImages/<video>/00000.jpg …   root/train/Annotations/<video>/00000.png …  (every frame)
    root/valid/JPEGImages/…            root/valid/Annotations/<video>/00000.png  (first frame only)
    root/valid_gt/Annotations/<video>/00000.png …  (every frame: the ground truth for J&F)
    root/test/…, root/test_gt/…        as valid

Per video, `meta.json` → `splits.<split>.<video>` holds: `frames`, `object_ids`, `objects` {id: shape, crowd,
small, deforms}, `present` (hard cases measured in this video), `hard_cases` {`occlusion`: frames where an object
shows < 75 % of its in-frame pixels because of other objects, per object, plus the planned event;
`disappearance`: [{object, absent: [first, last] frame, frames, cause: out_of_frame | behind_occluder |
behind_object}]; `distractors`: [[ids of one crowd]]; `small_objects`: ids never above 1 % of the frame;
`camera_motion`: {max_shift_px, offsets per frame} or null; `deformation`: {objects, in_frame_px_range};
`textured_background`: bool}, and `visible_px` / `in_frame_px`: {id: pixel count per frame}.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from stseg_core.data.jpeg import encode_jpeg
from stseg_core.data.labels import encode_label_png
from stseg_core.data.mose import ANNOTATIONS_DIR, FRAMES_DIR, frame_stem
from stseg_core.data.synth_config import (
    HARD_CASES,
    OCCLUDED_BELOW,
    SMALL_FRACTION,
    SPLIT_INDEX,
    SPLITS,
    SynthConfig,
    video_name,
)
from stseg_core.data.synth_render import plan_video, render_video
from stseg_core.errors import BadInputError
from stseg_core.store import Store, open_store

__all__ = [  # the synthetic benchmark's public names, wherever they live
    "GT_SUFFIX",
    "HARD_CASES",
    "META_FILE",
    "SPLITS",
    "SynthConfig",
    "generate_dataset",
    "generate_split",
    "generate_video",
    "mose_like_costs",
    "plan_video",
    "render_video",
    "video_name",
]

META_FILE = "meta.json"
GT_SUFFIX = "_gt"


# ---- writing ----------------------------------------------------------------------------------------------------


def _as_store(store_or_uri: Store | str | Path) -> Store:
    return store_or_uri if isinstance(store_or_uri, Store) else open_store(store_or_uri)


def generate_video(
    store_or_uri: Store | str | Path, cfg: SynthConfig, split: str, index: int
) -> tuple[str, dict[str, Any]]:
    """Render and write one video under `<root>/<split>/` (and `<split>_gt/` for valid/test); → (name, meta)."""
    root = _as_store(store_or_uri)
    name = video_name(cfg.seed, split, index)
    frames_dir = f"{split}/{FRAMES_DIR}/{name}"
    ann_dir = f"{split}/{ANNOTATIONS_DIR}/{name}"
    gt_dir = f"{split}{GT_SUFFIX}/{ANNOTATIONS_DIR}/{name}" if split != "train" else None
    gen = render_video(cfg, split, index)
    i = 0
    while True:
        try:
            rgb, labels = next(gen)
        except StopIteration as stop:
            meta = stop.value
            break
        stem = frame_stem(i)
        root.write_bytes(f"{frames_dir}/{stem}.jpg", encode_jpeg(rgb, cfg.jpeg_quality))
        png = encode_label_png(labels)
        if gt_dir is None or i == 0:
            root.write_bytes(f"{ann_dir}/{stem}.png", png)
        if gt_dir is not None:
            root.write_bytes(f"{gt_dir}/{stem}.png", png)
        i += 1
    meta["split"] = split
    return name, meta


def _generate_one(args: tuple[str, SynthConfig, str, int]) -> tuple[str, dict[str, Any]]:
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    return generate_video(*args)


def generate_split(
    store_or_uri: Store | str | Path,
    cfg: SynthConfig,
    split: str = "train",
    videos: int | None = None,
    workers: int = 1,
) -> dict[str, dict[str, Any]]:
    """Write one split of `videos` (default `cfg.videos`) videos under the dataset root; update `meta.json`.

    Returns {video name: meta}. With `workers` > 1 videos render in parallel processes (same bytes as serial).
    """
    if split not in SPLIT_INDEX:
        raise BadInputError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    root = _as_store(store_or_uri)
    count = cfg.videos if videos is None else videos
    jobs = [(root.root, cfg, split, i) for i in range(count)]
    if workers > 1 and count > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process whose OpenCV/BLAS threads hold locks can deadlock the children.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_generate_one, jobs))
    else:
        results = [generate_video(root, cfg, split, i) for i in range(count)]
    metas = dict(sorted(results))
    meta = root.read_json(META_FILE) if root.exists(META_FILE) else _meta_header(cfg)
    meta.setdefault("splits", {})[split] = metas
    meta["config"] = cfg.to_json()
    root.write_json(META_FILE, meta)
    return metas


def _meta_header(cfg: SynthConfig) -> dict[str, Any]:
    return {
        "generator": "stseg synthetic MOSE-like benchmark",
        "config": cfg.to_json(),
        "layout": {
            "train": "train/JPEGImages/<video>/<frame>.jpg, train/Annotations/<video>/<frame>.png (every frame)",
            "valid": "valid/JPEGImages/…, valid/Annotations/<video>/00000.png (first frame only)",
            "valid_gt": "valid_gt/Annotations/<video>/<frame>.png (every frame; ground truth for J&F)",
            "test": "as valid; ground truth in test_gt/Annotations",
        },
        "thresholds": {"occluded_below_visible_share": OCCLUDED_BELOW, "small_below_frame_share": SMALL_FRACTION},
        "splits": {},
    }


def generate_dataset(
    root: Store | str | Path, cfg: SynthConfig, workers: int = 1, splits: tuple[str, ...] = SPLITS
) -> dict[str, Any]:
    """Write train/valid/test (+ valid_gt/test_gt) and `meta.json` under `root`; returns the meta."""
    store = _as_store(root)
    store.write_json(META_FILE, _meta_header(cfg))
    for split in splits:
        generate_split(store, cfg, split, workers=workers)
    meta: dict[str, Any] = store.read_json(META_FILE)
    return meta


def mose_like_costs(num_videos: int = 2149, seed: int = 0) -> dict[str, int]:
    """Work (frames × objects) per video with MOSEv1's spread: lognormal lengths, about 2.4 objects per video.

    For planning and benchmarking shards without the real data set.
    """
    rng = np.random.default_rng(seed)
    frames = np.clip(np.round(rng.lognormal(math.log(70), 0.6, num_videos)), 5, 600).astype(int)
    objects = np.clip(1 + rng.poisson(1.4, num_videos), 1, 15)
    return {video_name(seed, "mose-like", i): int(f * o) for i, (f, o) in enumerate(zip(frames, objects, strict=True))}
