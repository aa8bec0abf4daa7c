"""What every stage's config carries besides its own settings: where its metrics go and its deadline."""

from __future__ import annotations

from dataclasses import dataclass

from stseg_core.names import run_id_of
from stseg_core.telemetry import JobMetrics


@dataclass(frozen=True)
class Reporting:
    """A stage's metrics: pushed to `pushgateway` (None: kept in memory, as locally), with `deadline_s` (the
    stage's `--deadline`, which the past-deadline alert compares with; None: no deadline)."""

    pushgateway: str | None = None
    deadline_s: float | None = None

    def metrics(self, run_root: str, stage: str, model: str = "", shard: str = "") -> JobMetrics:
        """A fresh reporter labelled (run, stage, model, shard), to be entered by the stage."""
        return JobMetrics(
            run=run_id_of(run_root),
            stage=stage,
            model=model,
            shard=shard,
            pushgateway=self.pushgateway,
            deadline_s=self.deadline_s,
        )
