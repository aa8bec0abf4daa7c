"""Whole-split J&F: list ground truth and predictions once, score videos in a process pool, aggregate.

Ground truth root: a MOSE/DAVIS split folder holding `Annotations/<video>/<stem>.png`, or the
`Annotations` folder itself. Prediction root: `<video>/<stem>.png` (e.g. a run's `pred/<model>/`). Both are
store URIs (`file://`, `s3://` or a plain path). Global scores are means over all objects of all videos.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.context import BaseContext

import numpy as np

from stseg_core.data.mose import frame_sequence
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.metrics.jf import METRICS, VideoResult, VideoTask, score_video
from stseg_core.store import Store, open_store

DAVIS_GLOBAL = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
MOSEV2_GLOBAL = ("J&Fdot-Mean", "J-Mean", "Fdot-Mean", "J&Fdot-Disappear", "J&Fdot-Reappear", "F-Mean", "J&F-Mean")


@dataclass(frozen=True)
class EvalResult:
    """Scores of a split: per video (`videos`, sorted by name) and global (`scores`, values in [0, 1] or None
    where no object has the needed segments). `frames` counts scored frames; `seconds` is wall time."""

    metric: str
    split: str
    gt_root: str
    pred_root: str
    videos: tuple[VideoResult, ...]
    scores: dict[str, float | None]
    frames: int
    seconds: float


def annotations_store(gt_root: str) -> tuple[Store, str, dict[str, list[str]]]:
    """The store of `<video>/<stem>.png` ground truth under `gt_root`, the split's name (its folder name),
    and the sorted frame stems of each video (one listing)."""
    store = open_store(gt_root)
    name = store.root.rstrip("/").rsplit("/", 1)[-1]
    keys = store.list("Annotations")
    if keys:
        return store.child("Annotations"), name, _frames_by_video(k[len("Annotations/") :] for k in keys)
    if name == "Annotations":
        name = store.root.rstrip("/").rsplit("/", 2)[-2]
    return store, name, _frames_by_video(store.list())


def _frames_by_video(keys: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in keys:
        video, _, rest = key.partition("/")
        if rest.endswith(".png") and "/" not in rest:
            out.setdefault(video, []).append(rest[: -len(".png")])
    return {v: sorted(stems) for v, stems in out.items()}


def plan_tasks(
    gt_root: str,
    pred_root: str,
    videos: Sequence[str] | None = None,
    metric: str = "davis",
    missing_as_empty: bool = False,
) -> tuple[list[VideoTask], str]:
    """One `VideoTask` per video to score, and the split name. Fails before any scoring on a video that is
    unknown to the ground truth, or missing from the predictions (unless `missing_as_empty`)."""
    if metric not in METRICS:
        raise BadInputError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    gt_store, split, gt_frames = annotations_store(gt_root)
    pred_store = open_store(pred_root)
    if not gt_frames:
        raise MissingArtifactError(f"{gt_store.root}: no ground-truth annotations (<video>/<frame>.png)")
    pred_frames = _frames_by_video(pred_store.list())
    names = sorted(gt_frames) if not videos else list(dict.fromkeys(videos))
    unknown = [v for v in names if v not in gt_frames]
    if unknown:
        raise BadInputError(f"{gt_store.root}: no ground truth for video(s) {', '.join(unknown)}")
    for v in names:  # the dataset reader's own check: `data validate` flags the same gaps
        frame_sequence(gt_frames[v], gt_store.uri(v))
    missing = [v for v in names if v not in pred_frames]
    if missing and not missing_as_empty:
        raise MissingArtifactError(
            f"{pred_store.root}: no predictions for video(s) {', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''}; --missing-as-empty scores them as empty"
        )
    tasks = [
        VideoTask(
            v,
            gt_store.root,
            pred_store.root,
            tuple(gt_frames[v]),
            frozenset(pred_frames.get(v, ())),
            metric,
            missing_as_empty,
        )
        for v in names
    ]
    return tasks, split


def global_scores(videos: Sequence[VideoResult], metric: str) -> dict[str, float | None]:
    """Means over all objects of all videos (the DAVIS/MOSE global numbers)."""
    objects = [o.summary for v in videos for o in v.objects]
    if not objects:
        raise BadInputError("no objects to score: every first ground-truth frame is empty")

    def mean(name: str) -> float | None:
        vals = [v for s in objects if (v := s[name]) is not None]
        return float(np.mean(vals)) if vals else None

    def pair(a: str, b: str) -> float | None:
        ma, mb = mean(a), mean(b)
        return None if ma is None or mb is None else (ma + mb) / 2

    if metric == "davis":
        out = {n: mean(n) for n in DAVIS_GLOBAL[1:]}
        return {"J&F-Mean": pair("J-Mean", "F-Mean"), **out}
    return {
        "J&Fdot-Mean": pair("J-Mean", "Fdot-Mean"),
        "J-Mean": mean("J-Mean"),
        "Fdot-Mean": mean("Fdot-Mean"),
        "J&Fdot-Disappear": pair("J-Disappear", "Fdot-Disappear"),
        "J&Fdot-Reappear": pair("J-Reappear", "Fdot-Reappear"),
        "F-Mean": mean("F-Mean"),
        "J&F-Mean": pair("J-Mean", "F-Mean"),
    }


def evaluate(
    gt_root: str,
    pred_root: str,
    videos: Sequence[str] | None = None,
    workers: int = 1,
    metric: str = "davis",
    missing_as_empty: bool = False,
    on_video: Callable[[VideoResult], None] | None = None,
    split: str | None = None,
) -> EvalResult:
    """Score predictions against ground truth; `workers` > 1 scores videos in that many processes.

    `on_video` is called in this process as each video finishes (progress bars, job metrics). `split` names
    the split in the output file names (default: the ground-truth root's folder name).
    """
    t0 = time.perf_counter()
    tasks, found_split = plan_tasks(gt_root, pred_root, videos, metric, missing_as_empty)
    split = split or found_split
    results: dict[str, VideoResult] = {}
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            results[task.video] = score_video(task)
            if on_video:
                on_video(results[task.video])
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Longest videos first, so the pool does not wait on one long video at the end.
        order = sorted(tasks, key=lambda t: -len(t.stems))
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=_pool_context()) as pool:
            futures = [pool.submit(score_video, t) for t in order]
            for fut in as_completed(futures):
                res = fut.result()
                results[res.video] = res
                if on_video:
                    on_video(res)
    done = tuple(results[t.video] for t in tasks)
    frames = sum(len(v.frames) for v in done)
    return EvalResult(
        metric, split, gt_root, pred_root, done, global_scores(done, metric), frames, time.perf_counter() - t0
    )


def _pool_context() -> BaseContext:
    """fork when this process has no other thread (fast start), else spawn (forking threads can deadlock)."""
    import multiprocessing
    import threading

    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
