"""flowprop: masks follow moving objects, vanished objects are flagged and re-acquired, options are checked."""

import numpy as np
import pytest

from stseg_core.errors import BadInputError
from stseg_core.fusion.consistency import mask_iou
from stseg_core.models.flowprop import build
from stseg_testing.videos import in_memory_video

H, W = 96, 128


def moving_squares(T: int = 16, hide: range = range(0)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A red square moving (+3, +1) px/frame and a green box moving (−2, 0) on a textured background;
    the green box is absent on the frames in `hide`. Returns frames and exact label maps."""
    import cv2

    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 2) // 2 + 40
    frames, truth = [], []
    for t in range(T):
        img, lab = bg.copy(), np.zeros((H, W), np.uint8)
        x, y = 10 + 3 * t, 20 + t
        img[y : y + 24, x : x + 24], lab[y : y + 24, x : x + 24] = (230, 40, 40), 1
        if t not in hide:
            x2 = 90 - 2 * t
            img[60:76, x2 : x2 + 20], lab[60:76, x2 : x2 + 20] = (40, 220, 60), 2
        frames.append(img)
        truth.append(lab)
    return frames, truth


@pytest.mark.parametrize("options", [{}, {"flow": "farneback"}, {"motion": "dense"}])
def test_masks_follow_moving_squares(options):
    frames, truth = moving_squares()
    results = list(build(**options).segment(in_memory_video(frames, truth[0], (1, 2), "squares")))
    assert [r.stem for r in results] == [f"{i:05d}" for i in range(16)]
    assert np.array_equal(results[0].labels, truth[0])
    for i in (1, 2):
        ious = [mask_iou(r.labels == i, g == i) for r, g in zip(results, truth, strict=True)]
        assert min(ious) > 0.9, (i, ious)
    last = results[-1]
    assert last.probs.shape == (2, H, W) and last.probs.dtype == np.uint8
    assert np.array_equal(last.probs.argmax(0)[last.labels > 0] + 1, last.labels[last.labels > 0])
    assert all(r.present == {1: True, 2: True} for r in results)
    scores = np.array([[r.scores[i] for i in (1, 2)] for r in results])
    assert scores.min() > 0.6 and scores.mean() > 0.85 and scores.max() <= 1.0


def test_colour_refinement_is_what_keeps_uniform_objects():
    # Dense flow underestimates the motion inside a uniform square; without the colour step the mask lags.
    frames, truth = moving_squares()
    results = list(build(refine=False).segment(in_memory_video(frames, truth[0], (1, 2), "squares")))
    assert mask_iou(results[-1].labels == 1, truth[-1] == 1) < 0.5


def test_vanished_object_is_flagged_and_reacquired():
    hide = range(5, 10)
    frames, truth = moving_squares(hide=hide)
    results = list(build().segment(in_memory_video(frames, truth[0], (1, 2), "squares")))
    for t, (r, g) in enumerate(zip(results, truth, strict=True)):
        assert r.present[2] == (t not in hide), t
        if t in hide:
            assert r.scores[2] == 0.0 and not (r.labels == 2).any()
        else:
            assert mask_iou(r.labels == 2, g == 2) > 0.85, t
    lost = list(build(reacquire="false").segment(in_memory_video(frames, truth[0], (1, 2), "squares")))
    assert [r.present[2] for r in lost[10:]] == [False] * 6


def test_options_are_checked():
    with pytest.raises(BadInputError, match=r"flowprop has no option\(s\) checkpoint .*it takes no checkpoint"):
        build(checkpoint="file:///x.pt")
    with pytest.raises(BadInputError, match="flow='raft' must be 'dis' or 'farneback'"):
        build(flow="raft")
    with pytest.raises(BadInputError, match="reacquire='maybe': not a boolean"):
        build(reacquire="maybe")
    with pytest.raises(BadInputError, match="size='big': not an integer"):
        build(size="big")


def test_frame_of_wrong_size_names_the_frame():
    frames, truth = moving_squares(T=3)
    frames[2] = frames[2][:, :100]
    with pytest.raises(BadInputError, match="video squares: frame 00002 is 100x96, expected 128x96"):
        list(build().segment(in_memory_video(frames, truth[0], (1, 2), "squares")))
