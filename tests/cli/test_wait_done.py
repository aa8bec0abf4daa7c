"""`stseg wait-done` (the init step of fuse and eval Jobs) costs one listing per awaited prefix per poll.

Every fuse index waits for every model's infer shards; a probe per missing marker would cost indexes × models ×
shards requests per poll while inference runs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from click.testing import CliRunner

import stseg_cli.run_cmds as run_cmds
from stseg_cli.main import cli
from stseg_core.runlayout import commit_shard
from stseg_core.store import open_store

SHARDS = 16
PREFIXES = ("pred/flowprop", "pred/oneshot", "pred/stm")


def _wait(root: Path, *extra: str):
    args = ["wait-done", str(root), *(f"{p}:{SHARDS}" for p in PREFIXES), *extra]
    return CliRunner().invoke(cli, args)


def test_wait_done_lists_each_awaited_prefix_once_per_poll(tmp_path: Path, monkeypatch, store_calls) -> None:
    store = open_store(tmp_path)
    for k in range(SHARDS):
        commit_shard(store, PREFIXES[0], k, [])
    commit_shard(store, PREFIXES[1], 3, [])
    store_calls.clear()
    gave_up = _wait(tmp_path, "--timeout", "0")
    assert gave_up.exit_code == 3
    assert f"wait-done: {SHARDS + 1} of {3 * SHARDS} markers present\n" in gave_up.output
    assert f"and {2 * SHARDS - 2} more markers still missing" in gave_up.output
    assert store_calls == Counter(list=len(PREFIXES))  # one listing per prefix; no probe per missing marker

    def finish_the_others(_seconds: float) -> None:  # infer finishes while wait-done sleeps
        for prefix in PREFIXES[1:]:
            for k in range(SHARDS):
                commit_shard(store, prefix, k, [])
        store_calls.clear()

    monkeypatch.setattr(run_cmds.time, "sleep", finish_the_others)
    done = _wait(tmp_path, "--poll", "0")
    assert done.exit_code == 0
    assert done.output.splitlines()[-1] == f"wait-done: {3 * SHARDS} of {3 * SHARDS} markers present"
    assert store_calls == Counter(list=len(PREFIXES) - 1)  # a prefix found complete is not listed again
