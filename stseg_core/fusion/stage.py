"""The `fuse` stage and the performance-database builder: read a run's model outputs, run PGMR, score, write.

    <run>/plan.json                       which videos; how many shards each model must have finished
    <run>/pred/<model>/<video>/…          inputs (every shard done, or the stage refuses to start)
    <run>/fused/<video>/<stem>.png …      PGMR's output per video (scores.json: the kept output's scores)
    <run>/fused/_done/0.json              written last
    <run>/recommend.json                  per video: the kept output, predicted J&F, agreement, trust, reason
    <run>/eval/<method>/results.json      with ground truth: J&F of each model, bbox-average, bbox-max,
    <run>/eval/table2.json                the vote-only pseudo-label and PGMR (the project's "Table 2")

A model's video without scores.json falls back to presence = "has pixels" and confidence 1 (recorded in
recommend.json under `fallbacks`); different frame counts or sizes between models, or an object id that is
not in the video's first frame, stop the stage with a one-line error naming the video and the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from stseg_core.data.mose import MoseSplit, VideoInfo
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.fusion.baselines import METHODS as BASELINES
from stseg_core.fusion.calibrate import accuracy_pairs, calibrated, fit
from stseg_core.fusion.consistency import model_agreement
from stseg_core.fusion.features import video_features
from stseg_core.fusion.perfdb import FUSED, PerfDB, load_perfdb, save_perfdb
from stseg_core.fusion.pgmr import CHOICES, DEFAULT_CHOICE, PGMR, VideoOutcome, process_video
from stseg_core.fusion.recommend import DEFAULT_K, TRUST_POWERS, Recommender, record, with_selection
from stseg_core.fusion.video import ModelVideo, from_labels
from stseg_core.fusion.vote import fuse_video
from stseg_core.plan import ShardPlan
from stseg_core.runlayout import FUSED as FUSED_PREFIX
from stseg_core.runlayout import (
    RECOMMEND,
    checked_done_shards,
    commit_shard,
    describe_bad,
    done_shards,
    eval_prefix,
    pred_prefix,
)
from stseg_core.store import Store, join_key, open_store
from stseg_core.telemetry import JobMetrics

TABLE = "eval/table2.json"
CONFIDENCE = "pgmr: the kept output's own confidence (a model's, or the trust-weighted mean of the models')"


# ---- readiness -----------------------------------------------------------------------------------------------
def missing_shards(run_store: Store, models: Sequence[str]) -> list[str]:
    """One entry per model with unfinished shards, e.g. 'sam2 shard(s) 1, 3 of 4 not done' (empty = all done)."""
    plan = ShardPlan.load(run_store)
    out = []
    for model in models:
        done = set(done_shards(run_store, pred_prefix(model)))
        todo = [str(i) for i in range(plan.num_shards) if str(i) not in done]
        if todo:
            out.append(f"{model} shard(s) {', '.join(todo)} of {plan.num_shards} not done")
    return out


def changed_shards(run_store: Store, models: Sequence[str]) -> list[str]:
    """One entry per model whose done shards' files are missing or changed (sizes against one listing of
    `pred/<model>/`); those shards are invalidated, so they count as not done (and a `--resume` redoes them)."""
    out = []
    for model in models:
        _good, bad = checked_done_shards(run_store, pred_prefix(model))
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
) -> ShardPlan:
    """Return the plan once every shard of every model is done and its files match its marker; else
    MissingArtifactError naming what is missing or changed.

    With `wait_s` > 0 it polls every `poll_s` seconds until then (infer Jobs may still be running).
    """
    if not models:
        raise BadInputError("fuse needs at least one model (--models a,b,…)")
    deadline = clock() + max(0.0, wait_s)
    while True:
        missing = missing_shards(run_store, models) or changed_shards(run_store, models)
        if not missing:
            return ShardPlan.load(run_store)
        if clock() >= deadline:
            waited = f" after waiting {wait_s:g}s" if wait_s > 0 else ""
            raise MissingArtifactError(
                f"{run_store.root}: not every shard is done{waited}: "
                f"{'; '.join(missing)} (pred/<model>/_done/<shard>.json)"
            )
        sleep(max(0.01, min(poll_s, deadline - clock())))


# ---- reading -------------------------------------------------------------------------------------------------
def load_model_video(run_store: Store, model: str, info: VideoInfo, fallbacks: list[str] | None = None) -> ModelVideo:
    """One model's outputs for one video as arrays; a missing scores.json uses the documented fallback."""
    from stseg_core.data.labels import read_label_png
    from stseg_core.predictions import SCORES_FILE, read_video_predictions

    base = join_key(pred_prefix(model), info.name)
    if not run_store.exists(join_key(base, SCORES_FILE)):
        stems = [k.rsplit("/", 1)[-1][:-4] for k in run_store.list(base) if k.endswith(".png")]
        if not stems:
            raise MissingArtifactError(f"{run_store.uri(base)}: model {model} has no output for video {info.name}")
        _check_stems(info, model, tuple(sorted(stems, key=lambda s: (len(s), s))))
        labels = _stack(
            info,
            model,
            (
                (s, read_label_png(run_store.read_bytes(f"{base}/{s}.png"), run_store.uri(f"{base}/{s}.png")))
                for s in info.frames
            ),
        )
        if fallbacks is not None:
            fallbacks.append(f"{model}/{info.name}: no scores.json; presence from pixels, confidence 1")
        return from_labels(model, labels, info.object_ids)
    preds = read_video_predictions(run_store, model, info.name)
    _check_stems(info, model, preds.stems)
    if tuple(preds.object_ids) != tuple(info.object_ids):
        raise BadInputError(
            f"video {info.name}, model {model}: object ids {list(preds.object_ids)} differ from the "
            f"first frame's {list(info.object_ids)}"
        )
    labels = _stack(info, model, preds.iter_labels())
    ids = info.object_ids
    scores = np.array([[preds.scores[s][i] for i in ids] for s in preds.stems], np.float32).reshape(len(labels), -1)
    present = np.array([[preds.present[s][i] for i in ids] for s in preds.stems], bool).reshape(len(labels), -1)
    probs = np.stack([p for _s, p in preds.iter_probs()]) if preds.has_probs else None
    return ModelVideo(model, labels, tuple(ids), scores, present, probs)


def _check_stems(info: VideoInfo, model: str, stems: tuple[str, ...]) -> None:
    if stems != tuple(info.frames):
        extra = sorted(set(stems) - set(info.frames))[:3]
        lost = sorted(set(info.frames) - set(stems))[:3]
        raise BadInputError(
            f"video {info.name}, model {model}: {len(stems)} frames, the video has "
            f"{len(info.frames)} (missing {lost}, extra {extra})"
        )


def _stack(info: VideoInfo, model: str, frames) -> np.ndarray:
    """(T, H, W) from (stem, label map) pairs, refusing a frame whose size is not the video's."""
    out = np.empty((info.num_frames, info.height, info.width), np.uint8)
    for t, (stem, lab) in enumerate(frames):
        if lab.shape != (info.height, info.width):
            raise BadInputError(
                f"video {info.name}, model {model}, frame {stem}: label map is "
                f"{lab.shape[1]}x{lab.shape[0]}, the video is {info.width}x{info.height} (WxH)"
            )
        out[t] = lab
    return out


def _frames(data: MoseSplit, name: str):
    return (rgb for _s, rgb in data.iter_frames(name))


# ---- scoring -------------------------------------------------------------------------------------------------
def _score(video: str, gt: np.ndarray, pred: np.ndarray, stems: tuple[str, ...]):
    """J&F of one video with the project's evaluator: ground-truth frames 1…T−2, objects of the first frame."""
    from stseg_core.metrics.jf import VideoAccumulator

    ids = tuple(int(i) for i in np.unique(gt[0]) if i not in (0, 255))
    acc = VideoAccumulator(video, ids, "davis")
    for t in range(1, len(stems) - 1):
        acc.update(gt[t], pred[t], stems[t])
    return acc.result()


def _jf(result) -> float:
    """Per-video J&F (0…100): the mean over its objects, as the evaluator's tables report it."""
    from stseg_core.metrics.tables import video_scores

    return 100.0 * float(video_scores(result)["J&F"])


def _ground_truth(gt: MoseSplit, info: VideoInfo) -> np.ndarray:
    got = dict(gt.iter_annotations(info.name))
    missing = [s for s in info.frames if s not in got]
    if missing:
        raise MissingArtifactError(
            f"{gt.store.uri(f'Annotations/{info.name}')}: ground truth lacks frame(s) "
            f"{', '.join(missing[:5])} of video {info.name}"
        )
    return np.stack([got[s] for s in info.frames])


# ---- the fuse stage ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FuseConfig:
    """run_root: the run (plan.json, pred/); data_root: the split the models ran on; gt_root: a folder with
    every frame's Annotations/ (scores the methods; None = no eval); db_uri: a performance database version
    file or folder (None = equal trust, pseudo-label everywhere); wait_s: wait this long for unfinished shards."""

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

    def __post_init__(self) -> None:
        if self.choose not in CHOICES:
            raise BadInputError(f"unknown PGMR choice {self.choose!r}; known: {', '.join(CHOICES)}")


@dataclass(frozen=True)
class FuseReport:
    """table: method → {"J&F", "J", "F"} (0…100), methods in display order; choices: video → kept output."""

    videos: tuple[str, ...]
    choices: dict[str, str]
    table: dict[str, dict[str, float]] = field(default_factory=dict)
    database: str = ""
    fallbacks: tuple[str, ...] = ()


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


def run_fuse(cfg: FuseConfig, metrics: JobMetrics | None = None) -> FuseReport:
    """The fuse stage: refuse until every shard is done, then PGMR every video, write fused/, recommend.json,
    and (with ground truth) eval/ and the stseg_eval_jf metric per method."""
    run_store = open_store(cfg.run_root)
    models = tuple(dict.fromkeys(cfg.models))
    db = load_perfdb(cfg.db_uri) if cfg.db_uri else None
    recommender = _recommender(db, models, cfg.k)  # bad input fails before any waiting
    plan = wait_until_ready(run_store, models, cfg.wait_s, cfg.poll_s)
    videos = tuple(sorted(v for shard in plan.shards for v in shard))
    data = MoseSplit(open_store(cfg.data_root))
    gt = MoseSplit(open_store(cfg.gt_root), frames=False) if cfg.gt_root else None
    for name in videos if gt is not None else ():
        gt.video(name)  # a missing or broken ground truth fails before anything is written
    if metrics is not None:
        metrics.planned(sum(data.video(v).num_frames for v in videos))
    methods = (*models, *BASELINES, FUSED, PGMR)
    results: dict[str, list] = {m: [] for m in methods}
    per_video: dict[str, dict] = {}
    keys: list[str] = []
    fallbacks: list[str] = []
    for name in videos:
        info = data.video(name)
        outputs = [load_model_video(run_store, m, info, fallbacks) for m in models]
        outcome = process_video(
            name,
            outputs,
            info.object_ids,
            data.first_annotation(name),
            _frames(data, name),
            info.num_frames,
            recommender,
            with_baselines=gt is not None,
            choose=cfg.choose,
            calibrate=cfg.calibrate,
        )
        keys += _write_output(run_store, info, outcome)
        entry = {**outcome.recommendation.to_json(), "features": outcome.features.to_json()}
        if gt is not None:
            truth = _ground_truth(gt, info)
            labels = {
                **{o.model: o.labels for o in outputs},
                **outcome.baselines,
                FUSED: outcome.fused.labels,
                PGMR: outcome.output,
            }
            entry["jf"] = {}
            for method in methods:
                res = _score(name, truth, labels[method], info.frames)
                results[method].append(res)
                entry["jf"][method] = round(_jf(res), 4)
        per_video[name] = entry
        if metrics is not None:
            metrics.frames(info.num_frames)
            metrics.video_done()
    commit_shard(run_store, FUSED_PREFIX, 0, keys, meta={"models": list(models), "database": _db_name(db)})
    run_store.write_json(
        RECOMMEND,
        {
            "models": list(models),
            "database": _db_name(db),
            "database_uri": cfg.db_uri,
            "recommender": recommender.method if recommender else "none",
            "fallbacks": fallbacks,
            "videos": per_video,
        },
    )
    table = _write_eval(run_store, results, cfg, db, metrics) if gt else {}
    choices = {v: per_video[v]["choice"] for v in videos}
    return FuseReport(videos, choices, table, _db_name(db), tuple(fallbacks))


def _db_name(db: PerfDB | None) -> str:
    """Which database (its source split and version) a run used; empty without one."""
    return f"{db.source} v{db.version}" if db is not None else ""


def _write_output(run_store: Store, info: VideoInfo, outcome: VideoOutcome) -> list[str]:
    from stseg_core.models.base import FrameResult
    from stseg_core.predictions import write_video_predictions

    ids = info.object_ids
    results = (
        FrameResult(
            stem=s,
            labels=outcome.output[t],
            scores={i: float(np.clip(outcome.output_scores[t, k], 0, 1)) for k, i in enumerate(ids)},
            present={i: bool(outcome.output_present[t, k]) for k, i in enumerate(ids)},
        )
        for t, s in enumerate(info.frames)
    )
    return write_video_predictions(
        run_store,
        PGMR,
        info.name,
        results,
        stems=info.frames,
        object_ids=ids,
        confidence_definition=CONFIDENCE,
        prefix=FUSED_PREFIX,
    )


def _write_eval(
    run_store: Store, results: dict[str, list], cfg: FuseConfig, db: PerfDB | None, metrics: JobMetrics | None
) -> dict[str, dict[str, float]]:
    """eval/<method>/ in the evaluator's layout (DAVIS CSVs + results.json), eval/table2.json, stseg_eval_jf."""
    from stseg_core.metrics.evaluate import EvalResult, global_scores
    from stseg_core.metrics.tables import write_results

    split = cfg.data_root.rstrip("/").rsplit("/", 1)[-1]
    table = {}
    for method, res in results.items():
        scores = global_scores(res, "davis")
        source = (
            run_store.uri(f"{FUSED_PREFIX}" if method == PGMR else pred_prefix(method))
            if method in (PGMR, *cfg.models)
            else f"computed in memory by the fuse stage ({method})"
        )
        result = EvalResult(
            "davis", split, str(cfg.gt_root), source, tuple(res), scores, sum(len(r.frames) for r in res), 0.0
        )
        write_results(result, run_store.child(eval_prefix(method)))
        row = {"J&F": 100 * scores["J&F-Mean"], "J": 100 * scores["J-Mean"], "F": 100 * scores["F-Mean"]}
        table[method] = {k: round(v, 4) for k, v in row.items()}
        if metrics is not None:
            for metric, value in (("J&F-Mean", row["J&F"]), ("J-Mean", row["J"]), ("F-Mean", row["F"])):
                metrics.set("stseg_eval_jf", value, method=method, metric=metric)
    run_store.write_json(
        TABLE,
        {"split": split, "gt_root": cfg.gt_root, "database": _db_name(db), "database_uri": cfg.db_uri, "table": table},
    )
    return table


def format_table(report: FuseReport) -> str:
    """The report's Table 2 for this run: J&F, J, F per method (single models, baselines, vote, PGMR)."""
    return _table_text(report.table, report.choices.values(), report.database)


def saved_table(run_root: str) -> str:
    """Table 2 of a run whose fuse stage already ran with ground truth, as `stseg fuse` printed it."""
    store = open_store(run_root)
    saved = store.read_json(TABLE)
    choices = [v["choice"] for v in store.read_json(RECOMMEND)["videos"].values()]
    return _table_text(saved["table"], choices, saved.get("database"))


def _table_text(table: dict, choices, database: str | None) -> str:
    names = {FUSED: "pseudo-label (vote only)", PGMR: "PGMR (kept output)"}
    lines = [f"{'method':<32}{'J&F':>8}{'J':>8}{'F':>8}"]
    for method, row in table.items():
        lines.append(f"{names.get(method, method):<32}{row['J&F']:>8.2f}{row['J']:>8.2f}{row['F']:>8.2f}")
    kept: dict[str, int] = {}
    for choice in choices:
        kept[choice] = kept.get(choice, 0) + 1
    lines.append(
        f"kept per video: {', '.join(f'{c} ×{n}' for c, n in sorted(kept.items()))}"
        + (f"; database: {database}" if database else "; no performance database")
    )
    return "\n".join(lines)


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
    first_pass = []
    pairs: dict[str, list] = {m: [] for m in models}  # calibration: (confidence, per-frame IoU) per model
    for name in videos:
        info = data.video(name)
        outputs = [load_model_video(run_store, m, info) for m in models]
        truth = _ground_truth(gt, info)
        for o in outputs:
            pairs[o.model].append(accuracy_pairs(o, truth))
        feats = video_features(
            _frames(data, name), info.num_frames, data.first_annotation(name), info.object_ids, outputs
        )
        jf = {o.model: _jf(_score(name, truth, o.labels, info.frames)) for o in outputs}
        first_pass.append(record(name, feats, {**jf, FUSED: 0.0}, {}))
    if not first_pass:
        raise MissingArtifactError(f"{run_store.uri('plan.json')}: the plan lists no videos")
    calibration = (
        {m: fit(np.concatenate([s for s, _a in pairs[m]]), np.concatenate([a for _s, a in pairs[m]])) for m in models}
        if calibrate
        else {}
    )
    provisional = PerfDB(models, tuple(first_pass))
    fused_jf: dict[float, list[float]] = {g: [] for g in TRUST_POWERS}
    agreements: dict[float, list[dict[str, float]]] = {g: [] for g in TRUST_POWERS}
    for i, rec in enumerate(first_pass):
        info = data.video(rec.video)
        outputs = [calibrated(load_model_video(run_store, m, info), calibration.get(m)) for m in models]
        truth = _ground_truth(gt, info)
        if len(first_pass) > 1:
            others = replace(provisional, records=provisional.records[:i] + provisional.records[i + 1 :])
            expected = Recommender(others, k=k, method="knn").trust(rec.features)
        else:
            expected = dict.fromkeys(models, 1.0)
        for power in TRUST_POWERS:
            fused = fuse_video(outputs, info.object_ids, [expected[m] ** power for m in models], rec.video)
            fused_jf[power].append(_jf(_score(rec.video, truth, fused.labels, info.frames)))
            agreements[power].append(
                {o.model: model_agreement(o.labels, fused.labels, info.object_ids) for o in outputs}
            )
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
