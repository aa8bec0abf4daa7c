"""Every Job manifest the CLI can produce validates strictly against current Kubernetes; dry-run output is golden.

Golden files under tests/cli/backends/golden/ are rewritten only with STSEG_REGEN_GOLDEN=1 (then review the diff).
"""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from kubernetes_validate import utils as kv_utils

from stseg_cli.backends.k8s_manifest import NODE_POOLS
from stseg_cli.backends.kubernetes import KubernetesBackend
from stseg_cli.config import Config
from stseg_cli.job_stages import stages
from stseg_cli.main import cli
from stseg_cli.spec import StageRequest, build_specs, pipeline_specs
from stseg_core.models import registry

GOLDEN = Path(__file__).parent / "golden"
# backoffLimitPerIndex and the FailIndex action are GA from 1.33: the oldest minor these Jobs need.
VERSIONS = sorted(
    {
        kv_utils.major_minor(v)
        for v in kv_utils.all_versions()
        if tuple(map(int, kv_utils.major_minor(v).split("."))) >= (1, 33)
    },
    key=lambda v: tuple(map(int, v.split("."))),
)


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas():
    """kubernetes-validate re-reads its multi-megabyte schema files on every call; read each once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kv_utils, "schema_contents", functools.lru_cache(maxsize=None)(kv_utils.schema_contents))
        yield


def _manifests(node_pool: str, kueue: str, secret: str) -> list[dict]:
    """Every Job a run can hold under one configuration: finetune (1 and 8 GPUs), infer per model, fuse, eval."""
    cfg = Config(
        store="s3://bucket/stseg",
        data_root="s3://bucket/mose/valid",
        node_pool=node_pool,
        kueue_queue=kueue,
        s3_secret=secret,
    )
    specs = pipeline_specs(
        cfg, "r1", StageRequest("infer", models=tuple(registry.available()), shards=16), default_gpus=True
    )
    for model, gpus in (("sam2", 8), ("tmo", 1)):
        specs += build_specs(cfg, "r1", StageRequest("finetune", models=(model,), gpus=gpus), default_gpus=True)
    assert {s.stage for s in specs} == set(stages())
    return KubernetesBackend(cfg).render(specs)


CONFIGS = list(itertools.product(NODE_POOLS, ("", "a100-queue"), ("", "stseg-s3")))


@pytest.mark.parametrize(("node_pool", "kueue", "secret"), CONFIGS)
def test_every_manifest_validates_on_the_newest_release(node_pool: str, kueue: str, secret: str) -> None:
    for doc in _manifests(node_pool, kueue, secret):
        assert kubernetes_validate.validate(doc, VERSIONS[-1], strict=True) == VERSIONS[-1]


@pytest.mark.parametrize("version", VERSIONS)
def test_each_stage_model_preset_and_queue_validates_on_every_current_release(version: str) -> None:
    # each model and stage under one preset, plus one pipeline per preset with Kueue on and off
    docs = _manifests("gke", "a100-queue", "stseg-s3")
    for node_pool, kueue in itertools.product(NODE_POOLS, ("", "q")):
        docs += _manifests(node_pool, kueue, "")[:1]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_the_full_cross_product_validates_on_every_current_release(version: str) -> None:
    for config in CONFIGS:
        for doc in _manifests(*config):
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_misspelled_field_is_caught() -> None:
    doc = _manifests("gke", "", "")[0]
    doc["spec"]["backoffLimitPerIndx"] = 1
    with pytest.raises(kubernetes_validate.ValidationError, match="backoffLimitPerIndx"):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


_WEIGHTS = "s3://bucket/weights"
GOLDEN_CASES = {
    "pipeline-gke": [
        "submit",
        "pipeline",
        "--models",
        "sam2,flowprop",
        "--shards",
        "4",
        "--node-pool",
        "gke",
        "--s3-secret",
        "stseg-s3",
        "--data-root",
        "s3://bucket/mose/valid",
        "--checkpoints",
        f"sam2={_WEIGHTS}/sam2.1_hiera_large.pt",
    ],
    "finetune-eks-kueue-8gpu": [
        "submit",
        "finetune",
        "--model",
        "sam2",
        "--gpus",
        "8",
        "--node-pool",
        "eks",
        "--kueue-queue",
        "a100-queue",
        "--data-root",
        "s3://bucket/mose/train",
        "--option",
        "epochs=40",
        "--option",
        f"init={_WEIGHTS}/sam2.1_hiera_large.pt",
    ],
    "infer-gfd": [
        "submit",
        "infer",
        "--models",
        "cutie",
        "--shards",
        "64",
        "--parallelism",
        "16",
        "--node-pool",
        "gfd",
        "--retries",
        "1",
        "--data-root",
        "s3://bucket/mose/valid",
        "--checkpoints",
        f"cutie={_WEIGHTS}/cutie-base-mega.pth",
    ],
}


def _dry_run(args: list[str], monkeypatch: pytest.MonkeyPatch):
    """`stseg … --dry-run` on Kubernetes with a bucket this machine has no credentials for."""
    for var in [v for v in os.environ if v.startswith(("STSEG_", "AWS_")) and v != "STSEG_REGEN_GOLDEN"]:
        monkeypatch.delenv(var)
    args = [
        *args,
        "--backend",
        "kubernetes",
        "--run",
        "golden",
        "--store",
        "s3://bucket/stseg",
        "--image-tag",
        "0.1.0",
        "--dry-run",
        "-o",
        "yaml",
    ]
    # no credentials anywhere (files, instance metadata): the store is unreachable in milliseconds
    return CliRunner().invoke(
        cli,
        args,
        env={
            "STSEG_CONFIG": "",
            "STSEG_NAMESPACE": "stseg",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_dry_run_prints_the_golden_manifests(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _dry_run(GOLDEN_CASES[case], monkeypatch)
    assert result.exit_code == 0, result.output
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("STSEG_REGEN_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(result.stdout)
    assert result.stdout == path.read_text(), f"{path} differs (STSEG_REGEN_GOLDEN=1 rewrites it)"
    for doc in yaml.safe_load_all(result.stdout):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
    # the bucket cannot be reached from here: the submit says what it did not check, once per store
    assert result.stderr.count("stseg: note: not checked from this machine") == 1, result.stderr
    assert "no AWS credentials" in result.stderr


def test_a_finetune_without_init_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    args = [a for a in GOLDEN_CASES["finetune-eks-kueue-8gpu"] if not a.startswith("init=")]
    result = _dry_run(args[:-1], monkeypatch)  # drop the dangling --option
    assert result.exit_code == 2
    assert result.output == (
        "stseg: error: sam2 finetune: no init given (--option init=…; init is a checkpoint "
        "URI, or 'random' for smoke tests)\n"
    )


def test_an_infer_job_without_weights_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _dry_run(["submit", "infer", "--models", "cutie", "--data-root", "s3://bucket/mose/valid"], monkeypatch)
    assert result.exit_code == 2
    assert result.output == (
        "stseg: error: model cutie needs weights: give --checkpoints cutie=URI (or checkpoint in STSEG_MODEL_OPTIONS)\n"
    )
