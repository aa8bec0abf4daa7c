"""The CLI decides by what a backend declares (`Capabilities`), never by its name."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from stseg_cli.backends import base
from stseg_cli.backends.local import LocalBackend
from stseg_cli.config import Config
from stseg_cli.main import cli
from stseg_cli.spec import StageRequest, build_specs
from stseg_core.errors import BadInputError


class _Remote(LocalBackend):
    """A local backend that says its shards cannot see this machine's files and that it has no resume."""

    name = "remote-ish"
    capabilities = replace(LocalBackend.capabilities, local_files=False, resume=False)


@pytest.fixture()
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in [v for v in os.environ if v.startswith("STSEG_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("STSEG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(base, "get_backend", lambda name, cfg, **kw: _Remote(cfg, **kw))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_backend_without_local_files_refuses_local_paths(remote: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "submit",
            "infer",
            "--models",
            "flowprop",
            "--store",
            str(remote),
            "--data-root",
            "s3://b/valid",
            "--run",
            "r1",
        ],
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"stseg: error: --store {remote}: the remote-ish backend needs a location pods "
        "can reach (s3://bucket/prefix), not a local path"
    )


def test_resume_is_refused_by_a_backend_that_does_not_declare_it(remote: Path) -> None:
    result = CliRunner().invoke(cli, ["resume", "r1"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "stseg: error: the remote-ish backend keeps no run to resume: submit the same command again with --resume"
    )


def test_the_local_backend_refuses_gpus_kueue_and_node_pools_that_kubernetes_renders(tmp_path: Path) -> None:
    from stseg_cli.backends.kubernetes import KubernetesBackend

    cfg = Config(store="s3://bucket/stseg", data_root="s3://bucket/mose/valid", state_dir=str(tmp_path))
    (spec,) = build_specs(cfg, "r1", StageRequest("infer", models=("sam2",), gpus=1), default_gpus=True)
    with pytest.raises(BadInputError, match=r"stseg-r1-infer-sam2: the local backend has no GPUs \(asked for 1\)"):
        LocalBackend(cfg).check([spec])
    cpu_only = replace(spec, resources=replace(spec.resources, gpus=0))
    for setting, refusal in (("kueue_queue", "does not queue through Kueue"), ("node_pool", "has no node pools")):
        with pytest.raises(BadInputError, match=f"the local backend {refusal}"):
            LocalBackend(replace(cfg, **{setting: "gke"})).check([cpu_only])
    (job,) = KubernetesBackend(replace(cfg, kueue_queue="gke", node_pool="gke")).render([spec])
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
