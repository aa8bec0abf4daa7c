"""The `fuse` stage runner: PGMR over a whole run (`stseg_core.fusion.stage` does the work) under the job's
metrics. `run(FuseStageConfig, metrics) -> FuseResult` is what the fuse Job and `stseg fuse` both call."""

from __future__ import annotations

from dataclasses import dataclass, field

from stseg_core.fusion.stage import FuseConfig, FuseReport, run_fuse
from stseg_core.stages.common import Reporting
from stseg_core.telemetry import JobMetrics


@dataclass(frozen=True)
class FuseStageConfig:
    """The fusion's own settings (`FuseConfig`) and where its metrics go."""

    fuse: FuseConfig
    reporting: Reporting = field(default_factory=Reporting)


@dataclass(frozen=True)
class FuseResult:
    config: FuseConfig
    report: FuseReport

    def summary(self) -> str:
        what = f"{len(self.report.videos)} videos fused from {len(self.config.models)} models"
        if self.report.table:
            what += f"; PGMR J&F {self.report.table['pgmr']['J&F']:.2f}"
        return (
            f"{what}; wrote fused/, recommend.json{', eval/' if self.report.table else ''} under {self.config.run_root}"
        )


def run(config: FuseStageConfig, metrics: JobMetrics | None = None) -> FuseResult:
    """The stage: `run_fuse` under the job's metrics (`metrics`, else the config's own reporter)."""
    if metrics is None:
        metrics = config.reporting.metrics(config.fuse.run_root, "fuse", "pgmr")
    with metrics:
        report = run_fuse(config.fuse, metrics=metrics)
    return FuseResult(config.fuse, report)
