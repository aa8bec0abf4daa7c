"""Evaluation outputs: the DAVIS toolkit's CSVs, a JSON with every number, and a terminal table.

`global_results-<split>.csv`: one header row and one value row, `%.3f`, fractions in [0, 1] (davis:
J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay). `per-sequence_results-<split>.csv`: one row per
object named `<video>_<id>` (the toolkit's "Sequence" column), with J-Mean,F-Mean. For `mosev2` the columns
are the MOSEv2 ones (`Fdot` = Ḟ); a score an object has no segment for is left empty.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from stseg_core.metrics.evaluate import DAVIS_GLOBAL, MOSEV2_GLOBAL, EvalResult
from stseg_core.metrics.jf import VideoResult
from stseg_core.store import Store

_SEQ_COLUMNS = {"davis": ("J-Mean", "F-Mean"), "mosev2": ("J-Mean", "Fdot-Mean", "J&Fdot-Disappear", "J&Fdot-Reappear")}


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _object_row(summary: dict[str, float | None], metric: str) -> dict[str, float | None]:
    if metric == "davis":
        return {"J-Mean": summary["J-Mean"], "F-Mean": summary["F-Mean"]}

    def pair(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else (a + b) / 2

    return {
        "J-Mean": summary["J-Mean"],
        "Fdot-Mean": summary["Fdot-Mean"],
        "J&Fdot-Disappear": pair(summary["J-Disappear"], summary["Fdot-Disappear"]),
        "J&Fdot-Reappear": pair(summary["J-Reappear"], summary["Fdot-Reappear"]),
    }


def global_csv(result: EvalResult) -> str:
    columns = DAVIS_GLOBAL if result.metric == "davis" else MOSEV2_GLOBAL
    return _csv([list(columns), [_fmt(result.scores[c]) for c in columns]])


def per_sequence_csv(result: EvalResult) -> str:
    columns = _SEQ_COLUMNS[result.metric]
    rows = [["Sequence", *columns]]
    for video in result.videos:
        for obj in video.objects:
            values = _object_row(obj.summary, result.metric)
            rows.append([f"{video.video}_{obj.object_id}", *(_fmt(values[c]) for c in columns)])
    return _csv(rows)


def video_scores(video: VideoResult) -> dict[str, float | None]:
    """Per-video means over its objects (J, F or Ḟ, and their mean), for the JSON and the terminal table."""
    f_name = "F-Mean" if video.metric == "davis" else "Fdot-Mean"
    if not video.objects:
        return {"J": None, "F": None, "J&F": None}
    j = float(np.mean([o.summary["J-Mean"] for o in video.objects]))
    f = float(np.mean([o.summary[f_name] for o in video.objects]))
    return {"J": j, "F": f, "J&F": (j + f) / 2}


def results_json(result: EvalResult) -> dict[str, Any]:
    """Everything: global scores, per video and object summaries, and the per-frame series."""
    videos = {}
    for video in result.videos:
        videos[video.video] = {
            "frames": list(video.frames),
            "size": list(video.size) if video.size else None,
            "scores": video_scores(video),
            "objects": {
                str(o.object_id): {"summary": o.summary, "per_frame": {n: s.tolist() for n, s in o.series.items()}}
                for o in video.objects
            },
        }
    return {
        "metric": result.metric,
        "split": result.split,
        "gt_root": result.gt_root,
        "pred_root": result.pred_root,
        "global": result.scores,
        "frames_scored": result.frames,
        "seconds": result.seconds,
        "videos": videos,
    }


def write_results(result: EvalResult, out: Store) -> list[str]:
    """Write the two CSVs and `results.json` into `out`; returns their keys."""
    files = {
        f"global_results-{result.split}.csv": global_csv(result),
        f"per-sequence_results-{result.split}.csv": per_sequence_csv(result),
    }
    for key, text in files.items():
        out.write_text(key, text)
    out.write_json("results.json", results_json(result))
    return [*files, "results.json"]


def format_table(result: EvalResult, max_rows: int = 25) -> str:
    """A short fixed-width table (percent): the global line, then the worst videos by J&F."""
    f_label = "F" if result.metric == "davis" else "Ḟ"
    jf_key = "J&F-Mean" if result.metric == "davis" else "J&Fdot-Mean"
    f_key = "F-Mean" if result.metric == "davis" else "Fdot-Mean"

    def pct(v: float | None) -> str:
        return "   -" if v is None else f"{100 * v:5.1f}"

    width = max([len("global"), *(len(v.video) for v in result.videos[: max_rows * 4])])
    width = min(width, 40)
    lines = [
        f"{'video':<{width}}  obj  J&{f_label:<3}     J     {f_label}",
        f"{'global':<{width}}  {sum(len(v.objects) for v in result.videos):>3}  {pct(result.scores[jf_key])} "
        f"{pct(result.scores['J-Mean'])} {pct(result.scores[f_key])}",
    ]
    if result.metric == "mosev2":
        lines.append(
            f"{'':<{width}}       J&Ḟ_d {pct(result.scores['J&Fdot-Disappear'])}   "
            f"J&Ḟ_r {pct(result.scores['J&Fdot-Reappear'])}"
        )
    ranked = sorted(result.videos, key=lambda v: (video_scores(v)["J&F"] is None, video_scores(v)["J&F"] or 0))
    for video in ranked[:max_rows]:
        s = video_scores(video)
        lines.append(
            f"{video.video[:width]:<{width}}  {len(video.objects):>3}  {pct(s['J&F'])} {pct(s['J'])} {pct(s['F'])}"
        )
    if len(ranked) > max_rows:
        lines.append(f"… {len(ranked) - max_rows} more videos (worst first); all in the CSV/JSON")
    lines.append(f"{result.frames} frames scored in {result.seconds:.2f} s ({result.metric})")
    return "\n".join(lines)
