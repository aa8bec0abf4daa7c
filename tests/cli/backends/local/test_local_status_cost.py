"""`stseg status` on the local backend costs one listing per job, and each done marker is read once, ever.

At MOSE's size a job has 64 shards and a marker lists thousands of files; status used to HEAD and GET every
marker on every poll (the supervisor polls it up to twice a second), so its cost grew with catalogue × shards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stseg_cli.backends.local import LocalBackend
from stseg_cli.backends.local.supervisor import Supervisor
from stseg_cli.config import Config
from stseg_cli.spec import StageRequest, build_specs, fuse_specs
from stseg_core.runlayout import commit_shard, done_key, pred_prefix
from stseg_core.store import open_store

SHARDS = 64
MODELS = ("flowprop", "oneshot")


@pytest.fixture()
def run(tmp_path: Path):
    """A run of two 64-shard infer jobs whose flowprop shards are all done (shard k: k frames; shard 0 is empty,
    as shards are when a plan has more shards than videos), oneshot none."""
    cfg = Config(store=str(tmp_path / "store"), data_root=str(tmp_path / "data"), state_dir=str(tmp_path / "state"))
    specs = build_specs(cfg, "r1", StageRequest("infer", models=MODELS, shards=SHARDS), default_gpus=False)
    backend = LocalBackend(cfg)
    backend._files("r1").save_specs(specs)
    store = open_store(specs[0].env_dict["STSEG_RUN_ROOT"])
    prefix = pred_prefix("flowprop")
    for k in range(SHARDS):
        keys = [f"{prefix}/v{k}/{f:05d}.png" for f in range(k)] + ([f"{prefix}/v{k}/scores.json"] if k else [])
        for key in keys:
            store.write_bytes(key, b"x")
        commit_shard(store, prefix, k, keys)
    return cfg, store


def test_status_lists_each_job_once_and_reads_each_marker_once(run, store_calls) -> None:
    cfg, store = run
    first = LocalBackend(cfg).status("r1")
    jobs = {j.model: j for j in first.jobs}
    assert jobs["flowprop"].done == frozenset(range(SHARDS))
    assert jobs["flowprop"].frames == sum(range(SHARDS))
    assert jobs["oneshot"].done == frozenset() and jobs["oneshot"].frames == 0
    assert store_calls["list_sizes"] == len(MODELS)  # one listing of `_done/` per job, not one probe per shard
    assert store_calls["read_bytes"] == SHARDS  # each marker once, to count its frames (the empty shard's too)

    store_calls.clear()
    again = LocalBackend(cfg).status("r1")  # a new CLI process: the counts come from the run's state folder
    assert again.jobs == first.jobs
    assert store_calls["list_sizes"] == len(MODELS) and store_calls["read_bytes"] == 0 and store_calls["exists"] == 0

    store.delete(done_key(pred_prefix("flowprop"), 7))  # a marker gone (e.g. invalidated) is not done any more
    store_calls.clear()
    after = {j.model: j for j in LocalBackend(cfg).status("r1").jobs}
    assert after["flowprop"].done == frozenset(range(SHARDS)) - {7}
    assert after["flowprop"].frames == sum(range(SHARDS)) - 7
    assert store_calls["read_bytes"] == 0


def test_supervisor_lists_each_job_once_at_start_and_a_satisfied_wait_once(run, store_calls) -> None:
    """The start (or `stseg resume`) lists each job's `_done/` instead of probing each shard; once fuse's inputs
    are all there, starting each of its shards lists nothing again."""
    cfg, store = run
    for k in range(SHARDS):
        commit_shard(store, pred_prefix("oneshot"), k, [])
    files = LocalBackend(cfg)._files("r1")
    req = StageRequest("fuse", models=MODELS)
    files.save_specs([*files.load_specs(), *fuse_specs(cfg, "r1", req, infer_shards=SHARDS, default_gpus=False)])
    supervisor = Supervisor(files.root, workers=4)
    store_calls.clear()
    pending = supervisor._unfinished()
    assert [(s.stage, k) for s, k in pending] == [("fuse", k) for k in range(SHARDS)]
    assert store_calls["list"] == len(MODELS) + 1 and store_calls["exists"] == 0  # one listing per job
    store_calls.clear()
    assert all(supervisor._waits(spec) is True for spec, _k in pending)  # each fuse shard about to start
    assert store_calls["list"] == len(MODELS) and store_calls["exists"] == 0  # each awaited prefix once, in all
