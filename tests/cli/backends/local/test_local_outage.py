"""A store outage during a local pipeline: the real local S3 server behind the fault proxy, the real stages.

The outage starts the moment the infer shard's done marker is written (while fuse and eval wait on markers, which
the supervisor polls) and drops every connection for a few seconds. The supervisor's own store
checks are configured to give up after 1 s (`STSEG_S3_DEADLINE_S=1`), so it is the supervisor's ride-out that is
tested, not the store's retries; the shards get 30 s (`--option s3_deadline_s=30`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import boto3
import pytest

OUTAGE_S = 4.0


@pytest.fixture()
def pipeline_env(tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch):
    from stseg_core.data.synth import SynthConfig, generate_split

    for var in [v for v in os.environ if v.startswith("STSEG_") and v != "STSEG_S3_ENDPOINT"]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("STSEG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    generate_split(
        tmp_path / "data",
        SynthConfig(seed=5, height=48, width=64, min_frames=4, max_frames=5, max_objects=2, videos=2),
        "valid",
    )
    return tmp_path, s3_bucket


class Outage:
    """A fault-proxy policy: pass until the first done marker is written, then reset every request for
    `seconds`; `started`/`ended` say when."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self.resets = 0

    def __call__(self, req) -> str:
        if self.started is None:
            if req.method == "PUT" and "/pred/flowprop/_done/" in req.path:
                self.started = time.monotonic()
            return "pass"
        if time.monotonic() - self.started < self.seconds:
            self.resets += 1
            return "reset"
        return "pass"


def _stseg(*args: str):
    from click.testing import CliRunner

    from stseg_cli.main import cli

    return CliRunner().invoke(cli, list(args))


def _pipeline(bucket: str, run: str, *extra: str):
    return _stseg(
        "submit",
        "pipeline",
        "--models",
        "flowprop",
        "--shards",
        "1",
        "--workers",
        "3",
        "--store",
        f"s3://{bucket}/store",
        "--data-root",
        "data/valid",
        "--run",
        run,
        "--option",
        "s3_deadline_s=30",
        *extra,
    )


def _outputs(server: str, bucket: str, run: str) -> dict[str, bytes]:
    """Every object of a run, less the fields that name the run or the clock: eval's `pred_root` and `seconds`,
    the done markers' `created`; and eval's `split`, which differs by whichever of the fuse job ("valid") and the
    eval job ("valid_gt") writes `eval/<model>/results.json` last (a race of its own, outage or not)."""
    client = boto3.client("s3", endpoint_url=server)
    prefix = f"store/runs/{run}/"
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            data = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            volatile = {"results.json": ("pred_root", "seconds", "split"), "_done": ("created",)}
            for part, fields in volatile.items():
                if part in obj["Key"]:
                    doc = json.loads(data)
                    data = json.dumps({k: v for k, v in doc.items() if k not in fields}, sort_keys=True).encode()
            out[obj["Key"][len(prefix) :]] = data
    return out


def _through_outage(monkeypatch, fault_proxy, outage: Outage) -> None:
    proxy = fault_proxy(outage)
    monkeypatch.setenv("STSEG_S3_ENDPOINT", proxy.url)
    monkeypatch.setenv("STSEG_S3_DEADLINE_S", "1")


def test_a_store_outage_is_ridden_out_or_stops_past_its_limit_then_resumes(
    pipeline_env, s3_server, fault_proxy, monkeypatch
) -> None:
    _, bucket = pipeline_env
    clean = _pipeline(bucket, "clean")
    assert clean.exit_code == 0, clean.output
    expected = _outputs(s3_server, bucket, "clean")
    assert len(expected) > 20

    # 1. within the limit: ridden out, every shard keeps running, the run completes byte-identical
    outage = Outage(OUTAGE_S)
    _through_outage(monkeypatch, fault_proxy, outage)
    monkeypatch.setenv("STSEG_LOCAL_OUTAGE_S", "60")
    result = _pipeline(bucket, "out")
    assert result.exit_code == 0, result.output
    assert outage.started is not None and outage.resets > 0
    assert "stseg local: store unreachable, shards keep running; retrying for up to 60 s" in result.stderr
    assert "stseg local: store reachable again after" in result.stderr
    assert _outputs(s3_server, bucket, "out") == expected

    # 2. past the limit: the run stops with its reason, `status` shows it and the command that goes on
    outage = Outage(OUTAGE_S)
    _through_outage(monkeypatch, fault_proxy, outage)
    monkeypatch.setenv("STSEG_LOCAL_OUTAGE_S", "1")
    result = _pipeline(bucket, "out2")
    assert result.exit_code == 4, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("stseg: error: run out2 stopped: store unreachable for ")
    assert "(STSEG_LOCAL_OUTAGE_S=1): " in line and line.endswith("; resume: stseg resume out2")
    while time.monotonic() - outage.started < OUTAGE_S:  # the store comes back
        time.sleep(0.1)
    status = _stseg("status", "out2")
    head = status.output.splitlines()[0]
    assert head.startswith("run out2  stopped: store unreachable for ") and head.endswith("; resume: stseg resume out2")
    resumed = _stseg("resume", "out2")
    assert resumed.exit_code == 0, resumed.output
    assert _outputs(s3_server, bucket, "out2") == expected
    assert _stseg("status", "out2").output.splitlines()[0] == "run out2"
