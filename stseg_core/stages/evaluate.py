"""The `evaluate` stage: J&F of a folder of masks against ground truth, results written in the DAVIS toolkit's
layout. `run(EvaluateConfig, metrics) -> EvaluateResult` is what the evaluate Job and `stseg eval` both call.

In a run (`run_root` set) the masks are one of its outputs (`pred/<model>` or `fused`): their done markers
must check out (sizes against one listing) before anything is scored, and results go to `eval/<name>/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.metrics.evaluate import EvalResult, evaluate
from stseg_core.metrics.jf import METRICS, VideoResult
from stseg_core.metrics.tables import write_results
from stseg_core.runlayout import checked_done_shards, describe_bad, eval_prefix
from stseg_core.stages.common import Reporting
from stseg_core.store import open_store
from stseg_core.telemetry import JobMetrics


@dataclass(frozen=True)
class EvaluateConfig:
    """Score the masks under `pred_root` (`<video>/<frame>.png`) against `gt_root` (a split holding
    Annotations/, or that folder). `name` labels the method in the metrics; results go to `out_uri` (None: not
    written). `videos` empty = every video of the ground truth; `split` names the CSV files (default: the
    ground truth's folder name); `progress` shows a bar on a terminal."""

    gt_root: str
    pred_root: str
    name: str
    out_uri: str | None = None
    run_root: str | None = None
    """The run `pred_root` belongs to: its done markers for that prefix are checked before scoring."""
    metric: str = "davis"
    workers: int = 1
    videos: tuple[str, ...] = ()
    missing_as_empty: bool = False
    split: str | None = None
    progress: bool = False
    reporting: Reporting = field(default_factory=Reporting)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise BadInputError(f"metric {self.metric!r}: use {' or '.join(METRICS)}")

    @classmethod
    def in_run(cls, gt_root: str, run_root: str, pred_prefix: str, name: str) -> EvaluateConfig:
        """A run's output `pred_prefix` (`pred/<model>`, `fused`), results to the run's `eval/<name>/` (other
        settings: `dataclasses.replace`)."""
        store = open_store(run_root)
        return cls(
            gt_root, store.uri(pred_prefix), name, out_uri=store.child(eval_prefix(name)).root, run_root=run_root
        )

    @property
    def key(self) -> str:
        """The headline statistic: J&F (davis) or J&Ḟ (mosev2)."""
        return "J&F-Mean" if self.metric == "davis" else "J&Fdot-Mean"


@dataclass(frozen=True)
class EvaluateResult:
    name: str
    scores: EvalResult
    key: str
    out_uri: str | None

    def summary(self) -> str:
        label = "J&F" if self.key == "J&F-Mean" else "J&Ḟ"
        score = self.scores.scores[self.key]
        wrote = f"; wrote {self.out_uri}" if self.out_uri else ""
        return (
            f"{self.name}: {label} {'-' if score is None else f'{100 * score:.2f}'} over "
            f"{len(self.scores.videos)} videos, {self.scores.frames} frames{wrote}"
        )


def run(config: EvaluateConfig, metrics: JobMetrics | None = None) -> EvaluateResult:
    """The stage: done markers checked (in a run), every video scored, `stseg_eval_jf{method=<name>,
    metric=<statistic>}` set (J&F-Mean, J-Mean, F-Mean, or the J&Ḟ ones; in percent), results written."""
    if config.run_root is not None:
        _check_markers(config.run_root, config.pred_root)
    out = open_store(config.out_uri) if config.out_uri else None
    if metrics is None:
        metrics = config.reporting.metrics(config.run_root or config.pred_root, "evaluate", config.name)
    with metrics, _progress(config.progress) as bar:

        def done(video: VideoResult) -> None:
            metrics.frames(len(video.frames))
            metrics.video_done()
            bar()

        result = evaluate(
            config.gt_root,
            config.pred_root,
            videos=config.videos or None,
            workers=config.workers,
            metric=config.metric,
            missing_as_empty=config.missing_as_empty,
            on_video=done,
            split=config.split,
        )
        second = "F-Mean" if config.metric == "davis" else "Fdot-Mean"
        for stat in (config.key, "J-Mean", second):  # `metric` is the statistic, as fuse labels its Table 2
            value = result.scores.get(stat)
            if value is not None:
                metrics.set("stseg_eval_jf", 100 * value, method=config.name, metric=stat)
        if out is not None:
            write_results(result, out)
    return EvaluateResult(config.name, result, config.key, out.root if out is not None else None)


def _check_markers(run_root: str, pred_root: str) -> None:
    """Refuse masks of a run whose done markers name missing or changed files (those shards are invalidated)."""
    store = open_store(run_root)
    base = store.uri("").rstrip("/") + "/"
    if not pred_root.startswith(base):
        raise BadInputError(f"{pred_root} is not inside the run {run_root}")
    prefix = pred_root[len(base) :].strip("/")
    _good, bad = checked_done_shards(store, prefix)
    if bad:
        raise MissingArtifactError(describe_bad(prefix, bad))


@contextmanager
def _progress(show: bool) -> Iterator[Callable[[], None]]:
    """A callable that advances a bar of scored videos: on a terminal when `show`, else nothing."""
    from tqdm import tqdm

    with tqdm(desc="scoring", unit="video", disable=None if show else True, leave=False) as bar:
        yield lambda: bar.update(1)
