"""The `fuse` stage and the performance-database builder: read a run's model outputs, run PGMR, score, write.

    <run>/plan.json                       which videos; how many shards each model must have finished
    <run>/pred/<model>/<video>/…          inputs (every shard done and matching its marker, or no start)
    <run>/fused/<video>/<stem>.png …      PGMR's output per video (scores.json: the kept output's scores)
    <run>/fused/_parts/<i>.json           sharded: fuse index i's videos (recommend entries, fallbacks, J&F)
    <run>/fused/_done/<i>.json            written by index i once its videos (and part) are written
    <run>/recommend.json                  per video: the kept output, predicted J&F, agreement, trust, reason
    <run>/eval/<method>/results.json      with ground truth: J&F of each model, bbox-average, bbox-max,
    <run>/eval/table2.json                the vote-only pseudo-label and PGMR (the project's "Table 2")

The stage runs as `indexes` processes (an Indexed Job; local processes); index i checks and fuses the plan's
shards k ≡ i (mod indexes), each video streamed (`stseg_core.fusion.onevideo`). One index merges its
own videos and then marks itself done; with several, each writes its part and marks itself done, and whichever
finds every index done merges (`stseg_core.fusion.merge`). A model's video without scores.json falls back to
presence = "has pixels" and confidence 1 (recorded in recommend.json under `fallbacks`); different frame counts or
sizes between models, or an object id that is not in the video's first frame, stop the stage with a one-line error
naming the video and the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from stseg_core.data.mose import MoseSplit
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.fusion.calibrate import Calibration, accuracy_pairs, calibrated, fit
from stseg_core.fusion.consistency import model_agreement
from stseg_core.fusion.features import video_features
from stseg_core.fusion.inputs import check_ground_truth, ground_truth, load_model_video, scene_frames
from stseg_core.fusion.merge import TABLE, FuseReport, MergeTarget, Part, db_name, write_merged
from stseg_core.fusion.onevideo import FuseOptions, fuse_one_video
from stseg_core.fusion.perfdb import FUSED, PerfDB, VideoRecord, load_perfdb, save_perfdb
from stseg_core.fusion.pgmr import CHOICES, DEFAULT_CHOICE, DISPLAY_NAMES
from stseg_core.fusion.recommend import DEFAULT_K, TRUST_POWERS, Recommender, record, with_selection
from stseg_core.fusion.scoring import jf, score
from stseg_core.fusion.vote import fuse_video
from stseg_core.heap import pin_mmap_threshold
from stseg_core.plan import ShardPlan
from stseg_core.runlayout import FUSED as FUSED_PREFIX
from stseg_core.runlayout import (
    RECOMMEND,
    checked_done_shards,
    commit_shard,
    describe_bad,
    done_shards,
    fuse_part_key,
    pred_prefix,
    shard_done,
)
from stseg_core.store import Store, open_store
from stseg_core.telemetry import JobMetrics


# ---- readiness -----------------------------------------------------------------------------------------------
def index_shards(plan: ShardPlan, index: int = 0, indexes: int = 1) -> list[int]:
    """The plan shards fuse index `index` of `indexes` fuses, and so checks: k ≡ index (mod indexes)."""
    return list(range(index, plan.num_shards, indexes))


def missing_shards(run_store: Store, models: Sequence[str], plan: ShardPlan, shards: Sequence[int]) -> list[str]:
    """One entry per model with unfinished shards among `shards` of `plan`, e.g. 'sam2 shard(s) 1, 3 of 4 not
    done' (empty = all done)."""
    out = []
    for model in models:
        done = set(done_shards(run_store, pred_prefix(model)))
        todo = [str(k) for k in shards if str(k) not in done]
        if todo:
            out.append(f"{model} shard(s) {', '.join(todo)} of {plan.num_shards} not done")
    return out


def changed_shards(run_store: Store, models: Sequence[str], shards: Sequence[int]) -> list[str]:
    """One entry per model whose done `shards`' files are missing or changed (sizes against one listing of
    `pred/<model>/`); those shards are invalidated, so they count as not done (and a `--resume` redoes them)."""
    out = []
    for model in models:
        _good, bad = checked_done_shards(run_store, pred_prefix(model), [str(k) for k in shards])
        if bad:
            out.append(describe_bad(pred_prefix(model), bad))
    return out


def wait_until_ready(
    run_store: Store,
    models: Sequence[str],
    wait_s: float = 0.0,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    index: int = 0,
    indexes: int = 1,
) -> ShardPlan:
    """Return the plan once every shard of fuse index `index` of `indexes` (`index_shards`; 0 of 1 = every
    shard) of every model is done and its files match its marker; else MissingArtifactError naming what is
    missing or changed. Each shard is so checked (and invalidated if changed) by the one index that reads it.

    With `wait_s` > 0 it polls every `poll_s` seconds until then (infer Jobs may still be running).
    """
    if not models:
        raise BadInputError("fuse needs at least one model (--models a,b,…)")
    deadline = clock() + max(0.0, wait_s)
    plan = ShardPlan.load(run_store)
    shards = index_shards(plan, index, indexes)
    while True:
        missing = missing_shards(run_store, models, plan, shards) or changed_shards(run_store, models, shards)
        if not missing:
            return plan
        if clock() >= deadline:
            waited = f" after waiting {wait_s:g}s" if wait_s > 0 else ""
            raise MissingArtifactError(
                f"{run_store.root}: not every shard is done{waited}: "
                f"{'; '.join(missing)} (pred/<model>/_done/<shard>.json)"
            )
        sleep(max(0.01, min(poll_s, deadline - clock())))


# ---- the fuse stage ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FuseConfig:
    """run_root: the run (plan.json, pred/); data_root: the split the models ran on; gt_root: a folder with
    every frame's Annotations/ (scores the methods; None = no eval); db_uri: a performance database version
    file or folder (None = equal trust, pseudo-label everywhere); wait_s: wait this long for unfinished shards.
    index / indexes: this process fuses the plan's shards k with k % indexes == index (an Indexed Job's index
    and completions; 0 / 1 = the whole run in one process); resume: an index whose done marker is there is
    not fused again (the Job's way: a re-run Indexed Job redoes only what is missing)."""

    run_root: str
    data_root: str
    models: tuple[str, ...]
    gt_root: str | None = None
    db_uri: str | None = None
    wait_s: float = 0.0
    poll_s: float = 5.0
    k: int = DEFAULT_K
    choose: str = DEFAULT_CHOICE  # PGMR keeps the "vote", or one output per "video" / per "span" (pgmr.CHOICES)
    calibrate: bool = True  # vote with the database's calibrated confidences (stseg_core.fusion.calibrate)
    index: int = 0
    indexes: int = 1
    resume: bool = False

    def __post_init__(self) -> None:
        if self.choose not in CHOICES:
            raise BadInputError(f"unknown PGMR choice {self.choose!r}; known: {', '.join(CHOICES)}")
        if not 0 <= self.index < self.indexes:
            raise BadInputError(f"fuse index {self.index} of {self.indexes}: must be 0 … {self.indexes - 1}")


def _recommender(db: PerfDB | None, models: Sequence[str], k: int) -> Recommender | None:
    if db is None:
        return None
    unknown = [m for m in models if m not in db.models]
    if unknown:
        raise BadInputError(
            f"performance database v{db.version} has no history for model(s) {', '.join(unknown)} "
            f"(it knows {', '.join(db.models)})"
        )
    return Recommender(replace(db, models=tuple(models)), k=k)


def _target(cfg: FuseConfig) -> MergeTarget:
    """The run, the database and its recommender (bad input fails here, before any waiting)."""
    models = tuple(dict.fromkeys(cfg.models))
    db = load_perfdb(cfg.db_uri) if cfg.db_uri else None
    return MergeTarget(
        open_store(cfg.run_root), cfg.data_root, cfg.gt_root, cfg.db_uri, db, _recommender(db, models, cfg.k), models
    )


def run_fuse(cfg: FuseConfig, metrics: JobMetrics | None = None) -> FuseReport:
    """One fuse index: refuse until every infer shard is done, PGMR its videos, write fused/<video>/…; one index
    then merges (recommend.json, and with ground truth eval/ and the stseg_eval_jf metric per method) and marks
    itself done; one of several writes its part, marks itself done, and merges if every index is done."""
    pin_mmap_threshold()  # frame-sized buffers go back to the OS: the peak stays that of a few frames
    target = _target(cfg)
    run_store = target.run_store
    if cfg.resume and shard_done(run_store, FUSED_PREFIX, cfg.index):
        if cfg.indexes == 1:  # one index marks itself done after its merge
            return replace(saved_report(cfg.run_root), fused=0)
        return _merge_if_complete(cfg, target, metrics, FuseReport((), {}, merged=False))
    plan = wait_until_ready(run_store, target.models, cfg.wait_s, cfg.poll_s, index=cfg.index, indexes=cfg.indexes)
    videos = tuple(sorted(v for k in index_shards(plan, cfg.index, cfg.indexes) for v in plan.shards[k]))
    part = _fuse_videos(cfg, target, videos, metrics)
    meta = {"models": list(target.models), "database": db_name(target.db)}
    if cfg.indexes == 1:
        report = write_merged(target, part, metrics)
        commit_shard(run_store, FUSED_PREFIX, 0, part.keys, meta=meta)
        return replace(report, fused=len(videos))
    run_store.write_json(fuse_part_key(cfg.index), part.to_json())
    commit_shard(
        run_store,
        FUSED_PREFIX,
        cfg.index,
        [*part.keys, fuse_part_key(cfg.index)],
        meta={**meta, "indexes": cfg.indexes},
    )
    alone = FuseReport(
        videos,
        {v: e["choice"] for v, e in part.videos.items()},
        {},
        db_name(target.db),
        tuple(f for v in videos for f in part.fallbacks[v]),
        merged=False,
    )
    return _merge_if_complete(cfg, target, metrics, replace(alone, fused=len(videos)))


def _fuse_videos(cfg: FuseConfig, target: MergeTarget, videos: Iterable[str], metrics: JobMetrics | None) -> Part:
    """PGMR on each video in turn (ground truth checked for all of them before the first is written)."""
    videos = tuple(videos)
    data = MoseSplit(open_store(cfg.data_root))
    gt = MoseSplit(open_store(cfg.gt_root), frames=False) if cfg.gt_root else None
    for name in videos:  # missing or broken ground truth is refused before anything is written
        if gt is not None:
            check_ground_truth(gt, data.video(name))
    if metrics is not None:
        metrics.planned(sum(data.video(v).num_frames for v in videos))
    options = FuseOptions(target.recommender, cfg.choose, cfg.calibrate)
    part = Part()
    for name in videos:
        info = data.video(name)
        fallbacks: list[str] = []
        part.add(name, fuse_one_video(target.run_store, data, gt, info, target.models, options, fallbacks), fallbacks)
        if metrics is not None:
            metrics.frames(info.num_frames)
            metrics.video_done()
    return part


def _merge_if_complete(
    cfg: FuseConfig, target: MergeTarget, metrics: JobMetrics | None, alone: FuseReport
) -> FuseReport:
    """Merge when every index is done (two indexes merging at once write the same bytes); else `alone`."""
    if {str(i) for i in range(cfg.indexes)} <= set(done_shards(target.run_store, FUSED_PREFIX)):  # one listing
        return replace(_merge(cfg, target, metrics), fused=alone.fused)
    return alone


def merge_fuse(cfg: FuseConfig, metrics: JobMetrics | None = None) -> FuseReport:
    """The light final step of a sharded fuse, on its own: every index's part (markers checked first) →
    recommend.json and, with ground truth, eval/<method>/ and eval/table2.json."""
    return _merge(cfg, _target(cfg), metrics)


def _merge(cfg: FuseConfig, target: MergeTarget, metrics: JobMetrics | None) -> FuseReport:
    run_store = target.run_store
    indexes = [str(i) for i in range(cfg.indexes)]
    good, bad = checked_done_shards(run_store, FUSED_PREFIX, indexes)
    if bad:
        raise MissingArtifactError(describe_bad(FUSED_PREFIX, bad))
    todo = [i for i in indexes if i not in good]
    if todo:
        raise MissingArtifactError(
            f"{run_store.root}: fuse index(es) {', '.join(todo)} of {cfg.indexes} not done "
            f"({FUSED_PREFIX}/_done/<index>.json)"
        )
    part = Part()
    for i in range(cfg.indexes):
        part.update(Part.from_json(run_store.read_json(fuse_part_key(i))))
    return write_merged(target, part, metrics)


def saved_report(run_root: str) -> FuseReport:
    """The report of a run whose fuse stage already merged (recommend.json, and eval/table2.json with ground
    truth)."""
    store = open_store(run_root)
    rec = store.read_json(RECOMMEND)
    table = store.read_json(TABLE) if store.exists(TABLE) else {}
    return FuseReport(
        tuple(rec["videos"]),
        {v: e["choice"] for v, e in rec["videos"].items()},
        table.get("table", {}),
        table.get("database") or rec.get("database", ""),
        tuple(rec.get("fallbacks", ())),
    )


def format_table(report: FuseReport) -> str:
    """The report's Table 2 for this run: J&F, J, F per method (single models, baselines, vote, PGMR)."""
    lines = [f"{'method':<32}{'J&F':>8}{'J':>8}{'F':>8}"]
    for method, row in report.table.items():
        lines.append(f"{DISPLAY_NAMES.get(method, method):<32}{row['J&F']:>8.2f}{row['J']:>8.2f}{row['F']:>8.2f}")
    kept: dict[str, int] = {}
    for choice in report.choices.values():
        kept[choice] = kept.get(choice, 0) + 1
    lines.append(
        f"kept per video: {', '.join(f'{c} ×{n}' for c, n in sorted(kept.items()))}"
        + (f"; database: {report.database}" if report.database else "; no performance database")
    )
    return "\n".join(lines)


def saved_table(run_root: str) -> str:
    """Table 2 of a run whose fuse stage already ran with ground truth, as `stseg fuse` printed it."""
    return format_table(saved_report(run_root))


# ---- building the performance database ------------------------------------------------------------------------
def build_database(
    run_root: str,
    data_root: str,
    gt_root: str,
    models: Sequence[str],
    out_uri: str,
    k: int = DEFAULT_K,
    wait_s: float = 0.0,
    calibrate: bool = True,
) -> tuple[PerfDB, str]:
    """Score every model on a split with ground truth, fit each model's confidence calibration on its per-frame
    accuracy (`calibrate=False`: none, the vote uses raw confidences), fuse each video with trust learned from
    the *other* videos (leave-one-out, so the database never grades a pseudo-label on its own history) for each trust
    sharpening γ in TRUST_POWERS, keep the γ with the best mean fused J&F, pick the recommender by
    leave-one-out, and save the next database version under `out_uri`. → (db, version URI)."""
    run_store = open_store(run_root)
    models = tuple(dict.fromkeys(models))
    plan = wait_until_ready(run_store, models, wait_s)
    videos = tuple(sorted(v for shard in plan.shards for v in shard))
    data = MoseSplit(open_store(data_root))
    gt = MoseSplit(open_store(gt_root), frames=False)
    first_pass, pairs = _score_models(run_store, data, gt, videos, models)
    if not first_pass:
        raise MissingArtifactError(f"{run_store.uri('plan.json')}: the plan lists no videos")
    calibration = (
        {m: fit(np.concatenate([s for s, _a in pairs[m]]), np.concatenate([a for _s, a in pairs[m]])) for m in models}
        if calibrate
        else {}
    )
    fused_jf, agreements = _leave_one_out_fusion(run_store, data, gt, models, first_pass, calibration, k)
    means = {g: float(np.mean(v)) for g, v in fused_jf.items()}
    power = max(TRUST_POWERS, key=lambda g: (round(means[g], 6), -g))
    records = [
        record(rec.video, rec.features, {**rec.jf, FUSED: fused_jf[power][i]}, agreements[power][i])
        for i, rec in enumerate(first_pass)
    ]
    db = with_selection(
        PerfDB(models, tuple(records), source=str(data_root), calibration=calibration),
        k=k,
        trust_power=power,
        fused_jf_by_trust_power={f"{g:g}": round(v, 4) for g, v in means.items()},
    )
    uri = save_perfdb(open_store(out_uri), db, prefix="")
    return load_perfdb(uri), uri


def _score_models(
    run_store: Store, data: MoseSplit, gt: MoseSplit, videos: Sequence[str], models: tuple[str, ...]
) -> tuple[list[VideoRecord], dict[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """The database's first pass → (per video its features and each model's J&F, the fused J&F still 0; per model
    its (confidence, per-frame IoU) pairs to fit its calibration on)."""
    first_pass = []
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in models}
    for name in videos:
        info = data.video(name)
        outputs = [load_model_video(run_store, m, info) for m in models]
        truth = ground_truth(gt, info)
        for o in outputs:
            pairs[o.model].append(accuracy_pairs(o, truth))
        feats = video_features(
            scene_frames(data, name), info.num_frames, data.first_annotation(name), info.object_ids, outputs
        )
        by_model = {o.model: jf(score(name, truth, o.labels, info.frames)) for o in outputs}
        first_pass.append(record(name, feats, {**by_model, FUSED: 0.0}, {}))
    return first_pass, pairs


def _leave_one_out_fusion(
    run_store: Store,
    data: MoseSplit,
    gt: MoseSplit,
    models: tuple[str, ...],
    first_pass: list[VideoRecord],
    calibration: dict[str, Calibration],
    k: int,
) -> tuple[dict[float, list[float]], dict[float, list[dict[str, float]]]]:
    """Each video fused with the trust the *other* videos' records predict, once per trust power γ → per γ, the
    fused J&F and each model's agreement with the fused masks, in `first_pass` order."""
    provisional = PerfDB(models, tuple(first_pass))
    fused_jf: dict[float, list[float]] = {g: [] for g in TRUST_POWERS}
    agreements: dict[float, list[dict[str, float]]] = {g: [] for g in TRUST_POWERS}
    for i, rec in enumerate(first_pass):
        info = data.video(rec.video)
        outputs = [calibrated(load_model_video(run_store, m, info), calibration.get(m)) for m in models]
        truth = ground_truth(gt, info)
        if len(first_pass) > 1:
            others = replace(provisional, records=provisional.records[:i] + provisional.records[i + 1 :])
            expected = Recommender(others, k=k, method="knn").trust(rec.features)
        else:
            expected = dict.fromkeys(models, 1.0)
        for power in TRUST_POWERS:
            fused = fuse_video(outputs, info.object_ids, [expected[m] ** power for m in models], rec.video)
            fused_jf[power].append(jf(score(rec.video, truth, fused.labels, info.frames)))
            agreements[power].append(
                {o.model: model_agreement(o.labels, fused.labels, info.object_ids) for o in outputs}
            )
    return fused_jf, agreements
