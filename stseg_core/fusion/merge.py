"""The fuse stage's merge: the videos every fuse index fused (its *part*) → recommend.json and, with ground truth,
eval/<method>/ and eval/table2.json, in video order, so any number of indexes writes the same bytes as one.

A part holds, per video, its recommend.json entry, its fallbacks and each method's J&F result (lossless: the
per-frame series, see `VideoResult.to_json`); a sharded fuse index stores it as `fused/_parts/<index>.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from stseg_core.fusion.onevideo import VideoFused
from stseg_core.fusion.perfdb import PerfDB
from stseg_core.fusion.pgmr import DERIVED, PGMR
from stseg_core.fusion.recommend import Recommender
from stseg_core.metrics.jf import VideoResult
from stseg_core.runlayout import FUSED as FUSED_PREFIX
from stseg_core.runlayout import RECOMMEND, eval_prefix, pred_prefix
from stseg_core.store import Store
from stseg_core.telemetry import JobMetrics

TABLE = "eval/table2.json"


@dataclass(frozen=True)
class FuseReport:
    """table: method → {"J&F", "J", "F"} (0…100), methods in display order; choices: video → kept output.
    `merged`: whether recommend.json (and eval/) were written, i.e. every fuse index was done; `fused`: how many
    videos this call fused itself (the others came from other indexes' parts, or were done before)."""

    videos: tuple[str, ...]
    choices: dict[str, str]
    table: dict[str, dict[str, float]] = field(default_factory=dict)
    database: str = ""
    fallbacks: tuple[str, ...] = ()
    merged: bool = True
    fused: int = 0


@dataclass
class Part:
    """What one fuse index hands the merge (`keys`: what it wrote under fused/, for its done marker only)."""

    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    results: dict[str, dict[str, VideoResult]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)

    def add(self, video: str, fused: VideoFused, fallbacks: list[str]) -> None:
        self.videos[video] = fused.entry
        self.fallbacks[video] = fallbacks
        if fused.results:
            self.results[video] = fused.results
        self.keys += fused.keys

    def update(self, other: Part) -> None:
        self.videos.update(other.videos)
        self.fallbacks.update(other.fallbacks)
        self.results.update(other.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "videos": self.videos,
            "fallbacks": self.fallbacks,
            "results": {v: {m: r.to_json() for m, r in res.items()} for v, res in self.results.items()},
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Part:
        return cls(
            obj["videos"],
            obj["fallbacks"],
            {v: {m: VideoResult.from_json(r) for m, r in res.items()} for v, res in obj["results"].items()},
        )


@dataclass(frozen=True)
class MergeTarget:
    """Where and for what the merge writes: the run, the split's root (its name labels eval/), the ground truth
    (None = no eval), the database (its URI and the loaded database and recommender), the models fused."""

    run_store: Store
    data_root: str
    gt_root: str | None
    db_uri: str | None
    db: PerfDB | None
    recommender: Recommender | None
    models: tuple[str, ...]


def write_merged(target: MergeTarget, part: Part, metrics: JobMetrics | None = None) -> FuseReport:
    """recommend.json and, with ground truth, eval/ from every index's part (merged into `part`)."""
    videos = tuple(sorted(part.videos))
    per_video = {v: part.videos[v] for v in videos}
    fallbacks = [f for v in videos for f in part.fallbacks[v]]
    database = db_name(target.db)
    table = {}
    if target.gt_root:
        methods = (*target.models, *DERIVED)
        table = _write_eval(target, {m: [part.results[v][m] for v in videos] for m in methods}, metrics)
    target.run_store.write_json(
        RECOMMEND,
        {
            "models": list(target.models),
            "database": database,
            "database_uri": target.db_uri,
            "recommender": target.recommender.method if target.recommender else "none",
            "fallbacks": fallbacks,
            "videos": per_video,
        },
    )
    return FuseReport(videos, {v: per_video[v]["choice"] for v in videos}, table, database, tuple(fallbacks))


def db_name(db: PerfDB | None) -> str:
    """Which database (its source split and version) a run used; empty without one."""
    return f"{db.source} v{db.version}" if db is not None else ""


def _write_eval(
    target: MergeTarget, results: dict[str, list[VideoResult]], metrics: JobMetrics | None
) -> dict[str, dict[str, float]]:
    """eval/<method>/ in the evaluator's layout (DAVIS CSVs + results.json), eval/table2.json, stseg_eval_jf."""
    from stseg_core.metrics.evaluate import EvalResult, global_scores
    from stseg_core.metrics.tables import write_results

    run_store = target.run_store
    split = target.data_root.rstrip("/").rsplit("/", 1)[-1]
    table = {}
    for method, res in results.items():
        scores = global_scores(res, "davis")
        result = EvalResult(
            "davis",
            split,
            str(target.gt_root),
            _source(target, method),
            tuple(res),
            scores,
            sum(len(r.frames) for r in res),
            0.0,
        )
        write_results(result, run_store.child(eval_prefix(method)))
        row = {name: 100 * cast(float, scores[f"{name}-Mean"]) for name in ("J&F", "J", "F")}
        table[method] = {k: round(v, 4) for k, v in row.items()}
        if metrics is not None:
            for metric, value in (("J&F-Mean", row["J&F"]), ("J-Mean", row["J"]), ("F-Mean", row["F"])):
                metrics.set("stseg_eval_jf", value, method=method, metric=metric)
    run_store.write_json(
        TABLE,
        {
            "split": split,
            "gt_root": target.gt_root,
            "database": db_name(target.db),
            "database_uri": target.db_uri,
            "table": table,
        },
    )
    return table


def _source(target: MergeTarget, method: str) -> str:
    """Where a method's masks are: fused/ for PGMR, pred/<model>/ for a model, else computed by the stage."""
    if method == PGMR:
        return target.run_store.uri(FUSED_PREFIX)
    if method in target.models:
        return target.run_store.uri(pred_prefix(method))
    return f"computed in memory by the fuse stage ({method})"
