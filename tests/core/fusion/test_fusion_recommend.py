"""Video features, the performance database round trip, and recommendations that follow the database."""

import json
from dataclasses import replace

import numpy as np
import pytest

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.fusion.features import VideoFeatures, ensemble_features, object_sizes, scene_features
from stseg_core.fusion.perfdb import FUSED, PerfDB, load_perfdb, render, save_perfdb
from stseg_core.fusion.recommend import KEEP_FUSED, METHODS, Recommender, record, select_method, with_selection
from stseg_core.fusion.video import ModelVideo, from_labels
from stseg_core.store import open_store


def moving_square(step: int, n: int = 6) -> list[np.ndarray]:
    frames = []
    for t in range(n):
        f = np.zeros((64, 96, 3), np.uint8)
        f[20:40, 10 + step * t : 30 + step * t] = 255
        frames.append(f)
    return frames


def test_scene_features_measure_motion_and_texture():
    edge_static, motion_static = scene_features(iter(moving_square(0)), 6)
    _, motion_moving = scene_features(iter(moving_square(4)), 6)
    assert motion_static == pytest.approx(0.0, abs=1e-4)
    assert motion_moving > 10 * max(motion_static, 1e-4)
    rng = np.random.default_rng(0)
    noisy = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
    assert scene_features(iter(noisy), 3)[0] > 5 * edge_static > 0


def test_object_sizes_and_ensemble_signals():
    first = np.zeros((10, 10), np.uint8)
    first[:5, :4] = 1  # 20 %
    first[9, 9] = 2  # 1 % → not small (< 1 % is small)
    first[0, 9] = 3  # 1 %
    assert object_sizes(first, (1, 2, 3)) == pytest.approx((0.22 / 3, 0.01, 0.0))
    first[0, 9] = 0
    first[9, 8:] = 2
    assert object_sizes(first, (1, 2)) == pytest.approx((0.11, 0.02, 0.0))
    labels = np.zeros((4, 2, 2), np.uint8)
    labels[[0, 2], 0, 0] = 1  # present, gone, back, gone → two vanish events of 3 transitions
    a = from_labels("a", labels, (1,))
    b = from_labels("b", np.where(np.arange(4)[:, None, None] >= 0, labels.max(axis=0), 0).astype(np.uint8), (1,))
    ens = ensemble_features([a, b], (1,))
    assert ens["vanish"] == {"a": pytest.approx(2 / 3), "b": 0.0}
    assert ens["absent"] == {"a": 0.5, "b": 0.0}
    assert ens["disagreement"] == pytest.approx(0.5)  # frames 1 and 3: the only fg pixel conflicts


def feats(motion: float, edges: float, disagreement: float = 0.1) -> VideoFeatures:
    return VideoFeatures(
        edge_density=edges,
        motion=motion,
        num_objects=2,
        size_mean=0.05,
        size_min=0.02,
        small_fraction=0.0,
        disagreement=disagreement,
    )


def two_kinds_db(static_best: str) -> PerfDB:
    """Static videos: `static_best` is the better model; dynamic videos: the other one."""
    other = {"a": "b", "b": "a"}[static_best]
    recs = []
    for i in range(3):
        recs.append(
            record(
                f"static{i}",
                feats(0.001 * (i + 1), 0.05),
                {static_best: 90 - i, other: 60, FUSED: 75},
                {"a": 0.8, "b": 0.8},
            )
        )
        recs.append(
            record(
                f"dynamic{i}",
                feats(0.05 + 0.01 * i, 0.3),
                {static_best: 55, other: 88 - i, FUSED: 70},
                {"a": 0.8, "b": 0.8},
            )
        )
    return PerfDB(("a", "b"), tuple(recs), source="hand-made")


def test_recommendation_follows_the_database():
    static_video = feats(0.002, 0.06)
    for method in METHODS:
        rec = Recommender(two_kinds_db("a"), k=3, method=method).recommend("q", static_video, {"a": 0.8, "b": 0.8})
        assert rec.choice == "a", (method, rec)
        rec = Recommender(two_kinds_db("b"), k=3, method=method).recommend("q", static_video, {"a": 0.8, "b": 0.8})
        assert rec.choice == "b", (method, rec)
    rec = Recommender(two_kinds_db("b"), k=3, method="knn").recommend("q", feats(0.06, 0.31), {"a": 0.8, "b": 0.8})
    assert rec.choice == "a" and rec.neighbours == ["dynamic1", "dynamic0", "dynamic2"]  # equal distances: by name
    assert "a predicted" in rec.reason and rec.trust["a"] > rec.trust["b"]
    # the database's trust sharpening γ raises the expected J&F / 100 to that power
    sharp = replace(two_kinds_db("b"), selection={"trust_power": 2.0})
    plain = Recommender(two_kinds_db("b"), k=3).trust(feats(0.06, 0.31))
    assert Recommender(sharp, k=3).trust(feats(0.06, 0.31)) == pytest.approx({m: v**2 for m, v in plain.items()})


def test_fused_wins_when_the_database_says_so_and_ties_prefer_it():
    db = two_kinds_db("a")
    db = replace(db, records=tuple(replace(r, jf={**r.jf, FUSED: 95.0}) for r in db.records))
    rec = Recommender(db, k=3, method="knn").recommend("q", feats(0.002, 0.06), {"a": 0.9, "b": 0.9})
    assert rec.choice == FUSED and rec.reason.startswith("fused pseudo-label predicted 95.00")
    tied = replace(db, records=tuple(replace(r, jf={"a": 80.0, "b": 80.0, FUSED: 80.0}) for r in db.records))
    assert Recommender(tied, method="knn").recommend("q", feats(0.002, 0.06), {}).choice == FUSED


def test_agreement_with_the_pseudo_label_moves_the_prediction():
    recs = []
    for i in range(8):
        agree_a = 0.5 + 0.06 * i
        recs.append(
            record(
                f"v{i}",
                feats(0.01, 0.1 + 0.001 * i),
                {"a": 40 + 50 * agree_a, "b": 70, FUSED: 72},
                {"a": agree_a, "b": 0.7},
            )
        )
    db = PerfDB(("a", "b"), tuple(recs))
    r = Recommender(db, k=4, method="knn+agreement")
    high = r.recommend("q", feats(0.01, 0.104), {"a": 0.98, "b": 0.7})
    low = r.recommend("q", feats(0.01, 0.104), {"a": 0.5, "b": 0.7})
    assert high.choice == "a" and low.choice == FUSED
    assert high.predicted["a"] - low.predicted["a"] == pytest.approx(50 * 0.48, rel=0.05)
    sel = select_method(db, k=4)
    assert sel["method"] in METHODS and sel["loo_jf"]["oracle"] >= sel["loo_jf"][sel["method"]]


def test_pseudo_label_is_kept_everywhere_when_no_predictor_beats_it_on_the_database():
    # twin videos (same features) where model a is great on one and poor on the other: every predictor, led
    # by the twin, picks a where it fails (leave-one-out 62.5), keeping the pseudo-label gives 75
    recs = [
        record(
            f"v{i}",
            feats(0.01 + 0.002 * (i // 2), 0.1),
            {"a": 95 if i % 2 else 50, "b": 60, FUSED: 75},
            {"a": 0.8, "b": 0.8},
        )
        for i in range(8)
    ]
    db = with_selection(PerfDB(("a", "b"), tuple(recs)), k=3)
    assert db.selection["method"] == KEEP_FUSED
    assert db.selection["loo_jf"]["always-fused"] > max(db.selection["loo_jf"][m] for m in METHODS)
    rec = Recommender(db).recommend("q", feats(0.013, 0.1), {"a": 0.9, "b": 0.5})
    assert rec.choice == FUSED and rec.method == KEEP_FUSED and "leave-one-out" in rec.reason
    assert set(rec.predicted) == {"a", "b", FUSED}


def test_database_round_trip_versions_and_render(tmp_path):
    store = open_store(tmp_path)
    db = with_selection(two_kinds_db("a"), k=3)
    first = save_perfdb(store, db)
    second = save_perfdb(store, replace(db, source="again"))
    assert first.endswith("perfdb/v0001.json") and second.endswith("perfdb/v0002.json")
    assert store.read_text("perfdb/latest").strip() == "v0002.json"
    latest = load_perfdb(str(tmp_path / "perfdb"))
    assert latest.version == 2 and latest.source == "again"
    old = load_perfdb(first)
    assert old.version == 1 and old.records == db.records and old.selection == db.selection
    assert old.to_json()["records"] == json.loads(json.dumps(db.to_json()))["records"]
    text = render(latest)
    assert "performance database v2" in text and "static0" in text and "90.00" in text
    assert f"recommender: {db.selection['method']}" in text


def test_database_bad_input(tmp_path):
    store = open_store(tmp_path)
    store.write_json("x/v0001.json", {"schema": 99})
    with pytest.raises(BadInputError, match="schema 99"):
        load_perfdb(str(tmp_path / "x" / "v0001.json"))
    with pytest.raises(MissingArtifactError):
        load_perfdb(str(tmp_path / "nothing"))
    with pytest.raises(BadInputError, match="video v has no J&F for pgmr-fused"):
        PerfDB(("a",), (record("v", feats(0, 0), {"a": 1.0}, {}),))
    with pytest.raises(BadInputError, match="no videos"):
        Recommender(PerfDB(("a",), ()))


def test_model_video_helper_is_consistent():
    mv = ModelVideo("m", np.zeros((1, 1, 1), np.uint8), (), np.zeros((1, 0), np.float32), np.zeros((1, 0), bool))
    assert mv.shape == (1, 1, 1)
