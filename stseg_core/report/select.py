"""Which videos the report looks at closely: the worst, the most disputed, and where in them things go wrong."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.fusion.perfdb import FUSED
from stseg_core.fusion.pgmr import PGMR
from stseg_core.report.collect import RunSummary


@dataclass(frozen=True)
class VideoRow:
    """One video on the page. values: method → J&F in % (ground truth) or agreement with the pseudo-label in %
    (no ground truth), as the run stored it; spread: max − min over the single models (how much they dispute);
    key: the value the "worst" ranking uses (PGMR's, else the best single model's)."""

    video: str
    values: dict[str, float]
    spread: float
    key: float


def video_rows(run: RunSummary) -> list[VideoRow]:
    """Every video, most disputed first (ties: worse first, then by name)."""
    rows = []
    videos = (run.recommend or {}).get("videos", {})
    for video in run.videos:
        if run.has_gt:
            values = {m: 100 * v for m in run.methods if (v := run.evals[m].video_jf(video)) is not None}
        else:
            values = {m: 100 * float(a) for m, a in videos.get(video, {}).get("agreement", {}).items()}
        singles = [values[m] for m in run.models if m in values]
        spread = float(max(singles) - min(singles)) if len(singles) > 1 else 0.0
        if PGMR in values:
            key = values[PGMR]
        elif run.has_gt:
            key = max(singles, default=0.0)
        else:
            key = float(np.mean(singles)) if singles else 0.0
        rows.append(VideoRow(video, values, spread, key))
    return sorted(rows, key=lambda r: (-r.spread, r.key, r.video))


def select_videos(rows: list[VideoRow], per_kind: int, wanted: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(video, why) for the close-up sections: `wanted` if given, else the `per_kind` worst and the `per_kind`
    most disputed (a video in both is listed once)."""
    known = {r.video for r in rows}
    if wanted:
        unknown = [v for v in wanted if v not in known]
        if unknown:
            raise BadInputError(f"--videos: the run has no video(s) {', '.join(unknown)}")
        return [(v, "asked for") for v in dict.fromkeys(wanted)]
    out: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (r.key, r.video))[:per_kind]:
        out[row.video] = "worst"
    for row in rows[:per_kind]:
        out[row.video] = "worst, most disputed" if row.video in out else "most disputed"
    return list(out.items())


@dataclass(frozen=True)
class FrameSeries:
    """Per-frame scores of one object of one video: stems scored, method → values in [0, 1]; what they measure."""

    video: str
    object_id: int
    stems: tuple[str, ...]
    series: dict[str, list[float]]
    measure: str


def largest_drop(series: FrameSeries) -> int:
    """Index (into series.stems) of the frame after the largest frame-to-frame fall of any method's series."""
    best, at = -1.0, 0
    for values in series.series.values():
        v = np.asarray(values, np.float64)
        if len(v) < 2:
            continue
        drops = v[:-1] - v[1:]
        i = int(np.argmax(drops))
        if drops[i] > best:
            best, at = float(drops[i]), i + 1
    return at


def eval_series(run: RunSummary, video: str) -> FrameSeries | None:
    """J per scored frame from eval/<method>/results.json, for the object with the largest drop in any method."""
    candidates: dict[int, FrameSeries] = {}
    for method in (*run.models, FUSED, PGMR):
        ev = run.evals.get(method)
        entry = ev.results.get("videos", {}).get(video) if ev else None
        if not entry:
            continue
        for oid, obj in entry["objects"].items():
            fs = candidates.setdefault(
                int(oid), FrameSeries(video, int(oid), tuple(entry["frames"]), {}, "J (region similarity, eval/)")
            )
            fs.series[method] = obj["per_frame"]["J"]
    if not candidates:
        return None
    return max(candidates.values(), key=lambda fs: (_drop(fs), -fs.object_id))


def _drop(fs: FrameSeries) -> float:
    at = largest_drop(fs)
    return max((vals[at - 1] - vals[at] for vals in fs.series.values() if 0 < at < len(vals)), default=0.0)


def agreement_series(
    video: str, stems: tuple[str, ...], object_ids: tuple[int, ...], masks: dict[str, list[np.ndarray]]
) -> FrameSeries | None:
    """Without ground truth: per frame IoU of each model's mask with PGMR's for the object whose IoU falls most."""
    if PGMR not in masks:
        return None
    ref = masks[PGMR]
    best = None
    for oid in object_ids:
        series = {}
        for method, frames in masks.items():
            if method == PGMR:
                continue
            series[method] = [_iou(f == oid, r == oid) for f, r in zip(frames, ref, strict=True)]
        fs = FrameSeries(video, oid, stems, series, "IoU with the PGMR output (no ground truth)")
        if best is None or _drop(fs) > _drop(best):
            best = fs
    return best


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union
