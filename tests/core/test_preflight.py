"""Checks before a Job starts: every input URI a stage names exists, on file and S3 stores; an unreachable store
is noted, not failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.preflight import Preflight, require_recipe, require_weights


def _split(root: Path, folders=("Annotations", "JPEGImages")) -> Path:
    for folder in folders:
        (root / folder / "v0").mkdir(parents=True)
        (root / folder / "v0" / "00000.png").write_bytes(b"x")
    return root


def test_file_store_layout_checkpoint_and_database(tmp_path: Path) -> None:
    pre = Preflight()
    pre.require_data_root(str(_split(tmp_path / "valid")))
    with pytest.raises(MissingArtifactError, match=r"data root .*/half: no JPEGImages/ under it"):
        pre.require_data_root(str(_split(tmp_path / "half", ("Annotations",))))
    pre.require_data_root(str(tmp_path / "half"), "ground truth", folders=("Annotations",))
    (tmp_path / "w.pt").write_bytes(b"w")
    pre.require_file(f"file://{tmp_path}/w.pt", "sam2 checkpoint")
    with pytest.raises(MissingArtifactError, match=r"^sam2 checkpoint .*/nope\.pt: not found$"):
        pre.require_file(str(tmp_path / "nope.pt"), "sam2 checkpoint")
    (tmp_path / "db").mkdir()
    with pytest.raises(MissingArtifactError, match=r"performance database .*/db: no 'latest' file"):
        pre.require_perfdb(str(tmp_path / "db"))
    (tmp_path / "db" / "latest").write_text("v0001.json\n")
    pre.require_perfdb(str(tmp_path / "db"))
    assert pre.notes == []


def test_weights_and_recipe(tmp_path: Path) -> None:
    pre = Preflight()
    with pytest.raises(BadInputError, match="model sam2 needs weights: give --checkpoints sam2=URI"):
        require_weights("sam2", {}, pre)
    require_weights("tmo", {}, pre)  # random weights are allowed (smoke runs)
    with pytest.raises(MissingArtifactError, match=r"tmo checkpoint .*missing\.pt: not found"):
        require_weights("tmo", {"checkpoint": str(tmp_path / "missing.pt")}, pre)
    with pytest.raises(BadInputError, match="tmo finetune: no init given"):
        require_recipe("tmo", {}, pre)
    with pytest.raises(BadInputError, match="tmo finetune: unknown option"):
        require_recipe("tmo", {"init": "random", "epoch": "2"}, pre)
    with pytest.raises(MissingArtifactError, match=r"tmo finetune init .*init\.pt: not found"):
        require_recipe("tmo", {"init": str(tmp_path / "init.pt")}, pre)
    require_recipe("tmo", {"init": "random", "epochs": "2"}, pre)


def test_s3_store_is_asked_with_one_key(s3_store) -> None:
    pre = Preflight()
    s3_store.write_bytes("valid/Annotations/v0/00000.png", b"x")
    s3_store.write_bytes("valid/JPEGImages/v0/00000.jpg", b"x")
    s3_store.write_bytes("w/sam2.pt", b"w")
    pre.require_data_root(s3_store.uri("valid"))
    pre.require_file(s3_store.uri("w/sam2.pt"), "sam2 checkpoint")
    with pytest.raises(MissingArtifactError, match="no Annotations/"):
        pre.require_data_root(s3_store.uri("w"))
    with pytest.raises(MissingArtifactError, match=r"checkpoint s3://.*/w/other.pt: not found"):
        pre.require_file(s3_store.uri("w/other.pt"), "sam2 checkpoint")
    assert pre.notes == []


def test_an_unreachable_store_is_noted_once_not_failed(s3_bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("STSEG_S3_ENDPOINT", f"http://127.0.0.1:{port}")
    pre = Preflight()
    pre.require_data_root(f"s3://{s3_bucket}/valid")
    pre.require_file(f"s3://{s3_bucket}/w/sam2.pt", "sam2 checkpoint")
    assert len(pre.notes) == 1 and pre.notes[0].startswith(f"not checked from this machine: data root s3://{s3_bucket}")
