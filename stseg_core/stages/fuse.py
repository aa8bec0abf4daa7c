"""The `fuse` stage runner: PGMR over a whole run (`stseg_core.fusion.stage` does the work) under the job's
metrics. `run(FuseStageConfig, metrics) -> FuseResult` is what the fuse Job and `stseg fuse` both call."""

from __future__ import annotations

from dataclasses import dataclass, field

from stseg_core.fusion.merge import FuseReport
from stseg_core.fusion.stage import FuseConfig, run_fuse
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
        """One line: what this index fused, whether it merged the run's recommend.json (and eval/)."""
        cfg, report = self.config, self.report
        what = f"{report.fused} videos fused from {len(cfg.models)} models"
        if cfg.indexes > 1:
            what = f"index {cfg.index}/{cfg.indexes}: {what}"
            if not report.merged:
                what += "; other indexes still running, one of them merges"
        if report.table:
            what += f"; PGMR J&F {report.table['pgmr']['J&F']:.2f}"
        wrote = f"recommend.json{', eval/' if report.table else ''}" if report.merged else "its part"
        return f"{what}; wrote fused/, {wrote} under {cfg.run_root}"


def run(config: FuseStageConfig, metrics: JobMetrics | None = None) -> FuseResult:
    """The stage: `run_fuse` under the job's metrics (`metrics`, else the config's own reporter)."""
    if metrics is None:
        metrics = config.reporting.metrics(config.fuse.run_root, "fuse", "pgmr", str(config.fuse.index))
    with metrics:
        report = run_fuse(config.fuse, metrics=metrics)
    return FuseResult(config.fuse, report)
