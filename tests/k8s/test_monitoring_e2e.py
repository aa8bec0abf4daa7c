"""The monitoring stack end to end on loopback: real Debian `prometheus` and `prometheus-pushgateway`, a real
pipeline on the local backend pushing its metrics, then every expression of the Grafana dashboard and of the
PrometheusRule evaluated through Prometheus's HTTP API, each checked for the series (and values) it must give.

Prometheus scrapes the Pushgateway every second with honor_labels, as the ServiceMonitor asks. Training
metrics, a hung job and a NaN loss are pushed by JobMetrics directly, as a finetune job and a stuck job would.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stseg_core.store import open_store
from stseg_core.telemetry import JobMetrics

K8S = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
RULES = yaml.safe_load((K8S / "prometheusrule.yaml").read_text())["spec"]
DASHBOARD = json.loads((K8S / "dashboards" / "stseg.json").read_text())
PANELS = {p["title"]: [t["expr"] for t in p["targets"]] for p in DASHBOARD["panels"]}
ALERTS = {r["alert"]: r["expr"] for g in RULES["groups"] for r in g["rules"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _start(argv: list[str], ready_url: str, log: Path) -> subprocess.Popen:
    exe = shutil.which(argv[0])
    assert exe, f"{argv[0]} missing: make system-deps (Debian prometheus, prometheus-pushgateway)"
    proc = subprocess.Popen([exe, *argv[1:]], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            _get(ready_url, timeout=1)
            return proc
        except OSError:
            assert proc.poll() is None, f"{argv[0]} exited: {log.read_text()[-500:]}"
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{argv[0]} not ready after 30 s: {log.read_text()[-500:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(Pushgateway URL, Prometheus URL) on free loopback ports; Prometheus loads the PrometheusRule's groups."""
    tmp = tmp_path_factory.mktemp("prom")
    gw_port, prom_port = _free_port(), _free_port()
    gateway = f"127.0.0.1:{gw_port}"
    (tmp / "rules.yaml").write_text(yaml.safe_dump(RULES))
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "rules.yaml")],
                "scrape_configs": [
                    {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [gateway]}]}
                ],
            }
        )
    )
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: keep each run's own file
    procs = [
        _start(
            [
                "prometheus-pushgateway",
                f"--web.listen-address={gateway}",
                f"--persistence.file={tmp / 'pushgateway.data'}",
            ],
            f"http://{gateway}/-/ready",
            tmp / "pushgateway.log",
        )
    ]
    try:
        procs.append(
            _start(
                [
                    "prometheus",
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                f"http://127.0.0.1:{prom_port}/-/ready",
                tmp / "prometheus.log",
            )
        )
        yield f"http://{gateway}", f"http://127.0.0.1:{prom_port}"
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _query(prom: str, expr: str) -> dict[tuple, float]:
    """Instant query → {sorted (label, value) pairs without __name__/job/instance: value}."""
    body = json.loads(_get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    assert body["status"] == "success", body
    assert body["data"]["resultType"] == "vector", expr
    drop = ("__name__", "job", "instance")
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k not in drop)): float(r["value"][1])
        for r in body["data"]["result"]
    }


def _labels(**kw: str) -> tuple:
    return tuple(sorted(kw.items()))


def _panel(prom: str, title: str, run: str, target: int = 0) -> dict[tuple, float]:
    return _query(prom, PANELS[title][target].replace("$run", run))


def _stseg(*args: str):
    from stseg_cli.main import cli

    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def pushed(stack, tmp_path_factory):
    """Runs `good` (pipeline: infer flowprop × 2 shards, fuse, eval) and `bad` (one shard's video corrupt),
    plus directly pushed finetune/stuck/NaN jobs; returns what the checks need once Prometheus has it all."""
    from stseg_core.data.synth import SynthConfig, generate_split

    gateway, prom = stack
    tmp = tmp_path_factory.mktemp("run")
    saved = dict(os.environ)
    try:
        for var in [v for v in os.environ if v.startswith("STSEG_")]:
            del os.environ[var]
        os.environ.update(
            {
                "STSEG_STATE_DIR": str(tmp / "state"),
                "KUBECONFIG": str(tmp / "no-kubeconfig"),
                "STSEG_PUSHGATEWAY": gateway,
            }
        )
        synth = SynthConfig(seed=3, height=48, width=64, min_frames=4, max_frames=6, max_objects=2, videos=4)
        videos = generate_split(tmp / "data", synth, "valid")
        (tmp / "store").mkdir()
        where = ["--store", str(tmp / "store"), "--data-root", str(tmp / "data/valid")]
        result = _stseg(
            "submit",
            "pipeline",
            "--models",
            "flowprop",
            "--shards",
            "2",
            "--workers",
            "2",
            "--run",
            "good",
            "--deadline",
            "3600",
            *where,
        )
        assert result.exit_code == 0, result.output

        shutil.copytree(tmp / "data/valid", tmp / "bad/valid")
        broken = sorted(videos)[0]
        frame = sorted((tmp / "bad/valid/JPEGImages" / broken).iterdir())[2]
        frame.write_bytes(b"\xff\xd8 not a jpeg")
        result = _stseg(
            "submit",
            "infer",
            "--models",
            "flowprop",
            "--shards",
            "2",
            "--workers",
            "2",
            "--run",
            "bad",
            "--retries",
            "0",
            "--store",
            str(tmp / "store"),
            "--data-root",
            str(tmp / "bad/valid"),
        )
        assert result.exit_code != 0, result.output
    finally:
        os.environ.clear()
        os.environ.update(saved)
    plan = open_store(tmp / "store/runs/bad").read_json("plan.json")
    bad_shard = next(s for s, names in plan["videos"].items() if broken in names)

    now = time.time()
    with JobMetrics(run="good", stage="finetune", model="tmo", shard="0", pushgateway=gateway, deadline_s=0) as m:
        m.set("stseg_train_epoch", 3)
        m.set("stseg_train_step", 120)
        m.set("stseg_train_step_seconds", 0.5)
        m.set("stseg_train_loss", 0.42)
        m.set("stseg_train_lr", 1e-4, group="decoder")
        m.set("stseg_val_jf", 61.5, epoch="3")
        m.set("stseg_gpu_memory_bytes", 2.0**30)
    stuck = JobMetrics(run="stuck", stage="infer", model="sam2", shard="0", pushgateway=gateway, deadline_s=600)
    stuck.metric("stseg_job_status").set(0)
    stuck.metric("stseg_job_start_timestamp_seconds").set(now - 7200)
    stuck.metric("stseg_job_deadline_seconds").set(600)
    stuck.metric("stseg_last_progress_timestamp_seconds").set(now - 3600)
    stuck.push()
    nan = JobMetrics(run="nan", stage="finetune", model="sam2", shard="0", pushgateway=gateway, deadline_s=0)
    nan.metric("stseg_job_status").set(0)
    nan.set("stseg_train_loss", float("nan"))
    nan.push()

    last_push = time.time()
    deadline = last_push + 30
    while time.time() < deadline:  # the scrape after our last push has landed
        got = _query(prom, "min(timestamp(push_time_seconds)) >= bool " + str(last_push))
        if got and next(iter(got.values())) == 1:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("Prometheus did not scrape the Pushgateway within 30 s of the last push")
    return {
        "videos": videos,
        "frames": sum(v["frames"] for v in videos.values()),
        "bad_shard": bad_shard,
        "broken": broken,
        "store": tmp / "store",
        "now": now,
    }


def test_progress_eta_and_throughput_of_a_finished_run(stack, pushed) -> None:
    _, prom = stack
    done = {_labels(stage="infer", model="flowprop"): 100.0, _labels(stage="fuse", model="pgmr"): 100.0}
    assert _panel(prom, "Progress per model", "good") == done
    assert _panel(prom, "ETA", "good") == dict.fromkeys(done, 0.0)
    fps = _panel(prom, "Frames per second", "good")
    assert set(fps) >= set(done) and all(v > 0 for v in fps.values())
    frames = _query(prom, 'sum by (stage, model) (stseg_frames_processed_total{run="good",stage="infer"})')
    assert frames == {_labels(stage="infer", model="flowprop"): pushed["frames"]}  # = frames in the data


def test_shards_and_failures(stack, pushed) -> None:
    _, prom = stack
    succeeded = _panel(prom, "Shards", "good", 0)
    assert succeeded[_labels(stage="infer", model="flowprop")] == 2
    assert succeeded[_labels(stage="fuse", model="pgmr")] == 2  # one fuse index per plan shard
    assert _labels(stage="finetune", model="tmo") in succeeded
    assert _panel(prom, "Shards", "good", 1) == {} and _panel(prom, "Shards", "good", 2) == {}
    assert _panel(prom, "Failures", "good") == {}
    assert _panel(prom, "Shards", "bad", 0) == {_labels(stage="infer", model="flowprop"): 1}
    assert _panel(prom, "Shards", "bad", 2) == {_labels(stage="infer", model="flowprop"): 1}
    assert _panel(prom, "Failures", "bad") == {_labels(stage="infer", model="flowprop", reason="bad_input"): 1}
    progress = _panel(prom, "Progress per model", "bad")[_labels(stage="infer", model="flowprop")]
    assert 0 < progress < 100


def test_gpu_memory_and_training_curves(stack, pushed) -> None:
    _, prom = stack
    assert _panel(prom, "Peak GPU memory", "good") == {_labels(stage="finetune", model="tmo"): 2.0**30}
    key = {"run": "good", "stage": "finetune", "model": "tmo", "shard": "0"}
    assert _panel(prom, "Training loss", "good") == {_labels(**key): 0.42}
    assert _panel(prom, "Learning rate", "good") == {_labels(**key, group="decoder"): 1e-4}
    assert _panel(prom, "Training progress", "good", 0) == {_labels(**key): 3}
    assert _panel(prom, "Training progress", "good", 1) == {_labels(**key): 120}
    assert _panel(prom, "Training progress", "good", 2) == {_labels(**key): 0.5}
    assert _panel(prom, "Validation J&F per checkpoint", "good") == {_labels(model="tmo", epoch="3"): 61.5}


def test_jf_table_equals_the_eval_results(stack, pushed) -> None:
    _, prom = stack
    table = _panel(prom, "J&F by method", "good")
    run = open_store(pushed["store"] / "runs/good")
    # eval jobs score flowprop and the fused masks; the fuse job (ground truth known) adds its Table 2 rows
    assert {dict(k)["method"] for k in table} == {"flowprop", "pgmr", "pgmr-fused", "bbox-average", "bbox-max"}
    for key, value in table.items():  # metric = the statistic of eval/<method>/results.json
        labels = dict(key)
        assert labels["metric"] in ("J&F-Mean", "J-Mean", "F-Mean")
        jf = 100 * run.read_json(f"eval/{labels['method']}/results.json")["global"][labels["metric"]]
        assert math.isclose(value, jf, rel_tol=1e-9, abs_tol=1e-3), (labels, value, jf)


def test_every_dashboard_expression_was_checked() -> None:
    # the tests above name every panel; a new panel must get its own check
    assert set(PANELS) == {
        "Progress per model",
        "Shards",
        "ETA",
        "Frames per second",
        "Failures",
        "Peak GPU memory",
        "Training loss",
        "Learning rate",
        "Training progress",
        "Validation J&F per checkpoint",
        "J&F by method",
    }


def test_each_alert_expression_selects_exactly_the_jobs_in_trouble(stack, pushed) -> None:
    _, prom = stack
    assert _query(prom, ALERTS["StsegShardFailed"]) == {
        _labels(run="bad", stage="infer", model="flowprop", shard=pushed["bad_shard"]): 2
    }
    stalled = _query(prom, ALERTS["StsegProgressStalled"])
    assert list(stalled) == [_labels(run="stuck", stage="infer", model="sam2", shard="0")]
    assert 3600 <= next(iter(stalled.values())) < 3700
    assert list(_query(prom, ALERTS["StsegTrainingLossNaN"])) == [
        _labels(run="nan", stage="finetune", model="sam2", shard="0")
    ]
    late = _query(prom, ALERTS["StsegStagePastDeadline"])
    assert list(late) == [_labels(run="stuck", stage="infer", model="sam2")]
    assert 6600 <= next(iter(late.values())) < 6700
    # the finished pipeline's jobs carried `--deadline` in their job environment, and do not alert
    assert set(_query(prom, 'stseg_job_deadline_seconds{run="good",stage="infer"}').values()) == {3600}


def test_prometheus_loaded_the_rules_and_fires_them(stack, pushed) -> None:
    _, prom = stack
    rules = json.loads(_get(f"{prom}/api/v1/rules"))["data"]["groups"]
    assert {r["name"]: r["health"] for g in rules for r in g["rules"]} == dict.fromkeys(ALERTS, "ok")
    deadline = time.time() + 10
    while time.time() < deadline:
        firing = {
            a["labels"]["alertname"]
            for a in json.loads(_get(f"{prom}/api/v1/alerts"))["data"]["alerts"]
            if a["state"] == "firing"
        }
        if firing == set(ALERTS):
            break
        time.sleep(0.5)
    assert firing == set(ALERTS)
