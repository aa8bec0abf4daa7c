"""The fuse stage on a tiny synthetic benchmark: readiness, outputs, Table 2, database build, bad input."""

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from stseg_core.data.mose import MoseSplit
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.fusion.perfdb import FUSED, load_perfdb
from stseg_core.fusion.stage import FuseConfig, format_table, run_fuse, wait_until_ready
from stseg_core.plan import ShardPlan
from stseg_core.store import open_store
from stseg_core.telemetry import JobMetrics


@pytest.fixture(scope="module")
def bench(fusion_bench):
    return fusion_bench.root, fusion_bench.models, fusion_bench.db, fusion_bench.uri


def test_database_built_from_ground_truth(bench):
    root, models, db, uri = bench
    assert uri.endswith("perfdb/v0001.json") and db.version == 1
    assert len(db.records) == 4 and db.models == tuple(models)
    for rec in db.records:
        assert set(rec.jf) == {*models, FUSED} and all(0 <= v <= 100 for v in rec.jf.values())
        assert rec.features.num_objects >= 2 and set(rec.features.vanish) == set(models)
    assert db.selection["method"] in ("knn", "knn+agreement", "ridge")
    by_power = db.selection["fused_jf_by_trust_power"]
    assert set(by_power) == {"1", "2", "4", "8"} and by_power[f"{db.selection['trust_power']:g}"] == max(
        by_power.values()
    )
    assert np.mean([r.jf[FUSED] for r in db.records]) == pytest.approx(max(by_power.values()), abs=1e-3)
    assert load_perfdb(str(root / "perfdb")).records == db.records


def test_fuse_writes_outputs_table_and_metrics(bench):
    root, models, _db, _uri = bench
    metrics = JobMetrics(run="test", stage="fuse", model="pgmr")
    report = run_fuse(
        FuseConfig(
            str(root / "test"),
            str(root / "data" / "test"),
            tuple(models),
            gt_root=str(root / "data" / "test_gt"),
            db_uri=str(root / "perfdb"),
        ),
        metrics=metrics,
    )
    run = open_store(root / "test")
    data = MoseSplit(str(root / "data" / "test"))
    assert report.videos == tuple(data.videos())
    for video in report.videos:
        stems = data.video(video).frames
        assert all(run.exists(f"fused/{video}/{s}.png") for s in stems)
        assert run.read_json(f"fused/{video}/scores.json")["object_ids"] == list(data.video(video).object_ids)
    assert run.exists("fused/_done/0.json")
    rec = run.read_json("recommend.json")
    assert set(rec["videos"]) == set(report.videos) and rec["database"].endswith("v1")
    for entry in rec["videos"].values():
        assert entry["choice"] in (*models, FUSED) and entry["reason"] and set(entry["trust"]) == set(models)
    table = report.table
    assert list(table) == [*models, "bbox-average", "bbox-max", FUSED, "pgmr"]
    assert run.read_json("eval/table2.json")["table"] == table
    assert 100 * run.read_json("eval/pgmr/results.json")["global"]["J&F-Mean"] == pytest.approx(table["pgmr"]["J&F"])
    assert run.exists("eval/bbox-max/global_results-test.csv") and run.exists("eval/pgmr/per-sequence_results-test.csv")
    # the failure modes differ, so the vote beats every single fixture and both baselines
    best_single = max(table[m]["J&F"] for m in models)
    assert table[FUSED]["J&F"] > best_single
    assert table["pgmr"]["J&F"] > max(best_single, table["bbox-average"]["J&F"], table["bbox-max"]["J&F"])
    assert table["pgmr"] == table[FUSED]  # the default keeps the vote; the recommendation is only recorded
    assert metrics.value("stseg_eval_jf", method="pgmr", metric="J&F-Mean") == pytest.approx(
        table["pgmr"]["J&F"], abs=1e-3
    )
    assert metrics.value("stseg_videos_processed_total") == len(report.videos)
    text = format_table(report)
    assert "PGMR (kept output)" in text and f"{table['pgmr']['J&F']:.2f}" in text


def test_database_calibrates_every_model_and_per_span_choice_covers_every_frame(bench):
    root, models, db, uri = bench
    assert set(db.calibration) == set(models) and load_perfdb(uri).calibration == db.calibration
    for cal in db.calibration.values():
        assert not cal.identity and cal.pairs >= 50 and list(cal.y) == sorted(cal.y)
    cfg = FuseConfig(
        str(root / "test"),
        str(root / "data" / "test"),
        tuple(models),
        gt_root=str(root / "data" / "test_gt"),
        db_uri=uri,
        choose="span",
    )
    report = run_fuse(cfg)
    data = MoseSplit(str(root / "data" / "test"))
    for video, entry in open_store(root / "test").read_json("recommend.json")["videos"].items():
        spans = entry["spans"]
        assert spans[0]["start"] == 0 and spans[-1]["end"] == data.video(video).num_frames
        assert all(a["end"] == b["start"] and a["choice"] != b["choice"] for a, b in itertools.pairwise(spans))
        assert entry["choice"] in {sp["choice"] for sp in spans} and entry["reason"].startswith("per span")
    assert 0 < report.table["pgmr"]["J&F"] <= 100
    per_video = run_fuse(replace(cfg, choose="video"))
    assert set(per_video.choices.values()) <= {*models, FUSED} and 0 < per_video.table["pgmr"]["J&F"] <= 100
    with pytest.raises(BadInputError, match="unknown PGMR choice 'frame'"):
        run_fuse(FuseConfig(cfg.run_root, cfg.data_root, cfg.models, db_uri=uri, choose="frame"))


def test_fuse_refuses_until_every_shard_is_done(tmp_path):
    store = open_store(tmp_path)
    ShardPlan(2, (("a",), ("b",)), {"a": 1, "b": 1}).save(store)
    store.write_json("pred/m1/_done/0.json", {"files": {}})
    store.write_json("pred/m1/_done/1.json", {"files": {}})
    store.write_json("pred/m2/_done/1.json", {"files": {}})
    want = r"not every shard is done: m2 shard\(s\) 0 of 2 not done \("
    with pytest.raises(MissingArtifactError, match=want) as info:
        wait_until_ready(store, ["m1", "m2"])
    assert "m1" not in str(info.value) and "\n" not in str(info.value)
    # fuse index 1 of 2 checks only the shards it fuses (1): m2's shard 0 is index 0's to wait for
    assert wait_until_ready(store, ["m1", "m2"], index=1, indexes=2).num_shards == 2
    with pytest.raises(MissingArtifactError, match=want):
        wait_until_ready(store, ["m1", "m2"], index=0, indexes=2)
    clock = [0.0]
    with pytest.raises(MissingArtifactError, match=r"after waiting 30s: m2 shard\(s\) 0 of 2.*m3 shard\(s\) 0, 1"):
        wait_until_ready(
            store,
            ["m2", "m3"],
            wait_s=30,
            poll_s=10,
            sleep=lambda s: clock.append(clock[-1] + s),
            clock=lambda: clock[-1],
        )
    assert clock[-1] == pytest.approx(30.0)
    # a shard that finishes while we wait: the marker appears on the first poll
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        store.write_json("pred/m2/_done/0.json", {"files": {}})

    assert wait_until_ready(store, ["m1", "m2"], wait_s=60, poll_s=5, sleep=sleep).num_shards == 2
    assert polls == [5]
    # a changed shard is checked, and invalidated, only by the index that fuses it
    from stseg_core.runlayout import commit_shard

    store.write_bytes("pred/m1/a/00000.png", b"png")
    commit_shard(store, "pred/m1", 0, ["pred/m1/a/00000.png"])
    store.delete("pred/m1/a/00000.png")
    wait_until_ready(store, ["m1", "m2"], index=1, indexes=2)
    assert store.exists("pred/m1/_done/0.json")
    with pytest.raises(MissingArtifactError, match=r"00000.png: missing: pred/m1 shard\(s\) 0 marked not done"):
        wait_until_ready(store, ["m1", "m2"], index=0, indexes=2)
    assert not store.exists("pred/m1/_done/0.json")


def _as_written(store, model: str) -> None:
    """Re-commit a model's shards after a test edited its outputs: a model that wrote them so (markers agree)."""
    from stseg_core.runlayout import commit_shard, done_shards, read_marker

    for shard in done_shards(store, f"pred/{model}"):
        keys = [k for k in read_marker(store, f"pred/{model}", shard).files if store.exists(k)]
        commit_shard(store, f"pred/{model}", shard, keys)


def test_bad_model_outputs_are_one_line_errors_or_a_recorded_fallback(bench, tmp_path):
    root, models, _db, _uri = bench
    import shutil

    run = tmp_path / "run"
    shutil.copytree(root / "test", run, ignore=shutil.ignore_patterns("fused", "eval", "recommend.json"))
    store = open_store(run)
    data = MoseSplit(str(root / "data" / "test"))
    video = data.videos()[0]
    info = data.video(video)
    cfg = FuseConfig(str(run), str(root / "data" / "test"), tuple(models))
    # missing scores file → documented fallback, recorded
    store.delete(f"pred/{models[0]}/{video}/scores.json")
    _as_written(store, models[0])
    report = run_fuse(cfg)
    assert report.fallbacks == (f"{models[0]}/{video}: no scores.json; presence from pixels, confidence 1",)
    assert json.loads((run / "recommend.json").read_text())["fallbacks"] == list(report.fallbacks)
    # an object id the first frame does not have
    from stseg_core.data.labels import encode_label_png, read_label_png

    key = f"pred/{models[1]}/{video}/{info.frames[2]}.png"
    labels = read_label_png(store.read_bytes(key)).copy()
    labels[0, 0] = 9
    store.write_bytes(key, encode_label_png(labels))
    _as_written(store, models[1])
    with pytest.raises(BadInputError, match=rf"video {video}, model {models[1]}.*object id 9 is not in the first"):
        run_fuse(cfg)
    labels[0, 0] = 0
    store.write_bytes(key, encode_label_png(labels))
    # a model with a frame of a different size
    store.write_bytes(key, encode_label_png(np.zeros((10, 10), np.uint8)))
    _as_written(store, models[1])
    want = rf"video {video}, model {models[1]}, frame {info.frames[2]}: label map is 10x10, the video is {info.width}x"
    with pytest.raises(BadInputError, match=want):
        run_fuse(cfg)
    # a model with a frame missing
    store.delete(key)
    store.delete(f"pred/{models[1]}/{video}/scores.json")
    _as_written(store, models[1])
    with pytest.raises(
        BadInputError,
        match=rf"video {video}, model {models[1]}: {info.num_frames - 1} frames, "
        rf"the video has {info.num_frames}",
    ):
        run_fuse(cfg)
    # a database that does not know a model
    with pytest.raises(BadInputError, match="has no history for model"):
        run_fuse(
            FuseConfig(
                str(run), str(root / "data" / "test"), (*models[2:], "unknown-model"), db_uri=str(root / "perfdb")
            )
        )


def test_a_changed_or_missing_input_file_names_itself_and_the_shard_is_redone(bench, tmp_path):
    import shutil

    from stseg_core.runlayout import done_shards, read_marker

    root, models, _db, _uri = bench
    run = tmp_path / "run"
    shutil.copytree(root / "test", run, ignore=shutil.ignore_patterns("fused", "eval", "recommend.json"))
    store = open_store(run)
    marker = read_marker(store, f"pred/{models[0]}", 1)
    changed = next(k for k in marker.files if k.endswith(".png"))
    store.write_bytes(changed, store.read_bytes(changed) + b"x")  # one byte longer than the marker says
    gone = next(k for k in read_marker(store, f"pred/{models[1]}", 0).files if k.endswith("scores.json"))
    store.delete(gone)
    cfg = FuseConfig(str(run), str(root / "data" / "test"), tuple(models))
    with pytest.raises(MissingArtifactError) as info:
        run_fuse(cfg)
    text = str(info.value)
    assert f"{run}/{changed}: size" in text and "in the marker: pred/" in text and f"{run}/{gone}: missing" in text
    assert "marked not done" in text and "--resume" in text and "\n" not in text
    assert not store.exists("fused/_done/0.json")
    # both shards now count as not done everywhere (status, --resume), and the problems are kept
    assert done_shards(store, f"pred/{models[0]}") == ["0"] and done_shards(store, f"pred/{models[1]}") == ["1"]
    size = marker.files[changed].size
    assert store.read_json(f"pred/{models[0]}/_invalid/1.json")["problems"] == [
        f"file://{run}/{changed}: size {size + 1} != {size} in the marker"
    ]
    with pytest.raises(MissingArtifactError, match=rf"{models[0]} shard\(s\) 1 of 2 not done"):
        run_fuse(cfg)
