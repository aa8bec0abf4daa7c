"""The `infer` stage: run one model over one shard of the plan and write `pred/<model>/…`, done marker last.

`run(InferConfig, metrics) -> InferResult` is what the infer Job and `stseg infer` both call.

While the model segments video i, a background thread copies video i+1's frames (and first annotation) from
the data store to local scratch, so an S3-backed pod never waits on the network between videos; frames are
then decoded one at a time from scratch, so memory does not grow with video length.

A model with `segment_many` (the upstream programs: one process launch per batch, see
`stseg_core.models.upstream`) gets the shard's videos in batches of at most `model.batch_frames` frames, in
name order, each batch staged before its launch; each video is written as the model yields it. Videos an
earlier, failed try already wrote completely (their scores.json, written last, matches) are kept, not redone.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from stseg_core.data.mose import ANNOTATIONS_DIR, FRAMES_DIR, MoseSplit
from stseg_core.errors import BadInputError, StsegError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel
from stseg_core.models.registry import build_model, check_options
from stseg_core.plan import PLAN_FILE, ShardPlan, plan_shards, video_cost
from stseg_core.predictions import PROBS_FILE, SCORES_FILE, read_video_predictions, write_video_predictions
from stseg_core.runlayout import ShardOutcome, pred_prefix, run_shard_once
from stseg_core.stages.common import Reporting
from stseg_core.store import FileStore, Store, open_store
from stseg_core.telemetry import JobMetrics


@dataclass(frozen=True)
class InferConfig:
    """One shard of one model: the split at `data_root`, the run (and its plan.json) at `run_root`; `overrides`
    are the model's options (checkpoint, device and the rest), as values or text."""

    data_root: str
    run_root: str
    model: str
    shard: int
    num_shards: int
    overrides: Mapping[str, object] = field(default_factory=dict)
    scratch: str | None = None
    reporting: Reporting = field(default_factory=Reporting)


@dataclass(frozen=True)
class InferResult:
    """What a shard did (`skipped`: it was already done)."""

    model: str
    shard: int
    num_shards: int
    skipped: bool
    videos: int
    frames: int
    seconds: float
    files: int
    run_root: str

    def summary(self) -> str:
        where = f"{self.model} shard {self.shard}/{self.num_shards}"
        if self.skipped:
            return f"{where}: already done, skipped"
        return (
            f"{where}: {self.videos} videos, {self.frames} frames in {self.seconds:.1f} s "
            f"({self.frames / max(self.seconds, 1e-9):.1f} frames/s); {self.files} files under {self.run_root}"
        )


def run(config: InferConfig, metrics: JobMetrics | None = None) -> InferResult:
    """The stage: the model's options and scratch folder checked, then `run_shard`, under the job's metrics
    (`metrics`, else the config's own reporter)."""
    if metrics is None:
        metrics = config.reporting.metrics(config.run_root, "infer", config.model, str(config.shard))
    start = time.monotonic()
    with metrics:  # a refusal below is a failure the metrics record too
        check_options(config.model, dict(config.overrides))  # unknown model or option: before anything is read
        check_scratch(config.scratch)
        outcome = run_shard(
            data_root=config.data_root,
            run_root=config.run_root,
            model_name=config.model,
            shard=config.shard,
            num_shards=config.num_shards,
            model_overrides=config.overrides,
            metrics=metrics,
            scratch=config.scratch,
        )
    return InferResult(
        config.model,
        config.shard,
        config.num_shards,
        outcome.skipped,
        int(metrics.value("stseg_videos_processed_total")),
        int(metrics.value("stseg_frames_processed_total")),
        time.monotonic() - start,
        len(outcome.marker.files),
        config.run_root,
    )


class BatchedModel(Protocol):
    """A model that segments many videos per launch of its program (`stseg_core.models.upstream`)."""

    batch_frames: int

    def segment_many(self, videos: Sequence[VideoInput]) -> Iterator[tuple[VideoInput, Iterator[FrameResult]]]: ...


@dataclass(frozen=True)
class _Staged:
    """One video copied to local scratch: a one-video split at `root`."""

    name: str
    root: Path
    video: VideoInput


def _stage(data: MoseSplit, name: str, scratch: Path, workers: int) -> _Staged:
    """Copy a video's frames and first annotation into `scratch/<name>/` and open it as a VideoInput."""
    info = data.video(name)  # refuses a first frame without objects
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))
    first_ann = f"{ANNOTATIONS_DIR}/{name}/{info.frames[0]}.png"
    dest = root / first_ann
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data.store.read_bytes(first_ann))
    keys = [f"{FRAMES_DIR}/{name}/{stem}.jpg" for stem in info.frames]

    def fetch(key: str) -> None:
        (root / key).write_bytes(data.store.read_bytes(key))

    (root / FRAMES_DIR / name).mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(fetch, keys))
    return _Staged(name, root, VideoInput.from_split(MoseSplit(FileStore(root)), name))


@dataclass(frozen=True)
class _ShardWork:
    """What both ways of running a shard's videos share: the model, where videos come from and go, its metrics."""

    model: VOSModel
    model_name: str
    data: MoseSplit
    run_store: Store
    scratch: Path
    metrics: JobMetrics | None
    fetch_workers: int

    def stage(self, name: str) -> _Staged:
        return _stage(self.data, name, self.scratch, self.fetch_workers)

    def write(self, video: VideoInput, results: Iterator[FrameResult]) -> list[str]:
        """Write one video's predictions as the model yields them, counting its frames."""
        return write_video_predictions(
            self.run_store,
            self.model_name,
            video.name,
            _counted(results, self.metrics),
            stems=video.stems,
            object_ids=video.object_ids,
            confidence_definition=self.model.confidence_definition,
        )


def _counted(results: Iterator[FrameResult], metrics: JobMetrics | None) -> Iterator[FrameResult]:
    for r in results:
        if metrics is not None:
            metrics.frames(1)
        yield r


def _video_error(
    model: str, name: str, err: BaseException, staged: _Staged | None = None, data_root: str = ""
) -> StsegError:
    """The same error kind, its one line prefixed with the model and video so a failed shard says where; a file
    of the video's scratch copy is named by the user's own location under `data_root`."""
    text = " ".join(str(err).split()) or type(err).__name__
    if staged is not None:
        text = text.replace(staged.root.as_uri(), data_root).replace(str(staged.root), data_root)
    text = text.removeprefix(f"video {name}: ")  # said once, by the prefix below
    if isinstance(err, StsegError):
        where = "" if text.startswith((f"video {name}:", f"video {name} ")) else f"video {name}: "
        return type(err)(f"{model} {where}{text}")
    return StsegError(f"{model} video {name}: {type(err).__name__}: {text}")


def ensure_plan(data_root: str, run_root: str, num_shards: int) -> ShardPlan:
    """The run's plan; when the run has none yet (a laptop run without the planner step), plan the split by
    work (frames × objects) and save it. Planning is deterministic, so concurrent shards write the same plan."""
    run_store = open_store(run_root)
    if run_store.exists(PLAN_FILE):
        return ShardPlan.load(run_store)
    data = MoseSplit(open_store(data_root))
    names = data.videos()
    if not names:
        raise BadInputError(f"{data.store.root}: no videos to plan (expected JPEGImages/<video>/…)")
    costs = {v: video_cost(data.video(v).num_frames, len(data.video(v).object_ids)) for v in names}
    plan = plan_shards(costs, num_shards)
    plan.save(run_store)
    return plan


def check_scratch(scratch: str | Path | None) -> None:
    """A scratch folder that is not there fails in one line before any work (the default is the system's)."""
    if scratch is not None and not Path(scratch).is_dir():
        raise BadInputError(f"scratch folder {scratch} does not exist or is not a folder (--scratch / STSEG_SCRATCH)")


def run_shard(
    *,
    data_root: str,
    run_root: str,
    model_name: str,
    shard: int,
    num_shards: int,
    model_overrides: Mapping[str, object] | None = None,
    metrics: JobMetrics | None = None,
    scratch: str | Path | None = None,
    fetch_workers: int = 8,
) -> ShardOutcome:
    """Segment every video of shard `shard` (of `num_shards`) of the plan at `run_root` with `model_name`.

    A shard already marked done is skipped (no model is built). Any video's failure raises an error naming
    the model and video, and the shard's marker is not written, so a re-run redoes the whole shard.
    """
    check_scratch(scratch)
    run_store = open_store(run_root)
    plan = ShardPlan.load(run_store)
    if plan.num_shards != num_shards:
        raise BadInputError(
            f"{run_store.uri(PLAN_FILE)}: plan has {plan.num_shards} shards, the job was started with {num_shards}"
        )
    videos = plan.videos(shard)
    prefix = pred_prefix(model_name)

    def produce() -> list[str]:
        model = build_model(model_name, **dict(model_overrides or {}))
        data = MoseSplit(open_store(data_root))
        planned = 0
        for name in videos:  # checks every video's layout and first annotation before any work
            try:
                planned += data.video(name).num_frames
            except Exception as err:  # any failure becomes one line naming the video
                raise _video_error(model_name, name, err) from err
        if metrics is not None:
            metrics.planned(planned)
        run = _run_batches if hasattr(model, "segment_many") else _run_videos
        with tempfile.TemporaryDirectory(prefix="stseg-infer-", dir=scratch) as tmp:
            return run(_ShardWork(model, model_name, data, run_store, Path(tmp), metrics, fetch_workers), videos)

    meta = {
        "model": model_name,
        "num_shards": num_shards,
        "videos": list(videos),
        "overrides": {k: str(v) for k, v in (model_overrides or {}).items()},
    }
    return run_shard_once(run_store, prefix, shard, produce, meta=meta)


def _run_videos(work: _ShardWork, videos: tuple[str, ...]) -> list[str]:
    """One video at a time, the next one staged while the model runs."""
    keys: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stseg-prefetch") as prefetch:
        pending: Future[_Staged] | None = None
        if videos:
            pending = prefetch.submit(work.stage, videos[0])
        for i, name in enumerate(videos):
            assert pending is not None  # one staged video per name, submitted the step before
            try:
                staged = pending.result()
            except Exception as err:  # any failure becomes one line naming the video
                raise _video_error(work.model_name, name, err) from err
            pending = prefetch.submit(work.stage, videos[i + 1]) if i + 1 < len(videos) else None
            try:
                keys += work.write(staged.video, work.model.segment(staged.video))
            except Exception as err:  # any failure becomes one line naming the video
                if pending is not None:
                    pending.cancel()
                raise _video_error(work.model_name, name, err, staged, work.data.store.root) from err
            finally:
                shutil.rmtree(staged.root, ignore_errors=True)
            if work.metrics is not None:
                work.metrics.video_done()
                work.metrics.gpu_memory()
    return keys


def _kept_keys(work: _ShardWork, name: str) -> list[str] | None:
    """The keys of `name`'s predictions when an earlier try wrote them completely with this model's settings."""
    run_store, model = work.run_store, work.model
    base = f"{pred_prefix(work.model_name)}/{name}"
    if not run_store.exists(f"{base}/{SCORES_FILE}"):
        return None
    info = work.data.video(name)
    try:
        pred = read_video_predictions(run_store, work.model_name, name)
    except BadInputError:
        return None
    if (pred.stems, pred.object_ids, pred.confidence_definition) != (
        tuple(info.frames),
        tuple(sorted(info.object_ids)),
        model.confidence_definition,
    ):
        return None
    stored = set(run_store.list(base))  # keys relative to the run root
    keys = [f"{base}/{stem}.png" for stem in info.frames]
    if not set(keys) <= stored:
        return None
    probs = [f"{base}/{PROBS_FILE}"] if f"{base}/{PROBS_FILE}" in stored else []
    return keys + probs + [f"{base}/{SCORES_FILE}"]


def _batches(data: MoseSplit, names: list[str], max_frames: int) -> Iterator[list[str]]:
    """Consecutive runs of `names` of at most `max_frames` frames (a longer video goes alone)."""
    batch: list[str] = []
    frames = 0
    for name in names:
        n = data.video(name).num_frames
        if batch and frames + n > max_frames:
            yield batch
            batch, frames = [], 0
        batch.append(name)
        frames += n
    if batch:
        yield batch


def _run_batches(work: _ShardWork, videos: tuple[str, ...]) -> list[str]:
    """Batches of videos per launch of the model's program; videos an earlier try wrote completely are kept."""
    keys: list[str] = []
    todo = []
    for name in sorted(videos):
        kept = _kept_keys(work, name)
        if kept is None:
            todo.append(name)
        else:
            keys += kept
            if work.metrics is not None:
                work.metrics.frames(work.data.video(name).num_frames)
                work.metrics.video_done()
    batched = cast(BatchedModel, work.model)
    for batch in _batches(work.data, todo, batched.batch_frames):
        staged: list[_Staged] = []
        pending = list(batch)  # pending[0]: the video being staged, run or written
        try:
            for name in batch:
                staged.append(work.stage(name))
            for video, results in batched.segment_many([s.video for s in staged]):
                keys += work.write(video, results)
                pending.pop(0)
                if work.metrics is not None:
                    work.metrics.video_done()
        except Exception as err:  # any failure becomes one line naming the video
            raise _video_error(work.model_name, pending[0] if pending else batch[-1], err) from err
        finally:
            for s in staged:
                shutil.rmtree(s.root, ignore_errors=True)
        if work.metrics is not None:
            work.metrics.gpu_memory()
    return keys
