"""`make scan`: checkov finds nothing in the rendered k8s/ trees or in the Jobs the CLI renders, and every
skip is an annotation next to its object with a reason. The first run builds checkov's own venv (.venv-scan)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_checkov_skip_in_k8s_gives_its_reason() -> None:
    skips = [
        (p, m)
        for p in (ROOT / "k8s").rglob("*.yaml")
        for m in re.findall(r"checkov\.io/skip\d+: (\S.*)$", p.read_text(), re.M)
    ]
    assert skips, "the Pushgateway's tag/pull-policy skips are expected"
    for path, skip in skips:
        check, _, reason = skip.partition("=")
        assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason.split()) >= 5, f"{path}: {skip}"


def test_make_scan_passes(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is needed to run the scan")
    out = subprocess.run(
        ["make", "-s", "scan", f"SCAN_OUT={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=540
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    counts = re.findall(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", out.stdout)
    assert len(counts) == 2  # the k8s/ trees, then the CLI's Jobs
    (k8s_pass, k8s_fail, k8s_skip), (jobs_pass, jobs_fail, _) = counts
    assert int(k8s_pass) > 100 and int(jobs_pass) > 100 and k8s_fail == jobs_fail == "0"
    assert int(k8s_skip) == 6  # the Pushgateway's two annotated skips, in monitoring and both cloud overlays
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["base.yaml", "finetune.yaml", "pipeline.yaml"]
