"""The sharded fuse: two indexes write byte for byte what one writes; a done index is skipped on resume; an index
that fails half-way is never marked done, and its rerun finishes it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from stseg_core.data.labels import encode_label_png, read_label_png
from stseg_core.errors import BadInputError
from stseg_core.fusion.stage import FuseConfig, merge_fuse, run_fuse
from stseg_core.plan import ShardPlan
from stseg_core.store import open_store
from stseg_testing.fusion_bench import make_fusion_bench

SEED = 3


def _hashes(run: Path) -> dict[str, str]:
    """sha256 of the fuse stage's outputs, the run's own path replaced (eval files name their sources); the
    done markers and parts (which index wrote what) are left out."""
    store = open_store(run)
    return {
        key: hashlib.sha256(store.read_bytes(key).replace(str(run).encode(), b"<run>")).hexdigest()
        for key in store.list()
        if (key.startswith(("fused/", "eval/")) and not key.startswith(("fused/_done/", "fused/_parts/")))
        or key == "recommend.json"
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from stseg_core.data.synth import SynthConfig

    root = tmp_path_factory.mktemp("fuse-sharded")
    cfg = SynthConfig(
        seed=SEED, height=64, width=96, min_frames=8, max_frames=10, videos=4, min_objects=2, max_objects=3, noise=1.0
    )
    made = make_fusion_bench(root, cfg, {"valid": "valid", "single": "test"}, probs={"single"}, database=True)
    models, uri = made.models, made.uri
    shutil.copytree(root / "single", root / "sharded")
    return root, tuple(models), uri


def _config(root: Path, case: str, models: tuple[str, ...], uri: str, **kw) -> FuseConfig:
    return FuseConfig(
        str(root / case),
        str(root / "data" / "test"),
        models,
        gt_root=str(root / "data" / "test_gt"),
        db_uri=uri,
        choose="span",
        **kw,
    )


def test_two_fuse_indexes_write_what_one_writes(bench) -> None:
    root, models, uri = bench
    single = run_fuse(_config(root, "single", models, uri))
    plan = ShardPlan.load(open_store(root / "sharded"))
    assert plan.num_shards == 2 and all(plan.shards)
    # the second index finishes first: it writes its part and its marker, and does not merge
    first = run_fuse(_config(root, "sharded", models, uri, index=1, indexes=2))
    assert not first.merged and first.table == {} and first.fused == len(plan.shards[1])
    assert not (root / "sharded" / "recommend.json").exists() and not (root / "sharded" / "eval").exists()
    last = run_fuse(_config(root, "sharded", models, uri, index=0, indexes=2))
    assert last.merged and last.fused == len(plan.shards[0]) and last.videos == single.videos
    assert last.table == single.table and last.choices == single.choices
    assert _hashes(root / "sharded") == _hashes(root / "single")
    run = open_store(root / "sharded")
    assert run.list("fused/_parts") == ["fused/_parts/0.json", "fused/_parts/1.json"]
    assert "fused/_parts/1.json" in run.read_json("fused/_done/1.json")["files"]
    assert not open_store(root / "single").list("fused/_parts")  # one index merges in memory


def test_a_done_index_is_skipped_and_the_merge_can_rerun(bench) -> None:
    root, models, uri = bench
    run = open_store(root / "sharded")
    if not run.exists("recommend.json"):
        test_two_fuse_indexes_write_what_one_writes(bench)
    before = _hashes(root / "sharded")
    marker = run.read_bytes("fused/_done/1.json")
    (root / "sharded" / "recommend.json").unlink()
    again = run_fuse(_config(root, "sharded", models, uri, index=1, indexes=2, resume=True))
    assert again.fused == 0 and again.merged  # skipped, then merged: every index is done
    assert run.read_bytes("fused/_done/1.json") == marker and _hashes(root / "sharded") == before
    assert merge_fuse(_config(root, "sharded", models, uri, indexes=2)).table == again.table


def test_an_index_that_fails_half_way_is_not_marked_done(bench, tmp_path: Path) -> None:
    root, models, uri = bench
    shutil.copytree(root / "data", tmp_path / "data", symlinks=True)
    run_root = tmp_path / "run"
    shutil.copytree(root / "single", run_root, ignore=shutil.ignore_patterns("fused", "eval", "recommend.json"))
    videos = sorted(ShardPlan.load(open_store(run_root)).shards[0])
    assert len(videos) >= 2
    # the second video's ground truth paints an id its first frame lacks: found while that video is scored
    gt_png = tmp_path / "data" / "test_gt" / "Annotations" / videos[1] / "00003.png"
    original = gt_png.read_bytes()
    labels = read_label_png(original, str(gt_png))
    gt_png.write_bytes(encode_label_png(np.where(labels == 0, 99, labels).astype(np.uint8)))
    cfg = FuseConfig(
        str(run_root),
        str(tmp_path / "data" / "test"),
        models,
        gt_root=str(tmp_path / "data" / "test_gt"),
        db_uri=uri,
        index=0,
        indexes=2,
        resume=True,
    )
    with pytest.raises(BadInputError, match="object ids \\[99\\] are absent"):
        run_fuse(cfg)
    run = open_store(run_root)
    assert run.exists(f"fused/{videos[0]}/scores.json")  # half-written …
    assert not run.exists("fused/_done/0.json") and not run.exists("fused/_parts/0.json")  # … and not marked done
    gt_png.write_bytes(original)
    done = run_fuse(cfg)
    assert done.fused == len(videos) and not done.merged and run.exists("fused/_done/0.json")
