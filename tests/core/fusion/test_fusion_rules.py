"""Fusion rules on small hand-made label maps: agreement, weighted vote, ties, absent objects, overlaps, baselines."""

import numpy as np
import pytest

from stseg_core.errors import BadInputError
from stseg_core.fusion.baselines import bbox_fuse_frame, bbox_fuse_video, fuse_boxes, mask_box
from stseg_core.fusion.consistency import (
    disagreement,
    frame_consistency,
    mask_iou,
    model_agreement,
    object_regions,
)
from stseg_core.fusion.video import ModelVideo, from_labels
from stseg_core.fusion.vote import fuse_frame, fuse_video, presence, vote_weights


def grid(rows: str) -> np.ndarray:
    """'01|22' → 2×2 uint8 label map (one digit per pixel, rows split by |)."""
    return np.array([[int(c) for c in r] for r in rows.split("|")], np.uint8)


def one_frame(model: str, rows: str, ids=(1, 2), scores=None, present=None) -> ModelVideo:
    labels = grid(rows)[None]
    base = from_labels(model, labels, ids)
    return ModelVideo(
        model,
        labels,
        ids,
        base.scores if scores is None else np.array([scores], np.float32),
        base.present if present is None else np.array([present], bool),
    )


def test_consistency_regions_and_counts():
    stack = np.stack([grid("110|022"), grid("110|002"), grid("100|022")])
    fc = frame_consistency(stack, 2)
    assert fc.agree.tolist() == [[True, False, True], [True, False, True]]
    assert fc.object_agree_px.tolist() == [1, 1]  # (0,0) for object 1; (1,2) for object 2
    assert fc.object_conflict_px.tolist() == [1, 1]  # (0,1) and (1,1)
    assert fc.object_agreement().tolist() == [0.5, 0.5]
    agree2, conflict2 = object_regions(stack, 2)
    assert agree2.sum() == 1 and conflict2[1, 1]
    assert disagreement([stack]) == pytest.approx(2 / 4)  # 2 conflict pixels of 4 foreground
    assert disagreement([np.stack([grid("12"), grid("12")])]) == 0.0


def test_model_agreement_is_mean_iou_with_reference():
    ref = np.stack([grid("1100|0022")])
    model = np.stack([grid("1000|0022")])
    assert mask_iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert model_agreement(model, ref, (1, 2)) == pytest.approx((0.5 + 1.0) / 2)
    assert model_agreement(ref, ref, (1, 2)) == 1.0


def test_majority_wins_with_equal_trust():
    outs = [one_frame("a", "110"), one_frame("b", "110"), one_frame("c", "100")]
    fused = fuse_video(outs, (1, 2))
    assert fused.labels[0].tolist() == [[1, 1, 0]]
    assert fused.present[0].tolist() == [True, False]


def test_historical_trust_outweighs_the_majority():
    outs = [one_frame("a", "110"), one_frame("b", "110"), one_frame("c", "100")]
    fused = fuse_video(outs, (1, 2), trust=[0.2, 0.2, 0.9])
    assert fused.labels[0].tolist() == [[1, 0, 0]]  # c (0.9) beats a+b (0.4) on the conflict pixel


def test_own_confidence_scales_the_vote():
    # Equal trust; model b is unsure about object 1 in this frame, so its claim loses to a's background.
    outs = [one_frame("a", "10|00", scores=[0.9, 0.9]), one_frame("b", "11|00", scores=[0.2, 0.9])]
    w = vote_weights(np.ones(2), np.array([[0.9, 0.9], [0.2, 0.9]]))
    np.testing.assert_allclose(w, [[0.9, 0.9, 0.9], [0.55, 0.2, 0.9]])
    assert fuse_video(outs, (1, 2)).labels[0].tolist() == [[1, 0], [0, 0]]


def test_ties_go_to_background_then_the_smaller_id():
    stack = np.stack([grid("12"), grid("21"), grid("00"), grid("22")])
    w = np.ones((4, 3))
    out = fuse_frame(stack[:2], w[:2], np.array([True, True]))
    assert out.tolist() == [[1, 1]]  # 1 vs 2 tied → smaller index
    out = fuse_frame(stack[1:3], w[1:3], np.array([True, True]))
    assert out.tolist() == [[0, 0]]  # object vs background tied → background
    # rounding makes 0.1 + 0.2 tie with 0.3: float noise never decides
    stack3 = np.stack([grid("1"), grid("1"), grid("2")])
    w3 = np.array([[1, 0.1, 0.1], [1, 0.2, 0.2], [1, 0.3, 0.3]])
    assert fuse_frame(stack3, w3, np.array([True, True])).tolist() == [[1]]


def test_object_most_trusted_models_call_absent_is_absent():
    # Two of three models say object 2 vanished; the third still paints it everywhere it agrees with no one.
    outs = [
        one_frame("a", "12", present=[True, False]),
        one_frame("b", "10", present=[True, False]),
        one_frame("c", "12", present=[True, True]),
    ]
    fused = fuse_video(outs, (1, 2))
    assert fused.labels[0].tolist() == [[1, 0]]
    assert fused.present[0].tolist() == [True, False]
    # Even a pixel all models paint is cleared when the trusted majority calls the object absent.
    outs = [
        one_frame("a", "22", present=[False, False]),
        one_frame("b", "22", present=[False, False]),
        one_frame("c", "22", present=[False, True]),
    ]
    assert fuse_video(outs, (1, 2)).labels[0].tolist() == [[0, 0]]
    # …but trust decides "most": one very trusted model keeps it.
    assert fuse_video(outs, (1, 2), trust=[0.1, 0.1, 0.9]).labels[0].tolist() == [[2, 2]]
    assert presence(np.array([[True], [False]]), np.ones(2)).tolist() == [True]  # tie keeps


def test_overlapping_soft_claims_give_each_pixel_one_object():
    # Model a is soft: both objects 0.6 on pixel (0,1). Model b paints object 2 there.
    labels_a = grid("11")[None]
    probs_a = np.zeros((1, 2, 1, 2), np.uint8)
    probs_a[0, 0] = [[255, 153]]
    probs_a[0, 1] = [[0, 153]]
    a = ModelVideo("a", labels_a, (1, 2), np.ones((1, 2), np.float32), np.ones((1, 2), bool), probs_a)
    b = one_frame("b", "12")
    fused = fuse_video([a, b], (1, 2))
    # pixel (0,1): object 1 gets 0.6, object 2 gets 0.6 + 1.0 → object 2; one label per pixel
    assert fused.labels[0].tolist() == [[1, 2]]


def test_bad_inputs_are_one_line_errors():
    a = one_frame("a", "12")
    with pytest.raises(BadInputError, match=r"frame size differs.*a has.*b has"):
        fuse_video([a, one_frame("b", "120")], (1, 2), video="v1")
    two = ModelVideo("c", np.zeros((2, 1, 2), np.uint8), (1, 2), np.ones((2, 2), np.float32), np.ones((2, 2), bool))
    with pytest.raises(BadInputError, match="v1: frame count differs"):
        fuse_video([a, two], (1, 2), video="v1")
    with pytest.raises(BadInputError, match=r"video v1, model d, frame index 0: object id 3 is not in the first"):
        fuse_video([a, one_frame("d", "13")], (1, 2), video="v1")
    with pytest.raises(BadInputError, match="trust must be 2") as info:
        fuse_video([a, a], (1, 2), trust=[1.0, -1.0])
    assert "\n" not in str(info.value)


def test_the_vote_pass_refuses_probabilities_of_the_wrong_shape():
    """Pass 1 checks the label maps; pass 2, the only one that reads probabilities, still checks them."""
    from dataclasses import replace

    from stseg_core.fusion.pgmr import decide_video
    from stseg_core.fusion.video import frames_of

    a = one_frame("a", "12")

    def frames(with_probs: bool):
        return iter([(a.labels[0], np.zeros((1, 1, 2), np.uint8) if with_probs else None)])

    stream = replace(frames_of(a), frames=frames, has_probs=True)
    rgb = np.zeros((1, 2, 3), np.uint8)
    want = r"video v1, model a, frame index 0: probs must have shape \(2, 1, 2\), got \(1, 1, 2\)"
    with pytest.raises(BadInputError, match=want):
        decide_video("v1", [stream], (1, 2), a.labels[0], [rgb], 1, with_baselines=False)


def test_missing_scores_fallback_derives_presence_from_pixels(tmp_path):
    """The fallback the fuse stage reads: a model's video whose scores.json is gone (`open_model_frames`)."""
    from stseg_core.data.mose import VideoInfo
    from stseg_core.fusion.inputs import open_model_frames
    from stseg_core.models.base import FrameResult
    from stseg_core.predictions import SCORES_FILE, write_video_predictions
    from stseg_core.store import open_store

    store, stems = open_store(tmp_path), ("00000", "00001", "00002")
    labels = [grid("10|02"), grid("00|02"), grid("20|00")]
    own = {1: 0.3, 2: 0.4}  # the model's own confidences, lost with scores.json
    results = (
        FrameResult(s, lab, own, {i: bool((lab == i).any()) for i in own}) for s, lab in zip(stems, labels, strict=True)
    )
    write_video_predictions(store, "m", "v", results, stems=stems, object_ids=(1, 2), confidence_definition="own")
    store.delete(f"pred/m/v/{SCORES_FILE}")
    fallbacks: list[str] = []
    out = open_model_frames(store, "m", VideoInfo("v", stems, 2, 2, (1, 2), stems[:1]), fallbacks)
    assert out.present.tolist() == [[True, True], [False, True], [False, True]]
    assert out.scores.dtype == np.float32 and out.scores.tolist() == [[1.0, 1.0]] * 3
    assert [lab.tolist() for lab, _p in out.frames(True)] == [lab.tolist() for lab in labels]
    assert fallbacks == ["m/v: no scores.json; presence from pixels, confidence 1"]


def test_boxes_and_box_fusion():
    assert mask_box(grid("000|011|010") > 0) == (1, 1, 3, 3)
    assert mask_box(np.zeros((2, 2), bool)) is None
    assert fuse_boxes([(0, 0, 2, 2), (1, 1, 4, 4)], "bbox-max") == (0, 0, 4, 4)
    assert fuse_boxes([(0, 0, 2, 2), (1, 1, 4, 4)], "bbox-average") == (0, 0, 3, 3)


def test_bbox_average_keeps_half_the_models_inside_the_mean_box():
    stack = np.stack([grid("1100"), grid("1110"), grid("0111")])
    # boxes x: [0,2) [0,3) [1,4) → mean [0.33, 3) → [0,3); claims 2,3,2,1 → need ≥ 2
    assert bbox_fuse_frame(stack, (1,), "bbox-average").tolist() == [[1, 1, 1, 0]]
    assert bbox_fuse_frame(stack, (1,), "bbox-max").tolist() == [[1, 1, 1, 1]]


def test_bbox_overlaps_go_to_the_object_more_models_claim():
    stack = np.stack([grid("12"), grid("22"), grid("11")])
    # pixel 0: object 1 ×2, object 2 ×1 → 1; pixel 1: object 2 ×2 → 2
    assert bbox_fuse_frame(stack, (1, 2), "bbox-max").tolist() == [[1, 2]]
    # tie (one claim each) → smaller id
    assert bbox_fuse_frame(np.stack([grid("1"), grid("2")]), (1, 2), "bbox-max").tolist() == [[1]]
    outs = [one_frame("a", "12"), one_frame("b", "22"), one_frame("c", "11")]
    assert bbox_fuse_video(outs, (1, 2), "bbox-average").tolist() == [[[1, 2]]]
    with pytest.raises(BadInputError, match="unknown baseline"):
        bbox_fuse_frame(stack, (1, 2), "bbox-median")


def test_sparse_object_ids_keep_their_ids():
    # ids 3 and 7: votes, presence and baselines must map indices back to the real ids
    outs = [
        one_frame("a", "37|70", ids=(3, 7)),
        one_frame("b", "37|00", ids=(3, 7)),
        one_frame("c", "33|70", ids=(3, 7)),
    ]
    fused = fuse_video(outs, (3, 7))
    assert fused.labels[0].tolist() == [[3, 7], [7, 0]]
    assert fused.present[0].tolist() == [True, True]
    assert bbox_fuse_video(outs, (3, 7), "bbox-max").tolist() == [[[3, 7], [7, 0]]]
