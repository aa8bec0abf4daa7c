"""Every Prometheus metric stseg exports, named in one place, and the per-job reporter that pushes them.

Batch pods do not live long enough to be scraped, so a job pushes its registry to a Pushgateway under the
grouping key (run, stage, model, shard) on a timer and once more at exit — also when it fails. Without a
Pushgateway the metrics still accumulate in memory (tests and the local backend read them back).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

LABELS = ("run", "stage", "model", "shard")

# name → (type, help, extra label names). Grafana's dashboard and the PrometheusRule use exactly these names.
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "stseg_frames_processed_total": ("counter", "Frames segmented (or scored) by this job.", ()),
    "stseg_frames_planned": ("gauge", "Frames this job has to process in all (for progress and ETA).", ()),
    "stseg_videos_processed_total": ("counter", "Videos finished by this job.", ()),
    "stseg_failures_total": (
        "counter",
        "Failures by reason (bad_input, missing_artifact, backend, error).",
        ("reason",),
    ),
    "stseg_job_start_timestamp_seconds": ("gauge", "Unix time the job started.", ()),
    "stseg_last_progress_timestamp_seconds": ("gauge", "Unix time of the last processed frame or step.", ()),
    "stseg_job_duration_seconds": ("gauge", "Wall time of the job so far (final value at exit).", ()),
    "stseg_job_status": ("gauge", "0 running, 1 succeeded, 2 failed.", ()),
    "stseg_job_deadline_seconds": ("gauge", "Seconds the job's stage may run (Kubernetes activeDeadlineSeconds).", ()),
    "stseg_gpu_memory_bytes": ("gauge", "Peak GPU memory allocated by this process.", ()),
    "stseg_train_loss": ("gauge", "Training loss of the last step.", ()),
    "stseg_train_lr": ("gauge", "Learning rate by parameter group.", ("group",)),
    "stseg_train_epoch": ("gauge", "Current epoch.", ()),
    "stseg_train_step": ("gauge", "Optimizer steps taken.", ()),
    "stseg_train_step_seconds": ("gauge", "Wall time of the last training step.", ()),
    "stseg_val_jf": ("gauge", "Validation J&F (0–100) of a saved checkpoint.", ("epoch",)),
    "stseg_eval_jf": (
        "gauge",
        "J&F (0–100) of a method (a model, a baseline or PGMR) on a split.",
        ("method", "metric"),
    ),
}

STATUS_RUNNING, STATUS_SUCCEEDED, STATUS_FAILED = 0, 1, 2


@dataclass
class JobMetrics:
    """Metrics of one job (one shard of one stage of one model), optionally pushed to a Pushgateway.

    Use as a context manager: entering starts the periodic push, leaving records success or failure and
    pushes a final time.
    """

    run: str
    stage: str
    model: str = ""
    shard: str = ""
    pushgateway: str | None = None
    push_interval_s: float = 15.0
    deadline_s: float | None = None
    """The stage's deadline for the past-deadline alert (the job passes its config's); None = no deadline."""
    _metrics: dict[str, Any] = field(default_factory=dict, init=False, repr=False)  # Counter | Gauge | Histogram

    def __post_init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        kinds = {"counter": Counter, "gauge": Gauge}
        for name, (kind, doc, extra) in METRICS.items():
            # prometheus_client appends _total to counters itself.
            base = name[: -len("_total")] if kind == "counter" else name
            self._metrics[name] = kinds[kind](base, doc, (*LABELS, *extra), registry=self.registry)
        self._labels = {"run": self.run, "stage": self.stage, "model": self.model, "shard": self.shard}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.time()

    def metric(self, name: str, **extra: str) -> Any:
        """The labelled child of a metric named in METRICS."""
        return self._metrics[name].labels(**self._labels, **extra)

    # -- the calls stages make -------------------------------------------------------------------
    def planned(self, frames: int) -> None:
        self.metric("stseg_frames_planned").set(frames)

    def frames(self, n: int = 1) -> None:
        self.metric("stseg_frames_processed_total").inc(n)
        self.metric("stseg_last_progress_timestamp_seconds").set(time.time())

    def video_done(self) -> None:
        self.metric("stseg_videos_processed_total").inc()

    def failure(self, reason: str) -> None:
        self.metric("stseg_failures_total", reason=reason).inc()

    def set(self, name: str, value: float, **extra: str) -> None:
        self.metric(name, **extra).set(value)
        if name.startswith("stseg_train_"):
            self.metric("stseg_last_progress_timestamp_seconds").set(time.time())

    def gpu_memory(self) -> None:
        """Record the process's peak CUDA memory, when torch and a GPU are present."""
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            self.set("stseg_gpu_memory_bytes", float(torch.cuda.max_memory_allocated()))

    # -- pushing ---------------------------------------------------------------------------------
    def push(self) -> None:
        if not self.pushgateway:
            return
        from prometheus_client import push_to_gateway

        self.metric("stseg_job_duration_seconds").set(time.time() - self._t0)
        try:
            push_to_gateway(
                self.pushgateway,
                job="stseg",
                registry=self.registry,
                grouping_key={k: v or "none" for k, v in self._labels.items()},
                timeout=10,
            )
        except OSError:
            pass  # metrics are best-effort: an unreachable Pushgateway must never fail the job

    def _loop(self) -> None:
        while not self._stop.wait(self.push_interval_s):
            self.push()

    def __enter__(self) -> JobMetrics:
        self.metric("stseg_job_start_timestamp_seconds").set(self._t0)
        self.metric("stseg_last_progress_timestamp_seconds").set(self._t0)
        self.metric("stseg_job_status").set(STATUS_RUNNING)
        if self.deadline_s:
            self.metric("stseg_job_deadline_seconds").set(self.deadline_s)
        if self.pushgateway:
            self.push()
            self._thread = threading.Thread(target=self._loop, name="stseg-metrics-push", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if exc is not None:
            from stseg_core.errors import BackendError, BadInputError, MissingArtifactError

            reasons: dict[type[BaseException], str] = {
                BadInputError: "bad_input",
                MissingArtifactError: "missing_artifact",
                BackendError: "backend",
            }
            self.failure(reasons.get(type(exc), "error"))
        self.metric("stseg_job_status").set(STATUS_FAILED if exc is not None else STATUS_SUCCEEDED)
        self.metric("stseg_job_duration_seconds").set(time.time() - self._t0)
        self.push()

    def value(self, name: str, **extra: str) -> float:
        """Current value of a metric (what a scrape would read); for tests and local summaries."""
        got = self.registry.get_sample_value(name, {**self._labels, **extra})
        return 0.0 if got is None else got
