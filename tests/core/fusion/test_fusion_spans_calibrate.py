"""Per-span choice (cuts where the leading model changes, ids kept across borders) and confidence calibration."""

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from stseg_core.fusion.calibrate import Calibration, accuracy_pairs, calibrated, fit, isotonic
from stseg_core.fusion.spans import choose_spans, frame_agreement, id_renaming, split_spans, stitch
from stseg_core.fusion.video import Frame, ModelFrames, ModelVideo, frames_of


def _squares(T: int = 10, swap_from: int | None = None) -> np.ndarray:
    """Object 1 on the left, object 2 on the right; from `swap_from` on their ids are exchanged."""
    lab = np.zeros((T, 20, 40), np.uint8)
    for t in range(T):
        a, b = (2, 1) if swap_from is not None and t >= swap_from else (1, 2)
        lab[t, 5:15, 2:12], lab[t, 5:15, 25:35] = a, b
    return lab


def test_spans_cut_where_the_leader_changes_and_ignore_blips():
    agreement = np.array(
        [
            [1.0, 0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2],
            [1.0, 0.5, 0.5, 0.5, 0.5, 0.8, 0.8, 0.5, 0.8, 0.8, 0.8, 0.8, 0.8],
        ]
    )
    # leaders 0 0 0 0 0 1 1 0 1 1 1 1 1: the two-frame run of model 1 and the one-frame return of model 0 are
    # blips (shorter than 3 frames) that join the span before them
    assert split_spans(agreement, min_len=3) == [(0, 8), (8, 13)]
    assert split_spans(agreement, min_len=1) == [(0, 5), (5, 7), (7, 8), (8, 13)]
    assert split_spans(agreement[:, :5], min_len=3) == [(0, 5)]
    assert split_spans(np.ones((3, 0))) == []


def test_span_choice_follows_predictions_and_merges_equal_neighbours():
    preds = {(0, 4): {"a": 80, "b": 60}, (4, 8): {"a": 80, "b": 80}, (8, 10): {"a": 50, "b": 70}}
    plan = choose_spans(list(preds), lambda s, e: preds[(s, e)], ["a", "b"])
    assert plan == [(0, 8, "a"), (8, 10, "b")]  # a tie goes to the candidate listed first


def test_stitching_keeps_ids_when_the_new_choice_swapped_them():
    ids = (1, 2)
    good, swapped = _squares(), _squares(swap_from=0)
    scores_b = np.tile([[0.3, 0.9]], (10, 1)).astype(np.float32)
    candidates = {
        "a": (good, np.full((10, 2), 0.5, np.float32), np.ones((10, 2), bool)),
        "b": (swapped, scores_b, np.array([[True, False]] * 10)),
    }
    labels, scores, present, spans = stitch(candidates, [(0, 5, "a"), (5, 10, "b")], ids)
    assert np.array_equal(labels, good)  # b's frames come back with a's ids
    assert spans[1].rename == {1: 2, 2: 1} and spans[0].rename == {}
    assert np.allclose(scores[5:], [[0.9, 0.3]]) and present[5:].tolist() == [[False, True]] * 5
    assert frame_agreement(swapped, good, ids).tolist() == [0.0] * 10


def test_a_per_span_output_reads_only_the_candidates_its_plan_keeps():
    from stseg_core.fusion.onevideo import _FrameCache, _kept_output
    from stseg_core.fusion.pgmr import VideoDecision

    ids, good = (1, 2), _squares()
    scores, present = np.full((10, 2), 0.5, np.float32), np.ones((10, 2), bool)

    def stream(model: str, labels: np.ndarray) -> ModelFrames:
        return frames_of(ModelVideo(model, labels, ids, scores, present))

    def unread(with_probs: bool) -> Iterator[Frame]:
        raise AssertionError("model c is in no span: its frames must not be read")

    outputs = [stream("a", good), replace(stream("c", good), frames=unread), stream("b", _squares(swap_from=0))]
    plan = [(0, 5, "a"), (5, 10, "b")]
    decision = VideoDecision("v", None, outputs, scores, present, None, plan)  # type: ignore[arg-type]
    cache = _FrameCache()  # the pseudo-label is in no span either: nothing was added, nothing is read
    try:
        frames, _scores, _present, spans = _kept_output(decision, cache)
        assert np.array_equal(np.stack(list(frames)), good) and [sp.choice for sp in spans] == ["a", "b"]
    finally:
        cache.close()


def test_id_renaming_is_a_bijection_with_unmatched_ids():
    prev = np.zeros((10, 10), np.uint8)
    prev[:5] = 3
    new = np.zeros((10, 10), np.uint8)
    new[:5] = 1  # 1 sits where 3 was; 2 and 3 are nowhere
    rename = id_renaming(prev, new, (1, 2, 3))
    full = {i: rename.get(i, i) for i in (1, 2, 3)}
    assert full[1] == 3 and sorted(full.values()) == [1, 2, 3]


def test_isotonic_is_monotone_and_least_squares():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    y = np.array([0.2, 0.6, 0.4, 0.8, 0.7])
    fitted = isotonic(x, y)
    assert np.all(np.diff(fitted) >= 0)
    assert np.allclose(fitted, [0.2, 0.5, 0.5, 0.75, 0.75])
    assert np.allclose(isotonic(x[::-1], y[::-1]), fitted[::-1])  # input order does not matter


def test_calibration_maps_confidence_to_accuracy_and_falls_back_to_identity():
    rng = np.random.default_rng(0)
    s = rng.random(400)
    acc = np.clip(s**2 + 0.05 * rng.standard_normal(400), 0, 1)  # over-confident model: accuracy s²
    cal = fit(s, acc)
    assert not cal.identity and cal.pairs == 400
    grid = np.linspace(0, 1, 101)
    mapped = cal(grid)
    assert np.all(np.diff(mapped) >= -1e-7)
    assert abs(float(cal(np.array([0.5]))[0]) - 0.25) < 0.08 and abs(float(cal(np.array([0.9]))[0]) - 0.81) < 0.08
    assert Calibration.from_json(cal.to_json()) == cal
    few = fit(s[:20], acc[:20])
    assert few.identity and few.pairs == 20 and np.array_equal(few(grid), grid.astype(np.float32))


def test_accuracy_pairs_and_calibrated_scores():
    truth = _squares(4)
    pred = truth.copy()
    pred[2:, :, 25:35] = 0  # object 2 lost from frame 2 on
    out = ModelVideo("m", pred, (1, 2), np.full((4, 2), 0.8, np.float32), np.ones((4, 2), bool))
    s, a = accuracy_pairs(out, truth)
    assert s.tolist() == pytest.approx([0.8] * 6) and a.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    cal = Calibration((0.0, 1.0), (0.0, 0.5), 100)
    assert np.allclose(calibrated(out, cal).scores, 0.4) and calibrated(out, None) is out
