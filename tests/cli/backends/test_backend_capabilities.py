"""The CLI decides by what a backend declares (`Capabilities`), never by its name."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from stseg_cli.backends import base
from stseg_cli.backends.base import Capabilities
from stseg_cli.backends.local import LocalBackend
from stseg_cli.main import cli


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


def test_the_two_backends_declare_what_the_cli_asks() -> None:
    from stseg_cli.backends.kubernetes import KubernetesBackend

    assert LocalBackend.capabilities == Capabilities(
        gpus=False, kueue=False, node_pools=False, local_files=True, waits_by_default=True, resume=True
    )
    kube = KubernetesBackend.capabilities
    assert (kube.gpus, kube.local_files, kube.waits_by_default, kube.resume) == (True, False, False, False)
