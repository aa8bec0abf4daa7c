"""Whole-video and whole-split J&F: frame selection, object set, statistics, bad input, vos-benchmark agreement,
and the MOSEv2 mode."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stseg_core.data.labels import encode_label_png
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.metrics.evaluate import evaluate
from stseg_core.metrics.jf import davis_statistics, segment_scores
from stseg_core.metrics.tables import global_csv, per_sequence_csv, results_json


def _write(root: Path, video: str, frames: list[np.ndarray]) -> None:
    (root / video).mkdir(parents=True, exist_ok=True)
    for t, lab in enumerate(frames):
        (root / video / f"{t:05d}.png").write_bytes(encode_label_png(lab))


def _square(h, w, box, k=1, base=None):
    lab = np.zeros((h, w), np.uint8) if base is None else base.copy()
    y0, y1, x0, x1 = box
    lab[y0:y1, x0:x1] = k
    return lab


def test_statistics_by_hand():
    st = davis_statistics(np.array([1.0, 1.0, 0.0, 0.5]))
    # bins from round(linspace(1, 4, 5)) − 1 = [0, 1, 2, 2, 3]: first = v[0:2], last = v[2:4]
    assert (st.mean, st.recall, st.decay) == (0.625, 0.5, 0.75)
    v = np.arange(10) / 10
    st = davis_statistics(v)  # edges [0, 2, 5, 7, 9]: first = v[0:3], last = v[7:10]
    assert st.decay == pytest.approx(np.mean(v[0:3]) - np.mean(v[7:10]), abs=1e-15)
    assert st.recall == 0.4
    # long videos: the toolkit's uint8 edges would wrap past 256 frames; ours stay exact
    v = np.r_[np.ones(150), np.zeros(150)]
    assert davis_statistics(v).decay == 1.0


def test_video_frames_objects_and_global_mean_over_objects(tmp_path):
    h, w = 40, 60
    gt, pred = tmp_path / "gt" / "Annotations", tmp_path / "pred"
    a = _square(h, w, (5, 15, 5, 15), 1)
    ab = _square(h, w, (20, 30, 30, 40), 2, base=a)
    # video "two": objects 1 and 2; object 2 is missing from the ground truth in frame 2 (and predicted there
    # → J = F = 0), absent from both in frame 3 (→ 1, 1). The first and last frames are not scored: they are
    # wrong on purpose.
    wrong = _square(h, w, (0, 40, 0, 60), 1)
    _write(gt, "two", [ab, ab, a, a, ab, ab])
    _write(pred, "two", [wrong, ab, ab, a, np.zeros_like(a), wrong])
    # video "one": one object predicted perfectly; a ground-truth id not in the first frame (7) is ignored.
    _write(gt, "one", [a, _square(h, w, (0, 3, 0, 3), 7, a), a])
    _write(pred, "one", [a, a, a])
    res = evaluate(str(tmp_path / "gt"), str(pred))
    assert res.split == "gt" and res.frames == 4 + 1
    by = {v.video: v for v in res.videos}
    assert by["two"].frames == ("00001", "00002", "00003", "00004")
    objs = {o.object_id: o for o in by["two"].objects}
    assert objs[1].series["J"].tolist() == [1, 1, 1, 0] and objs[1].series["F"].tolist() == [1, 1, 1, 0]
    assert objs[2].series["J"].tolist() == [1, 0, 1, 0] and objs[2].series["F"].tolist() == [1, 0, 1, 0]
    assert [o.object_id for o in by["one"].objects] == [1]
    # global = mean over the 3 objects (0.75, 0.5, 1), not over the 2 videos
    assert res.scores["J-Mean"] == pytest.approx((0.75 + 0.5 + 1) / 3)
    assert res.scores["J&F-Mean"] == pytest.approx((0.75 + 0.5 + 1) / 3)
    assert res.scores["J-Recall"] == pytest.approx((0.75 + 0.5 + 1) / 3)
    # decay of [1, 1, 1, 0]: bins v[0:2] and v[2:4] → 1 − 0.5
    assert objs[1].summary["J-Decay"] == 0.5
    assert global_csv(res).splitlines() == [
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay",
        "0.750,0.750,0.750,0.167,0.750,0.750,0.167",
    ]
    assert per_sequence_csv(res).splitlines() == [
        "Sequence,J-Mean,F-Mean",
        "one_1,1.000,1.000",
        "two_1,0.750,0.750",
        "two_2,0.500,0.500",
    ]
    js = results_json(res)
    assert js["videos"]["two"]["objects"]["2"]["per_frame"]["J"] == [1, 0, 1, 0]
    assert evaluate(str(tmp_path / "gt"), str(pred), videos=["one"]).scores["J-Mean"] == 1.0


def test_bad_input_is_one_line_naming_video_and_frame(tmp_path):
    h, w = 30, 40
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    a = _square(h, w, (5, 15, 5, 15), 1)
    _write(gt, "v", [a, a, a, a])
    _write(pred, "v", [a, a, a, a])
    (pred / "v" / "00002.png").unlink()
    with pytest.raises(MissingArtifactError, match=r"v/00002\.png.*video v frame 00002.*--missing-as-empty"):
        evaluate(str(gt), str(pred))
    res = evaluate(str(gt), str(pred), missing_as_empty=True)  # frame 2 scores as an empty mask
    assert res.videos[0].objects[0].series["J"].tolist() == [1.0, 0.0]

    _write(pred, "v", [a, a, _square(h, w, (0, 2, 0, 2), 3, a), a])
    with pytest.raises(BadInputError, match=r"video v frame 00002: predicted ids \[3\] are not objects") as err:
        evaluate(str(gt), str(pred))
    assert "\n" not in str(err.value)

    _write(pred, "v", [a, np.zeros((h, w + 1), np.uint8), a, a])
    with pytest.raises(BadInputError, match=r"video v frame 00001: prediction is 41x30, ground truth is 40x30"):
        evaluate(str(gt), str(pred))

    from PIL import Image

    _write(pred, "v", [a, a, a, a])
    Image.fromarray(np.stack([a] * 3, -1)).save(pred / "v" / "00001.png")
    with pytest.raises(BadInputError, match=r"v/00001\.png: annotation must be a palette"):
        evaluate(str(gt), str(pred))

    _write(gt, "w", [a, a, a])
    with pytest.raises(MissingArtifactError, match=r"no predictions for video\(s\) w"):
        evaluate(str(gt), str(pred), videos=["w"])
    assert evaluate(str(gt), str(pred), videos=["w"], missing_as_empty=True).scores["J-Mean"] == 0.0
    with pytest.raises(BadInputError, match=r"no ground truth for video.*nope"):
        evaluate(str(gt), str(pred), videos=["nope"])


def _clean_set(root: Path, rng, sizes, frames=6, k=3):
    """Ellipses that move and deform; every object present in every ground-truth and predicted frame."""
    import cv2

    for v, (h, w) in enumerate(sizes):
        gts, preds = [], []
        for _t in range(frames):
            g = np.zeros((h, w), np.uint8)
            p = np.zeros((h, w), np.uint8)
            for i in range(1, k + 1):
                c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                ax = (int(rng.integers(2, w // 3)), int(rng.integers(2, h // 3)))
                cv2.ellipse(g, c, ax, float(rng.uniform(0, 180)), 0, 360, i, -1)
                c2 = (c[0] + int(rng.integers(-6, 7)), c[1] + int(rng.integers(-6, 7)))
                ax2 = (max(1, ax[0] + int(rng.integers(-4, 5))), max(1, ax[1] + int(rng.integers(-4, 5))))
                cv2.ellipse(p, c2, ax2, float(rng.uniform(0, 180)), 0, 360, i, -1)
            for i in range(1, k + 1):  # keep every object visible somewhere (incl. the image border)
                for lab in (g, p):
                    if not (lab == i).any():
                        lab[-1, -i - 2] = i
            gts.append(g)
            preds.append(p)
        _write(root / "gt", f"vid{v}", gts)
        _write(root / "pred", f"vid{v}", preds)


def test_agrees_with_vos_benchmark_on_clean_data(tmp_path):
    from vos_benchmark.benchmark import benchmark

    _clean_set(tmp_path, np.random.default_rng(7), [(120, 200), (97, 131), (200, 150), (60, 61)])
    ours = evaluate(str(tmp_path / "gt"), str(tmp_path / "pred"))
    _jf, j, f, objs = benchmark([str(tmp_path / "gt")], [str(tmp_path / "pred")], num_processes=1, verbose=False)
    assert abs(ours.scores["J-Mean"] * 100 - j[0]) < 1e-9
    assert abs(ours.scores["F-Mean"] * 100 - f[0]) < 1e-9
    for video in ours.videos:
        iou, bf = objs[0][video.video]
        for o in video.objects:
            assert abs(o.summary["J-Mean"] * 100 - iou[o.object_id]) < 1e-9
            assert abs(o.summary["F-Mean"] * 100 - bf[o.object_id]) < 1e-9
    assert 0.2 < ours.scores["J-Mean"] < 0.9  # the data is neither trivial nor hopeless


def test_workers_give_the_same_numbers(tmp_path):
    _clean_set(tmp_path, np.random.default_rng(8), [(50, 70)] * 3, frames=4, k=2)
    one = evaluate(str(tmp_path / "gt"), str(tmp_path / "pred"))
    two = evaluate(str(tmp_path / "gt"), str(tmp_path / "pred"), workers=2)
    assert one.scores == two.scores
    assert [v.video for v in two.videos] == ["vid0", "vid1", "vid2"]


def test_segment_scores_by_hand():
    empty = np.array([0, 0, 1, 1, 0, 0, 1], bool)
    j = np.array([0.9, 0.8, 1.0, 0.0, 0.4, 0.6, 0.0])
    f = j / 2
    gone, back = segment_scores(j, f, empty)
    # disappearances: frames 2–3 (until the return at 4) and frame 6 (to the end)
    assert gone == pytest.approx(((0.5 + 0.0) / 2, (0.25 + 0.0) / 2))
    # reappearance: frames 4–5 (until the next disappearance at 6)
    assert back == pytest.approx((0.5, 0.25))
    # absent from the first scored frame: not a disappearance, but its return is a reappearance
    gone, back = segment_scores(j, f, np.array([1, 0, 0, 0, 0, 0, 0], bool))
    assert gone is None and back == pytest.approx((np.mean(j[1:]), np.mean(f[1:])))


def test_mosev2_adaptive_radius_and_segments(tmp_path):
    h, w = 200, 300  # D = 0.008·360.6 = 2.88
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    big = _square(h, w, (50, 150, 50, 150), 1)  # area 10000 → ceil(0.1·100) = 10 ≥ D: fractional D for both
    small = _square(h, w, (20, 24, 20, 24), 1)  # area 16 → ceil(0.4) = 1 < D: Ḟ radius 1, F radius 3
    small_pred = np.roll(small, 2, axis=1)
    z = np.zeros((h, w), np.uint8)
    _write(gt_dir, "v", [big, big, small, z, small, big])
    _write(pred_dir, "v", [big, np.roll(big, 3, axis=0), small_pred, z, small, big])
    res = evaluate(str(gt_dir), str(pred_dir), metric="mosev2")
    o = res.videos[0].objects[0]
    # frame 1: J = (inter + 1)/(union + 1) with a 3-row shift of a 100×100 square
    assert o.series["J"][0] == pytest.approx((9700 + 1) / (10300 + 1), abs=1e-15)
    # frame 2: a 4×4 square shifted by 2 px: J = (8 + 1)/(24 + 1); F with radius 3 matches every boundary
    # pixel, Ḟ with radius 1 only those at most 1 px away (hand count: 10 of 16 on each side)
    assert o.series["J"][1] == pytest.approx(9 / 25, abs=1e-15)
    assert o.series["F"][1] == 1.0
    assert o.series["Fdot"][1] == pytest.approx(10 / 16, abs=1e-15)
    assert o.series["gt_empty"].tolist() == [0, 0, 1, 0]
    assert o.series["J"][2] == 1.0 and o.series["Fdot"][2] == 1.0  # both empty
    assert o.summary["J-Disappear"] == 1.0 and o.summary["Fdot-Disappear"] == 1.0
    assert o.summary["J-Reappear"] == 1.0 and o.summary["Fdot-Reappear"] == 1.0
    assert res.scores["J&Fdot-Disappear"] == 1.0
    assert res.scores["J&Fdot-Mean"] == pytest.approx((o.series["J"].mean() + o.series["Fdot"].mean()) / 2)
    assert math.isclose(res.scores["F-Mean"], o.series["F"].mean())


def test_void_pixels_in_the_ground_truth_count_as_background(tmp_path):
    h, w = 30, 40
    a = _square(h, w, (5, 15, 5, 15), 1)
    void = _square(h, w, (20, 25, 20, 30), 255, base=a)  # DAVIS "void" (255): not an object, not scored
    _write(tmp_path / "gt", "v", [void, void, void])
    _write(tmp_path / "pred", "v", [a, a, a])
    res = evaluate(str(tmp_path / "gt"), str(tmp_path / "pred"))
    assert [o.object_id for o in res.videos[0].objects] == [1]
    assert res.scores["J&F-Mean"] == 1.0
