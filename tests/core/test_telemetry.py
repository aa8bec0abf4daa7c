"""JobMetrics: values read back, failure recorded on exit, and the deadline it is given (never the environment's)."""

from __future__ import annotations

import pytest

from stseg_core.errors import BadInputError
from stseg_core.telemetry import STATUS_FAILED, STATUS_SUCCEEDED, JobMetrics


def test_counts_and_success(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STSEG_DEADLINE_S", "3600")  # the job parses it into its config; the library never reads it
    with JobMetrics(run="r", stage="infer", model="flowprop", shard="0") as m:
        m.planned(10)
        m.frames(4)
        m.frames()
        m.video_done()
    assert m.value("stseg_frames_processed_total") == 5 and m.value("stseg_frames_planned") == 10
    assert m.value("stseg_job_status") == STATUS_SUCCEEDED
    assert m.value("stseg_job_deadline_seconds") == 0  # no deadline known: no sample


def test_a_failing_job_records_its_reason() -> None:
    with pytest.raises(BadInputError), JobMetrics(run="r", stage="fuse", deadline_s=60) as m:
        raise BadInputError("x")
    assert m.value("stseg_job_status") == STATUS_FAILED
    assert m.value("stseg_failures_total", reason="bad_input") == 1
    assert m.value("stseg_job_deadline_seconds") == 60
