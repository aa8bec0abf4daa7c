"""`stseg verify RUN_ROOT`: every done shard's files re-read (size and sha256); a bad shard is marked not done."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_core.runlayout import commit_shard, done_shards
from stseg_core.store import open_store


def test_verify_names_a_changed_file_and_marks_its_shard_not_done(tmp_path: Path) -> None:
    store = open_store(tmp_path / "run")
    for shard, video in enumerate(("a", "b")):
        keys = [f"pred/m/{video}/{t:05d}.png" for t in range(3)]
        for key in keys:
            store.write_bytes(key, f"{key}-data".encode())
        commit_shard(store, "pred/m", shard, keys)
    store.write_bytes("fused/a/00000.png", b"fused")
    commit_shard(store, "fused", 0, ["fused/a/00000.png"])
    ok = CliRunner().invoke(cli, ["verify", str(tmp_path / "run")])
    assert ok.exit_code == 0 and ok.output == "fused: 1 shard(s) ok\npred/m: 2 shard(s) ok\n"
    store.write_bytes("pred/m/b/00001.png", b"pred/m/b/00001.png-DATA")  # same size, other bytes
    bad = CliRunner().invoke(cli, ["verify", str(tmp_path / "run")])
    assert bad.exit_code == 3
    assert bad.output == (
        "fused: 1 shard(s) ok\npred/m: 1 shard(s) ok, 1 bad (marked not done)\n"
        f"    shard 1: {store.uri('pred/m/b/00001.png')}: sha256 differs from the marker\n"
    )
    assert done_shards(store, "pred/m") == ["0"]
